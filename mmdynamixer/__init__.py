# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""DynaMixer for the OpenMMLab 2.x stack.

Importing this package registers the DynaMixer backbone and head in
MMPretrain's ``MODELS`` registry (so configs need only
``custom_imports = dict(imports=['mmdynamixer'])``) and allow-lists the
plain-data types of MMEngine checkpoints for safe ``weights_only`` loading.
"""
from .utils import register_safe_globals
from .version import __version__

register_safe_globals()

from . import models  # noqa: E402,F401 registers into mmpretrain.MODELS

__all__ = ['__version__']
