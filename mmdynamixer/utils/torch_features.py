# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""What the installed torch offers, decided in one place.

mmdynamixer supports torch >= 2.1. A few public APIs it uses came later;
each is looked up here by its presence (not by a version number), with the
public route older torches offer, or the feature is switched off with one
log line that names the torch it needs (:func:`log_unavailable`).

- the autocast state of a device type: ``torch.is_autocast_enabled(device)``
  and ``torch.get_autocast_dtype(device)`` (torch >= 2.4), else
  ``torch.is_autocast_cpu_enabled()`` / ``torch.get_autocast_cpu_dtype()``
  and their CUDA counterparts;
- ``torch.utils.checkpoint.create_selective_checkpoint_contexts`` (torch >=
  2.4): selective activation checkpointing (a DynaMixer's ``selective_cp``)
  is off without it (:data:`SELECTIVE_CHECKPOINT`);
- ``torch.serialization.add_safe_globals`` (torch >= 2.4): see
  :mod:`.safe_pickle`;
- ``Module.register_load_state_dict_pre_hook`` (torch >= 2.5): the check of
  every ``load_state_dict`` into a DynaMixer backbone
  (:func:`~.checkpoint.guard_state_dict_loads`) is off without it
  (:data:`LOAD_STATE_DICT_PRE_HOOK`);
- the ``dynamo`` argument of ``torch.onnx.export`` (torch >= 2.5), which
  newer torches need set to keep the TorchScript-based exporter
  (:func:`onnx_export_kwargs`).
"""
import inspect
from typing import Tuple

import torch
import torch.utils.checkpoint
from mmengine.logging import print_log

# selective activation checkpointing: torch >= 2.4
SELECTIVE_CHECKPOINT = hasattr(torch.utils.checkpoint,
                               'create_selective_checkpoint_contexts')
# public since torch 2.5 (only a private variant before)
LOAD_STATE_DICT_PRE_HOOK = hasattr(torch.nn.Module,
                                   'register_load_state_dict_pre_hook')

_logged = set()


def log_unavailable(feature: str, needs: str, instead: str) -> None:
    """Log once per process that ``feature`` is off on this torch."""
    if feature in _logged:
        return
    _logged.add(feature)
    print_log(f'{feature} needs {needs}; torch {torch.__version__} is '
              f'installed, so {instead}.', logger='current', level=30)


def autocast_enabled(device_type: str) -> bool:
    """Whether autocast is on for ``device_type`` (a separate call from
    :func:`autocast_state`: torch 2.1's compiler traces this one, not a
    function that returns a dtype)."""
    if hasattr(torch, 'get_autocast_dtype'):  # torch >= 2.4
        return torch.is_autocast_enabled(device_type)
    if device_type == 'cpu':
        return torch.is_autocast_cpu_enabled()
    return device_type == 'cuda' and torch.is_autocast_enabled()


def autocast_state(device_type: str) -> Tuple[bool, torch.dtype]:
    """``(enabled, dtype)`` of autocast for ``device_type``."""
    if hasattr(torch, 'get_autocast_dtype'):  # torch >= 2.4
        dtype = torch.get_autocast_dtype(device_type)
    elif device_type == 'cpu':
        dtype = torch.get_autocast_cpu_dtype()
    elif device_type == 'cuda':
        dtype = torch.get_autocast_gpu_dtype()
    else:
        dtype = torch.get_default_dtype()
    return autocast_enabled(device_type), dtype


def onnx_export_kwargs() -> dict:
    """Keyword arguments that select the TorchScript-based ONNX exporter
    (``dynamo=False`` where ``torch.onnx.export`` has the argument)."""
    if 'dynamo' in inspect.signature(torch.onnx.export).parameters:
        return dict(dynamo=False)
    return {}


__all__ = ['LOAD_STATE_DICT_PRE_HOOK', 'SELECTIVE_CHECKPOINT',
           'autocast_enabled', 'autocast_state',
           'log_unavailable', 'onnx_export_kwargs']
