# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""What a checkpoint file may hold, decided in one place.

A checkpoint is untrusted input: unpickling runs code. Besides tensors,
MMEngine checkpoints hold a few plain-data types (the message hub's
``HistoryBuffer``, numpy arrays, scalars and dtypes): :func:`safe_globals`
lists them. They are allowed, and nothing else, on every torch:

- torch >= 2.4 has an allow-list API: :func:`allow_safe_globals` adds them
  with ``torch.serialization.add_safe_globals`` and files are read with
  ``torch.load(..., weights_only=True)``.
- On an older torch, files are read with
  ``torch.load(..., pickle_module=<this module>)``: this module's
  :class:`Unpickler` is pickle's documented way of restricting globals
  (``find_class``). It resolves the names that torch's own weights-only
  unpickler resolves to rebuild tensors, plus :func:`safe_globals`, and
  refuses every other global, so a pickle that would run code fails with
  :class:`UnpicklingError` before it runs anything.
"""
import importlib
import pickle
import sys
from pickle import UnpicklingError

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer

HISTORY_BUFFER_STATISTICS = ('min', 'max', 'mean', 'current')
# torch.serialization.add_safe_globals: torch >= 2.4
ALLOW_LIST_API = hasattr(torch.serialization, 'add_safe_globals')

# The names that torch's own weights-only unpickler resolves by default
# (torch 2.13's list, as ``module.qualname``): what tensors, parameters,
# dtypes and plain containers need. torch.load pickles storages by
# persistent ids, not globals. A name the installed torch lacks is refused.
TORCH_NAMES = frozenset(
    ['collections.OrderedDict', 'collections.Counter', 'torch.Size',
     'torch.Tensor', 'torch.device', 'torch.nn.parameter.Parameter',
     'torch.serialization._get_layout', 'torch._tensor._rebuild_from_type_v2',
     '_codecs.encode', 'builtins.bytearray', 'builtins.set',
     'builtins.complex'] +
    [f'torch._utils.{name}' for name in (
        '_rebuild_tensor', '_rebuild_tensor_v2', '_rebuild_tensor_v3',
        '_rebuild_parameter', '_rebuild_parameter_with_state',
        '_rebuild_qtensor', '_rebuild_sparse_tensor',
        '_rebuild_meta_tensor_no_storage', '_rebuild_nested_tensor',
        '_rebuild_wrapper_subclass', '_rebuild_device_tensor_from_numpy',
        '_rebuild_device_tensor_from_cpu_tensor')] +
    [f'torch.{name}' for name in (
        'per_tensor_affine', 'per_tensor_symmetric', 'per_channel_affine',
        'per_channel_symmetric', 'per_channel_affine_float_qparams')] +
    [str(t) for t in vars(torch).values() if isinstance(t, torch.dtype)])


def history_buffer_getattr(obj, name: str):
    """``getattr`` restricted to the statistics methods of HistoryBuffer
    (a pickled HistoryBuffer refers to them as ``getattr(cls, 'mean')``)."""
    allowed = set(HISTORY_BUFFER_STATISTICS) | set(
        HistoryBuffer._statistics_methods)
    if obj is HistoryBuffer and name in allowed:
        return getattr(obj, name)
    raise UnpicklingError(
        f'refusing getattr({getattr(obj, "__name__", type(obj).__name__)}, '
        f'{name!r}) while loading a checkpoint')


def safe_globals() -> list:
    """The plain-data types of MMEngine checkpoints, in the form of
    ``torch.serialization.add_safe_globals``: objects, or ``(object,
    name)`` for an object that stands in for ``name``."""
    # numpy 2 moved numpy.core to numpy._core (1.26 has a stub of it)
    multiarray = importlib.import_module(
        'numpy._core.multiarray' if int(np.__version__.split('.')[0]) >= 2
        else 'numpy.core.multiarray')
    types = [HistoryBuffer, np.ndarray, np.dtype, multiarray.scalar,
             multiarray._reconstruct]
    # numpy pickles dtypes by their class (np.dtypes.Float64DType, ...).
    types += [type(np.dtype(t)) for t in set(np.sctypeDict.values())]
    types += list(set(np.sctypeDict.values()))
    return types + [(history_buffer_getattr, 'builtins.getattr')]


def allowed_globals() -> dict:
    """``{'module.qualname': object}`` of :func:`safe_globals`, keyed as
    torch's allow-list keys them."""
    allowed = {}
    for entry in safe_globals():
        obj, name = entry if isinstance(entry, tuple) else (
            entry, f'{entry.__module__}.{entry.__qualname__}')
        allowed[name] = obj
    return allowed


def allow_safe_globals() -> bool:
    """Add :func:`safe_globals` to torch's weights-only allow-list; False
    (and nothing done) on a torch without that API (< 2.4)."""
    if not ALLOW_LIST_API:
        return False
    torch.serialization.add_safe_globals(safe_globals())
    return True


def torch_load(f, map_location=None):
    """``torch.load`` of ``f`` allowing tensors and :func:`safe_globals`
    only, on every torch (call :func:`allow_safe_globals` first)."""
    if ALLOW_LIST_API:
        return torch.load(f, map_location=map_location, weights_only=True)
    return torch.load(f, map_location=map_location,
                      pickle_module=sys.modules[__name__])


class Unpickler(pickle.Unpickler):
    """An unpickler that resolves only tensor-rebuilding names and
    :func:`safe_globals`."""

    def find_class(self, module, name):
        if module == '__builtin__':  # protocol 2 writes builtins so
            module = 'builtins'
        full_name = f'{module}.{name}'
        allowed = allowed_globals()
        if full_name in allowed:
            return allowed[full_name]
        if full_name in TORCH_NAMES:
            try:
                return super().find_class(module, name)
            except AttributeError:  # not in this torch
                pass
        raise UnpicklingError(
            f'Weights only load failed: the file refers to {full_name}, '
            'which is not a tensor or a plain-data type of MMEngine '
            'checkpoints (unpickling it could run code).')


def load(file, **kwargs):
    """``pickle.load`` with :class:`Unpickler` (torch.load calls it for the
    header of its legacy format)."""
    return Unpickler(file, **kwargs).load()


__all__ = ['ALLOW_LIST_API', 'HISTORY_BUFFER_STATISTICS', 'TORCH_NAMES',
           'Unpickler', 'UnpicklingError', 'allow_safe_globals',
           'allowed_globals', 'history_buffer_getattr', 'load', 'safe_globals',
           'torch_load']
