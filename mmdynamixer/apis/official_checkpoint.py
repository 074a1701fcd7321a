# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""Convert checkpoints of the reference DynaMixer implementation.

The reference model is a flat ``network`` list in which the blocks of one
stage may be split over several entries and each downsampling conv is an
entry of its own (``network.<i>.<j>.*`` blocks, ``network.<i>.proj.*``
downsampling). This module maps it onto this package's
``backbone.downsample_layers`` / ``backbone.stages`` / ``head`` layout and
infers the architecture from the tensor shapes.
"""
import math
import re
from collections import OrderedDict
from typing import Tuple

import torch

from ..models.backbones import DynaMixer
from ..utils.checkpoint import check_state_dict, load_checkpoint_file

WRAPPERS = ('state_dict', 'model')
EMA_WRAPPERS = ('state_dict_ema', 'model_ema')
_BLOCK = re.compile(r'^network\.(\d+)\.(\d+)\.(.+)$')
_DOWN = re.compile(r'^network\.(\d+)\.proj\.(weight|bias)$')
_BLOCK_PARTS = re.compile(
    r'^(norm1|norm2|mlp\.fc[12]|attn\.(mix_[hw]\.(compress|generate|out)'
    r'|mlp_c|reweight\.fc[12]|proj))\.(weight|bias)$')


def unwrap_official(ckpt: dict, ema: bool = False) -> 'OrderedDict':
    """The raw reference state dict inside ``ckpt`` (``state_dict``,
    ``state_dict_ema`` or plain, with or without DDP's ``module.``)."""
    wrappers = EMA_WRAPPERS if ema else WRAPPERS
    state = next((ckpt[k] for k in wrappers if isinstance(ckpt.get(k), dict)),
                 None)
    if state is None:
        if ema:
            raise KeyError(f'No EMA weights ({EMA_WRAPPERS}) in checkpoint; '
                           f'its top-level keys are {sorted(ckpt)[:10]}.')
        state = ckpt
    return OrderedDict((k[7:] if k.startswith('module.') else k, v)
                       for k, v in state.items() if torch.is_tensor(v))


def convert_official(state: dict) -> Tuple['OrderedDict', dict]:
    """Map reference keys to ours and infer the model settings.

    Returns:
        tuple: the converted state dict (``backbone.*`` and ``head.*`` keys of
        an ``ImageClassifier``) and ``dict(arch=..., img_size=...,
        patch_size=..., num_classes=...)``.

    Raises:
        KeyError: listing every key that is not part of a reference model.
    """
    entries = sorted({int(m.group(1)) for k in state
                      for m in [_BLOCK.match(k) or _DOWN.match(k)] if m})
    downsample_entries = {i for i in entries
                          if f'network.{i}.proj.weight' in state}
    stage_of, first_block = {}, {}
    stage, blocks = 0, 0
    for i in entries:
        if i in downsample_entries:
            stage, blocks = stage + 1, 0
            stage_of[i] = stage
            continue
        stage_of[i], first_block[i] = stage, blocks
        blocks += 1 + max(int(m.group(2)) for k in state
                          for m in [_BLOCK.match(k)] if m and
                          int(m.group(1)) == i)

    out, unknown = OrderedDict(), []
    for key, value in state.items():
        if key.startswith('patch_embed.proj.'):
            new = 'backbone.downsample_layers.0.' + key[len('patch_embed.proj.'):]
        elif key.startswith('norm.'):
            new = 'head.norm.' + key[len('norm.'):]
        elif key.startswith('head.'):
            new = 'head.fc.' + key[len('head.'):]
        elif _DOWN.match(key):
            i, name = _DOWN.match(key).groups()
            new = f'backbone.downsample_layers.{stage_of[int(i)]}.{name}'
        elif _BLOCK.match(key) and _BLOCK_PARTS.match(_BLOCK.match(key)[3]):
            i, j, rest = _BLOCK.match(key).groups()
            rest = 'mixer.' + rest[5:] if rest.startswith('attn.') else rest
            new = (f'backbone.stages.{stage_of[int(i)]}.'
                   f'{first_block[int(i)] + int(j)}.{rest}')
        else:
            unknown.append(key)
            continue
        out[new] = value
    if unknown:
        raise KeyError(f'{len(unknown)} keys are not part of a reference '
                       f'DynaMixer checkpoint: {unknown[:20]}')
    if 'backbone.downsample_layers.0.weight' not in out:
        raise KeyError('No patch_embed.proj.weight: this is not a reference '
                       'DynaMixer checkpoint.')
    return out, infer_settings(out)


def infer_settings(state: dict) -> dict:
    """Infer arch, img_size, patch_size and num_classes from our keys."""
    arch = dict(embed_dims=[], depths=[], num_segments=[], reduced_dims=[])
    stage = 0
    while f'backbone.stages.{stage}.0.norm1.weight' in state:
        prefix = f'backbone.stages.{stage}.'
        depth = 1 + max(int(k[len(prefix):].split('.')[0])
                        for k in state if k.startswith(prefix))
        compress = state[prefix + '0.mixer.mix_h.compress.weight']
        generate = state[prefix + '0.mixer.mix_h.generate.weight']
        tokens = math.isqrt(generate.shape[0])
        reduced = generate.shape[1] // tokens
        arch['embed_dims'].append(compress.shape[1])
        arch['depths'].append(depth)
        arch['reduced_dims'].append(reduced)
        arch['num_segments'].append(compress.shape[0] // reduced)
        if stage == 0:
            first_tokens = tokens
        stage += 1
    patch_size = state['backbone.downsample_layers.0.weight'].shape[-1]
    head = state.get('head.fc.weight')
    return dict(arch=arch, img_size=first_tokens * patch_size,
                patch_size=patch_size,
                num_classes=None if head is None else head.shape[0])


def build_classifier(settings: dict):
    """An ImageClassifier matching ``settings`` (from :func:`infer_settings`)."""
    from mmpretrain.registry import MODELS
    head = None
    if settings['num_classes']:
        head = dict(type='DynaMixerClsHead',
                    num_classes=settings['num_classes'],
                    in_channels=settings['arch']['embed_dims'][-1])
    return MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='DynaMixer', arch=settings['arch'],
                      img_size=settings['img_size'],
                      patch_size=settings['patch_size']),
        head=head))


def convert_official_file(src: str, ema: bool = False, arch: str = None):
    """Read, convert and strictly check a reference checkpoint file.

    Args:
        src (str): Path of the reference checkpoint.
        ema (bool): Take ``state_dict_ema`` instead of ``state_dict``.
        arch (str, optional): A published arch name the checkpoint must be.

    Returns:
        tuple: converted state dict and inferred settings.
    """
    state, settings = convert_official(
        unwrap_official(load_checkpoint_file(src), ema=ema))
    if arch is not None:
        expected = DynaMixer.parse_arch(arch)
        if expected != settings['arch']:
            raise ValueError(f'{src} is not DynaMixer-{arch}: it has '
                             f'{settings["arch"]}, {arch!r} is {expected}.')
    check_state_dict(build_classifier(settings), state,
                     source=f'converted {src}')
    return state, settings
