# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""Strict loading of ``init_cfg=dict(type='Pretrained', ...)``.

MMEngine's own ``Pretrained`` init loads non-strictly and only logs what did
not fit, so a checkpoint of another model silently leaves random weights.
Here every parameter must be found with the right shape, or loading fails
with the list of what is missing, unexpected or mis-shaped.
"""
from ...utils.checkpoint_io import extract_state_dict, load_checkpoint_file

REFERENCE_HINT = ('It looks like a checkpoint of the reference DynaMixer '
                  'implementation: convert it first with '
                  'tools/model_converters/dynamixer_to_mmpretrain.py.')


def _listing(names, limit=10):
    names = sorted(names)
    more = f' ... and {len(names) - limit} more' if len(names) > limit else ''
    return ', '.join(names[:limit]) + more


def check_state_dict(module, state_dict, source='checkpoint'):
    """Raise a ValueError naming every key of ``module`` that ``state_dict``
    lacks, every extra key and every shape mismatch."""
    own = module.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [
        f'{k}: checkpoint {tuple(state_dict[k].shape)} vs model '
        f'{tuple(own[k].shape)}' for k in own
        if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    if not (missing or unexpected or mismatched):
        return
    lines = [f'{source} does not fit {type(module).__name__}:']
    if missing:
        lines.append(f'  missing keys ({len(missing)}): {_listing(missing)}')
    if unexpected:
        lines.append(f'  unexpected keys ({len(unexpected)}): '
                     f'{_listing(unexpected)}')
    if mismatched:
        lines.append(f'  shape mismatches ({len(mismatched)}): '
                     f'{_listing(mismatched, 5)}')
        lines.append('  A fixed-size DynaMixer sizes its generators to the '
                     'token grid: build it with the arch and img_size the '
                     'checkpoint was trained with.')
    if any(k.startswith(('network.', 'patch_embed.')) for k in unexpected):
        lines.append('  ' + REFERENCE_HINT)
    raise ValueError('\n'.join(lines))


def load_pretrained_strict(module, init_cfg: dict):
    """Load ``init_cfg['checkpoint']`` (optionally under ``prefix``) into
    ``module``, requiring an exact fit."""
    path = init_cfg.get('checkpoint')
    if not path:
        raise ValueError("init_cfg of type 'Pretrained' needs 'checkpoint'.")
    state_dict = extract_state_dict(
        load_checkpoint_file(path, init_cfg.get('map_location', 'cpu')))
    prefix = init_cfg.get('prefix')
    if prefix:
        prefix = prefix if prefix.endswith('.') else prefix + '.'
        selected = {k[len(prefix):]: v for k, v in state_dict.items()
                    if k.startswith(prefix)}
        if not selected:
            heads = sorted({k.split('.')[0] + '.' for k in state_dict})
            raise ValueError(f'No key of {path} starts with prefix '
                             f'{prefix!r}; its top-level prefixes are {heads}.')
        state_dict = selected
    check_state_dict(module, state_dict, source=path)
    module.load_state_dict(state_dict, strict=True)
