# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""Checkpoints: read as untrusted input, loaded strictly.

Every path that puts weights into a model with a DynaMixer backbone comes
here, so that no weight is ever silently left random:

- :func:`load_checkpoint_file` reads a file allowing only tensors and the
  few plain-data types MMEngine checkpoints hold (a checkpoint is untrusted
  input: unpickling runs code; :mod:`.safe_pickle` decides what is allowed,
  on every torch), with errors that say what is wrong with it.
  :func:`register_safe_loading` makes MMEngine read local files with it.
- :func:`check_state_dict` compares a state dict with a module and raises
  :class:`CheckpointMismatchError` listing every missing, unexpected and
  mis-shaped key.
- :func:`load_pretrained` is ``init_cfg=dict(type='Pretrained', ...)`` done
  strictly; :func:`guard_state_dict_loads` makes every later
  ``load_state_dict`` into a module strict for that module's own keys
  (MMEngine's ``Pretrained`` init in a list ``init_cfg``, ``load_from``,
  ``--resume``, ``mmpretrain.get_model(..., pretrained=...)``, the
  Inferencer, and other libraries' tools all load non-strictly otherwise).

Partial loads on purpose, as PyTorch documents them:

- ``backbone.load_state_dict(part, strict=False)`` (or the head's), called
  directly on a DynaMixer backbone or head, loads what fits and returns
  PyTorch's missing and unexpected keys (:class:`PartialLoadMixin`); the
  fine-tuning idiom ``model.backbone.load_state_dict(sd, strict=False)``.
- A whole model (e.g. MMPretrain's ``ImageClassifier``, whose
  ``load_state_dict`` is not ours; it and MMEngine's non-strict loaders
  both load the backbone and head with ``strict=True``, so the guard cannot
  tell them apart) loads partially only within ``with
  mmdynamixer.allow_partial_load():`` (:func:`allow_partial_load`), or
  everywhere with the environment variable ``MMDYNAMIXER_PARTIAL_LOAD=1``:
  loads then go on, and a summary of what stayed random or was ignored is
  logged.
"""
import contextlib
import contextvars
import os
import os.path as osp
from collections import OrderedDict
from typing import Iterable, Optional

from mmengine.logging import print_log
from mmengine.runner import CheckpointLoader, find_latest_checkpoint

from . import safe_pickle
from . import torch_features

PARTIAL_LOAD_ENV = 'MMDYNAMIXER_PARTIAL_LOAD'
PARTIAL_LOAD_CONTEXT = 'mmdynamixer.allow_partial_load()'
# True within `allow_partial_load()` (per thread and asyncio task)
_partial_load_scope = contextvars.ContextVar('mmdynamixer_partial_load',
                                             default=False)
REFERENCE_HINT = ('It looks like a checkpoint of the reference DynaMixer '
                  'implementation: convert it first with `python '
                  'tools/model_converters/dynamixer_to_mmpretrain.py SRC DST`.')


class CheckpointMismatchError(ValueError):
    """A checkpoint that does not fit the model it is loaded into."""


# ---------------------------------------------------------------- reading

def register_safe_loading():
    """Allow-list the plain-data types of MMEngine checkpoints for
    ``torch.load(..., weights_only=True)`` where torch has the API (>= 2.4),
    and make MMEngine read local files with :func:`load_checkpoint_file`
    (:func:`load_from_local`), on every torch."""
    safe_pickle.allow_safe_globals()
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local,
                                     force=True)


def load_from_local(filename, map_location=None):
    """MMEngine's loader of local checkpoint files (``load_from``,
    ``--resume``, ``init_cfg=dict(type='Pretrained')``, ``get_model(...,
    pretrained=...)``, the Inferencer), reading them as untrusted input.

    MMEngine's own calls ``torch.load`` without ``weights_only``, which
    unpickles anything on torch < 2.6."""
    return load_checkpoint_file(osp.expanduser(filename), map_location)


def load_checkpoint_file(path: str, map_location='cpu') -> dict:
    """Read a checkpoint file safely, with errors that say what is wrong."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'Checkpoint file not found: {path}')
    try:
        ckpt = safe_pickle.torch_load(path, map_location)
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


def checkpoint_to_load(cfg) -> Optional[str]:
    """The checkpoint a runner of ``cfg`` loads, as MMEngine's
    ``Runner.load_or_resume`` picks it: ``load_from`` (which
    ``tools/train.py --resume PATH`` and ``tools/test.py`` set), else, with
    ``resume=True``, the last checkpoint in ``work_dir``; None if neither."""
    if cfg.get('load_from'):
        return cfg.load_from
    if cfg.get('resume'):
        return find_latest_checkpoint(cfg.work_dir)
    return None


def extract_state_dict(ckpt: dict,
                       keys=('state_dict', 'model')) -> 'OrderedDict':
    """The state dict inside a checkpoint (or the checkpoint itself), with
    DDP's ``module.`` prefix removed."""
    for key in keys:
        if key in ckpt and isinstance(ckpt[key], dict):
            ckpt = ckpt[key]
            break
    return OrderedDict((k[7:] if k.startswith('module.') else k, v)
                       for k, v in ckpt.items())


# ---------------------------------------------------------------- checking

def partial_load_allowed() -> bool:
    """Whether the user opted out of strict loading, within
    :func:`allow_partial_load` or with ``MMDYNAMIXER_PARTIAL_LOAD=1``."""
    return _partial_load_reason() is not None


def _partial_load_reason() -> Optional[str]:
    """What let a partial load through (for the log), or None."""
    if _partial_load_scope.get():
        return PARTIAL_LOAD_CONTEXT
    if os.environ.get(PARTIAL_LOAD_ENV, '') not in ('', '0'):
        return f'{PARTIAL_LOAD_ENV}=1'
    return None


@contextlib.contextmanager
def allow_partial_load():
    """Within: loads into a DynaMixer backbone or head that do not fit go
    on, and what stays random or is ignored is logged, instead of raising
    :class:`CheckpointMismatchError`. For a partial load of a whole model
    on purpose: ``strict=False`` alone does not do it, as the guard cannot
    tell it from MMEngine's loaders, which are non-strict on every load and
    stay checked::

        with mmdynamixer.allow_partial_load():
            result = model.load_state_dict(state_dict, strict=False)
        result.missing_keys  # e.g. the head's keys, left out of state_dict

    Scoped: the checks are on again when the block exits, also by an
    exception (the environment variable ``MMDYNAMIXER_PARTIAL_LOAD=1`` is
    the process-wide opt-out). Shape mismatches still fail in
    ``load_state_dict`` itself, as PyTorch documents for ``strict=False``.
    """
    token = _partial_load_scope.set(True)
    try:
        yield
    finally:
        _partial_load_scope.reset(token)


def _listing(names, limit=10):
    names = sorted(names)
    more = f' ... and {len(names) - limit} more' if len(names) > limit else ''
    return ', '.join(names[:limit]) + more


def _shape(value):
    return tuple(value.shape) if hasattr(value, 'shape') else None


def compare_state_dict(module, state_dict: dict, fresh: Iterable[str] = ()):
    """``(missing, unexpected, mismatched, fresh_missing)`` of ``state_dict``
    against ``module``'s own state dict.

    ``fresh`` names keys that a checkpoint may lack, all together (layers
    added on top of a pretrained model, which start from their init): they
    are reported as ``fresh_missing`` when all are absent, and as missing
    when only some are.
    """
    own = module.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [
        f'{k}: checkpoint {_shape(state_dict[k])} vs model {_shape(own[k])}'
        for k in own if k in state_dict and
        _shape(state_dict[k]) != _shape(own[k])]
    fresh = set(fresh)
    fresh_missing = []
    if fresh and fresh <= set(missing):
        fresh_missing = [k for k in missing if k in fresh]
        missing = [k for k in missing if k not in fresh]
    return missing, unexpected, mismatched, fresh_missing


def mismatch_report(module, source, missing, unexpected, mismatched) -> str:
    lines = [f'{source} does not fit {type(module).__name__}:']
    if missing:
        lines.append(f'  missing keys ({len(missing)}): {_listing(missing)}')
    if unexpected:
        lines.append(f'  unexpected keys ({len(unexpected)}): '
                     f'{_listing(unexpected)}')
    if mismatched:
        lines.append(f'  shape mismatches ({len(mismatched)}): '
                     f'{_listing(mismatched, 5)}')
    return '\n'.join(lines)


def check_state_dict(module, state_dict: dict, source: str = 'checkpoint',
                     fresh: Iterable[str] = (), hints: Iterable[str] = (),
                     logger: Optional[str] = 'current') -> list:
    """Raise :class:`CheckpointMismatchError` naming every key of
    ``module`` that ``state_dict`` lacks, every extra key and every shape
    mismatch, unless the user opted out (then log them).

    Returns:
        list: the keys that ``state_dict`` does not set (the ``fresh`` keys
        when they are all absent, and anything the opt-out let through).
    """
    missing, unexpected, mismatched, fresh_missing = compare_state_dict(
        module, state_dict, fresh)
    if fresh_missing:
        print_log(f'{type(module).__name__}: {len(fresh_missing)} keys are '
                  f'not in {source} and start from their init (layers added '
                  f'on top of it): {_listing(fresh_missing, 20)}',
                  logger=logger)
    if not (missing or unexpected or mismatched):
        return fresh_missing
    report = mismatch_report(module, source, missing, unexpected, mismatched)
    reason = _partial_load_reason()
    if reason:
        print_log(f'{report}\n  {reason}: loading the rest; the '
                  f'{len(missing) + len(mismatched)} missing or mis-shaped '
                  'entries keep their random init.', logger=logger,
                  level=30)
        return fresh_missing + missing + [m.split(':')[0] for m in mismatched]
    hints = list(hints)
    # the module, or a model's backbone, may know why (e.g. output norms)
    for part, prefix in ((module, ''),
                         (getattr(module, 'backbone', None), 'backbone.')):
        if hasattr(part, 'mismatch_hints'):
            hints += part.mismatch_hints(missing, unexpected, prefix)
    if mismatched and hasattr(module, 'img_size'):
        hints.append('A fixed-size DynaMixer sizes its generators to the '
                     'token grid: build it with the arch and img_size the '
                     'checkpoint was trained with.')
    if any(k.startswith(('network.', 'patch_embed.')) for k in unexpected):
        hints.append(REFERENCE_HINT)
    hints.append('To load only what fits on purpose: call '
                 '`model.backbone.load_state_dict(part, strict=False)` '
                 "(the backbone's or head's own load returns the missing and "
                 'unexpected keys, as in PyTorch), or load within `with '
                 f'{PARTIAL_LOAD_CONTEXT}:` (a whole model) or with '
                 f'{PARTIAL_LOAD_ENV}=1 (every load); what stays random is '
                 'logged.')
    raise CheckpointMismatchError('\n'.join([report] + [
        f'  {hint}' for hint in hints]))


def without_partial_keys(state_dict: dict, keys: Iterable[str]) -> dict:
    """``state_dict`` without ``keys`` (those the opt-out let through as
    mis-shaped), so that loading the rest cannot fail on their shapes."""
    keys = set(keys)
    return OrderedDict((k, v) for k, v in state_dict.items() if k not in keys)


# ---------------------------------------------------------------- loading

def select_prefix(state_dict: dict, prefix: Optional[str],
                  source: str) -> dict:
    """The entries of ``state_dict`` under ``prefix``, without it. The keys
    left out are named in the log (e.g. a classifier's head when its
    backbone initialises a detector's)."""
    if not prefix:
        return state_dict
    prefix = prefix if prefix.endswith('.') else prefix + '.'
    selected = OrderedDict((k[len(prefix):], v)
                           for k, v in state_dict.items()
                           if k.startswith(prefix))
    if not selected:
        heads = sorted({k.split('.')[0] + '.' for k in state_dict})
        raise CheckpointMismatchError(
            f'No key of {source} starts with prefix {prefix!r}; its top-level '
            f'prefixes are {heads}. Set `prefix` to one of them, or to None '
            'for a checkpoint of this module alone.')
    left_out = [k for k in state_dict if not k.startswith(prefix)]
    if left_out:
        print_log(f'{source}: loading the {len(selected)} entries under '
                  f'{prefix!r}; left out {len(left_out)} others: '
                  f'{_listing(left_out, 20)}', logger='current')
    return selected


def load_state_dict_checked(module, state_dict: dict, source: str,
                            fresh: Iterable[str] = (),
                            hints: Iterable[str] = ()):
    """Check ``state_dict`` against ``module`` (see :func:`check_state_dict`)
    and load it."""
    unset = check_state_dict(module, state_dict, source, fresh, hints)
    with skip_guard(module):
        module.load_state_dict(without_partial_keys(state_dict, unset),
                               strict=not unset)


def load_pretrained(module, init_cfg: dict, fresh: Iterable[str] = ()):
    """``init_cfg=dict(type='Pretrained', checkpoint=..., prefix=...,
    map_location=...)`` loaded into ``module`` strictly."""
    path = init_cfg.get('checkpoint')
    if not path:
        raise ValueError("init_cfg of type 'Pretrained' needs 'checkpoint'.")
    state_dict = extract_state_dict(
        load_checkpoint_file(path, init_cfg.get('map_location', 'cpu')))
    hints = []
    prefix = init_cfg.get('prefix')
    if not prefix and any(k.startswith('backbone.') for k in state_dict) \
            and not any(k.startswith('backbone.') for k in
                        module.state_dict()):
        hints.append("Its keys start with 'backbone.': for the backbone of "
                     "a classifier checkpoint, add prefix='backbone.' to the "
                     'init_cfg.')
    state_dict = select_prefix(state_dict, prefix, path)
    load_state_dict_checked(module, state_dict, path, fresh, hints)


# ------------------------------------------------- the guard on every load

class skip_guard:
    """Within: the guard of ``module`` (:func:`guard_state_dict_loads`)
    skips its check, on this module only (its caller checked already, with
    better names for the source, or asked for a non-strict load of it).
    Nests; the previous state is back on exit, also by an exception."""

    def __init__(self, module):
        self.module = module

    def __enter__(self):
        self.before = getattr(self.module, '_mmdx_checked', False)
        self.module._mmdx_checked = True
        return self.module

    def __exit__(self, *exc):
        self.module._mmdx_checked = self.before


def _guard_hook(module, state_dict, prefix, local_metadata, strict,
                missing_keys, unexpected_keys, error_msgs):
    """``load_state_dict`` pre-hook: the entries under ``prefix`` must fit
    ``module`` exactly (its ``fresh_keys()`` may be absent together)."""
    if getattr(module, '_mmdx_checked', False):
        return
    own = {k[len(prefix):]: v for k, v in state_dict.items()
           if k.startswith(prefix)}
    fresh = module.fresh_keys() if hasattr(module, 'fresh_keys') else ()
    where = f"the weights under '{prefix}'" if prefix else 'the weights'
    check_state_dict(module, own, f'{where} loaded into this model', fresh,
                     hints=[
                         'Check that the checkpoint is of this model (arch, '
                         'img_size, ablation switches), and for the backbone '
                         "of a classifier checkpoint use init_cfg=dict(type="
                         "'Pretrained', checkpoint=..., prefix='backbone.')."])


def guard_state_dict_loads(module):
    """Make every ``load_state_dict`` into ``module`` (alone or as part of a
    larger model, by any library) check ``module``'s keys strictly. A
    module-level function as the hook, so that deep copies (EMA) and pickles
    keep working.

    torch < 2.5 has no public load_state_dict pre-hook: there, one log line
    says so, and only mmdynamixer's own loads are checked."""
    if torch_features.LOAD_STATE_DICT_PRE_HOOK:
        module.register_load_state_dict_pre_hook(_guard_hook)
    else:
        torch_features.log_unavailable(
            'Checking every load_state_dict into a DynaMixer',
            'torch >= 2.5 (Module.register_load_state_dict_pre_hook)',
            "only mmdynamixer's own loads are checked (init_cfg=dict(type="
            "'Pretrained') given to the backbone, StrictLoadHook for "
            'load_from/--resume/tools/test.py, pytorch2onnx); others '
            '(get_model(pretrained=...), the Inferencer, a list init_cfg, '
            "load_state_dict) get only MMEngine's or torch's own warnings "
            'and errors')
    return module


class PartialLoadMixin:
    """``load_state_dict`` as PyTorch documents it, for a module guarded by
    :func:`guard_state_dict_loads` (the DynaMixer backbone and head; list
    it before the torch or OpenMMLab base class).

    ``strict=True`` (the default): the guard checks every key and raises
    :class:`CheckpointMismatchError` naming what does not fit. A direct
    ``strict=False`` call on the module itself: the guard steps aside for
    this call, and PyTorch's ``_IncompatibleKeys(missing_keys,
    unexpected_keys)`` comes back (shape mismatches still raise, as in
    PyTorch). Loads into a larger model that holds the module (MMEngine's
    loaders, ``model.load_state_dict(..., strict=False)`` on a whole
    classifier) never call this method: torch and MMEngine load each
    submodule through ``_load_from_state_dict`` with ``strict=True``,
    whatever they were given, so they stay checked, and
    :func:`allow_partial_load` is their opt-in.
    """

    def load_state_dict(self, state_dict, strict: bool = True,
                        assign: bool = False):
        if strict:
            return super().load_state_dict(state_dict, strict=True,
                                           assign=assign)
        with skip_guard(self):
            return super().load_state_dict(state_dict, strict=False,
                                           assign=assign)


__all__ = [
    'CheckpointMismatchError', 'PARTIAL_LOAD_CONTEXT', 'PARTIAL_LOAD_ENV',
    'PartialLoadMixin', 'allow_partial_load', 'check_state_dict',
    'checkpoint_to_load',
    'compare_state_dict', 'extract_state_dict', 'guard_state_dict_loads',
    'load_checkpoint_file', 'load_from_local', 'load_pretrained',
    'load_state_dict_checked', 'partial_load_allowed',
    'register_safe_loading', 'select_prefix', 'skip_guard'
]
