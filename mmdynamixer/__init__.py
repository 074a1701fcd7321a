# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""DynaMixer for the OpenMMLab 2.x stack.

Importing this package registers the DynaMixer backbone and head in
MMPretrain's ``MODELS`` registry (so configs need only
``custom_imports = dict(imports=['mmdynamixer'])``), registers its model
zoo with MMPretrain's ModelHub (``mmpretrain.list_models('dynamixer*')``),
and allow-lists the plain-data types of MMEngine checkpoints for safe
``weights_only`` loading.
"""
from .utils import register_safe_globals
from .version import __version__

register_safe_globals()

from . import engine, models  # noqa: E402,F401 registers into mmpretrain
from .apis import register_model_zoo  # noqa: E402

register_model_zoo()

__all__ = ['__version__']
