# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""DynaMixer for the OpenMMLab 2.x stack.

Importing this package first checks that the installed mmcv, mmengine and
mmpretrain (and mmdet and mmseg, when they are imported) are versions it
supports (:mod:`mmdynamixer.version_guard`). It then registers the DynaMixer
backbone and head in MMPretrain's ``MODELS`` registry (so configs need only
``custom_imports = dict(imports=['mmdynamixer'])``), registers its model
zoo with MMPretrain's ModelHub (``mmpretrain.list_models('dynamixer*')``),
and registers a loader of local checkpoint files with MMEngine's
``CheckpointLoader`` that allows only tensors and the plain-data types of
MMEngine checkpoints, on every torch (:mod:`mmdynamixer.utils.safe_pickle`).

Checkpoints load strictly into the DynaMixer backbone and head on every path
(:mod:`mmdynamixer.utils.checkpoint`); :func:`allow_partial_load` is the
scoped opt-in for a partial load of a whole model on purpose.
"""
from .version import __version__
from .version_guard import check_versions, optional_imports_skip_unsupported

check_versions()

with optional_imports_skip_unsupported():
    from . import datasets, engine, models  # noqa: E402,F401 registers them
    from .apis import register_model_zoo
    from .utils import allow_partial_load, register_safe_loading

register_safe_loading()
register_model_zoo()

__all__ = ['__version__', 'allow_partial_load']
