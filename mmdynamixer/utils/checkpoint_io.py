# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""Reading checkpoints as untrusted input: never unpickle arbitrary objects.

torch >= 2.6 loads with ``weights_only=True`` by default, which refuses the
few MMEngine/numpy objects that MMEngine checkpoints hold (the message hub's
``HistoryBuffer`` and numpy scalars/arrays). :func:`register_safe_globals`
allow-lists exactly those plain-data types, so that MMEngine's own loaders
(``tools/test.py``, ``--resume``, ``init_cfg=dict(type='Pretrained')``)
work without turning ``weights_only`` off.

A ``HistoryBuffer`` also pickles its statistics methods as
``getattr(HistoryBuffer, 'mean')``; the pickle's ``getattr`` is bound to
:func:`history_buffer_getattr`, which resolves only those names, never a
general ``getattr``.
"""
import os
import pickle
from collections import OrderedDict

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer

HISTORY_BUFFER_STATISTICS = ('min', 'max', 'mean', 'current')


def history_buffer_getattr(obj, name: str):
    """``getattr`` restricted to the statistics methods of HistoryBuffer."""
    allowed = set(HISTORY_BUFFER_STATISTICS) | set(
        HistoryBuffer._statistics_methods)
    if obj is HistoryBuffer and name in allowed:
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'refusing getattr({getattr(obj, "__name__", type(obj).__name__)}, '
        f'{name!r}) while loading a checkpoint')


def _safe_globals():
    multiarray = np._core.multiarray if hasattr(np, '_core') \
        else np.core.multiarray  # numpy 1.x
    types = [HistoryBuffer, np.ndarray, np.dtype, multiarray.scalar,
             multiarray._reconstruct]
    # numpy pickles dtypes by their class (np.dtypes.Float64DType, ...).
    types += [type(np.dtype(t)) for t in set(np.sctypeDict.values())]
    types += list(set(np.sctypeDict.values()))
    return types + [(history_buffer_getattr, 'builtins.getattr')]


def register_safe_globals():
    """Allow-list the plain-data types of MMEngine checkpoints for
    ``torch.load(..., weights_only=True)``."""
    torch.serialization.add_safe_globals(_safe_globals())


def load_checkpoint_file(path: str, map_location='cpu') -> dict:
    """Load a checkpoint file safely, with errors that say what is wrong."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'Checkpoint file not found: {path}')
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 torch raises many kinds here
        if 'Weights only load failed' in str(err):
            raise RuntimeError(
                f'{path} holds Python objects that are not plain tensors or '
                'numbers, so it is not loaded (a checkpoint is untrusted '
                'input and unpickling runs code). Re-save its state_dict '
                'with torch.save, or convert it with tools/model_converters.'
            ) from err
        raise RuntimeError(
            f'Cannot read checkpoint {path}: it is corrupted or truncated '
            f'({type(err).__name__}: {err}). Re-download or re-save it.'
        ) from err
    if not isinstance(ckpt, dict):
        raise RuntimeError(f'{path} holds a {type(ckpt).__name__}, not a '
                           'checkpoint dict or state dict.')
    return ckpt


def extract_state_dict(ckpt: dict, keys=('state_dict', 'model')) -> 'OrderedDict':
    """The state dict inside a checkpoint (or the checkpoint itself)."""
    for key in keys:
        if key in ckpt and isinstance(ckpt[key], dict):
            return OrderedDict(ckpt[key])
    return OrderedDict(ckpt)
