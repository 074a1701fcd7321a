# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""Checks across the parts of a model, which no part can make alone: the
widths and strides that a head or neck expects against what a DynaMixer
backbone gives (each part is built separately, and a mismatch fails late,
at the first forward pass, or never: anchors of the wrong stride train a
detector that is silently worse)."""
from mmengine.model import is_model_wrapper

from .backbones import DynaMixer


def backbone_strides(backbone: DynaMixer) -> list:
    """The stride of each output of the backbone (7 and 14 for the
    published models), as the backbone gives it."""
    return [backbone.stage_strides[i] for i in backbone.out_indices]


def neck_strides(neck, strides: list) -> list:
    """The strides of an FPN-like neck's outputs (``start_level``,
    ``backbone_end_level``, ``num_outs``; each extra level halves the
    resolution), or ``strides`` when there is no such neck."""
    if neck is None or not hasattr(neck, 'num_outs'):
        return list(strides)
    end = getattr(neck, 'backbone_end_level', len(strides))
    levels = list(strides[getattr(neck, 'start_level', 0):end])
    while len(levels) < neck.num_outs:
        levels.append(levels[-1] * 2)
    return levels[:neck.num_outs]


def _mismatch(setting, given, real, what, fix=None):
    return ValueError(
        f'{setting}={given}, but {what} {real}: set {setting}='
        f'{real if fix is None else fix}.')


def _check_channels(backbone, neck, heads):
    channels = [backbone.embed_dims[i] for i in backbone.out_indices]
    what = (f'the DynaMixer backbone (out_indices={backbone.out_indices}) '
            'gives channels')
    if neck is not None and isinstance(getattr(neck, 'in_channels', None),
                                       (list, tuple)):
        if list(neck.in_channels) != channels:
            raise _mismatch('model.neck.in_channels', list(neck.in_channels),
                            channels, what)
        return
    if neck is not None:
        return
    for name, head in heads:  # heads on the backbone itself (UPerNet)
        index = getattr(head, 'in_index', None)
        given = getattr(head, 'in_channels', None)
        if index is None or given is None:
            continue
        if isinstance(index, int):
            index = [index]
            given = [given]
        if any(not 0 <= i < len(channels) for i in index):
            raise ValueError(
                f'model.{name}.in_index={getattr(head, "in_index")} picks '
                f'outputs the backbone does not have: it gives '
                f'{len(channels)} outputs (out_indices='
                f'{backbone.out_indices}), valid indices are 0..'
                f'{len(channels) - 1}.')
        real = [channels[i] for i in index]
        if list(given) != real:
            given = given[0] if len(given) == 1 else list(given)
            raise _mismatch(f'model.{name}.in_channels', given,
                            real[0] if len(real) == 1 else real, what)


def _check_strides(model, backbone, neck):
    levels = neck_strides(neck, backbone_strides(backbone))
    what = ('the DynaMixer backbone and the neck give feature maps of '
            'strides')
    for name in ('rpn_head', 'bbox_head'):
        generator = getattr(getattr(model, name, None), 'prior_generator',
                            None)
        strides = getattr(generator, 'strides', None)
        if strides is None:
            continue
        given = [s[0] if isinstance(s, (tuple, list)) else s
                 for s in strides]
        if given != levels[:len(given)] or len(given) > len(levels):
            raise _mismatch(f'model.{name}.anchor_generator.strides', given,
                            levels, what)
    roi_head = getattr(model, 'roi_head', None)
    for name in ('bbox_roi_extractor', 'mask_roi_extractor'):
        strides = getattr(getattr(roi_head, name, None), 'featmap_strides',
                          None)
        if strides is not None and list(strides) != levels[:len(strides)]:
            raise _mismatch(f'model.roi_head.{name}.featmap_strides',
                            list(strides), levels[:len(strides)], what)
    head = getattr(model, 'decode_head', None)
    strides = getattr(head, 'feature_strides', None)
    if strides is not None:
        index = head.in_index if isinstance(head.in_index, (list, tuple)) \
            else [head.in_index]
        real = [levels[i] for i in index if i < len(levels)]
        if list(strides) != real:
            raise _mismatch('model.decode_head.feature_strides',
                            list(strides), real, what)


def check_model(model) -> None:
    """Raise a ValueError naming the setting, its value and the value that
    works, when the parts of a model with a DynaMixer backbone cannot work
    together: a classifier head of the wrong width; a neck or head whose
    input channels differ from the backbone's outputs; anchors, RoI
    extractors or segmentation heads whose strides differ from the feature
    maps'. Models with other backbones pass unchecked."""
    model = model.module if is_model_wrapper(model) else model
    backbone = getattr(model, 'backbone', None)
    if not isinstance(backbone, DynaMixer):
        return
    neck = getattr(model, 'neck', None)
    if isinstance(neck, (list, tuple)):  # a sequence of necks: unchecked
        return
    head = getattr(model, 'head', None)
    if neck is None and isinstance(getattr(head, 'in_channels', None), int):
        stage = backbone.out_indices[-1]  # a classifier head reads the last
        channels = backbone.embed_dims[stage]
        if head.in_channels != channels:
            raise ValueError(
                f'model.head.in_channels={head.in_channels}, but the '
                f"DynaMixer backbone's output that the head reads (stage "
                f'{stage}) has {channels} channels: set model.head.'
                f'in_channels={channels}.')
        return
    heads = [(name, getattr(model, name)) for name in
             ('decode_head', 'auxiliary_head')
             if getattr(model, name, None) is not None]
    _check_channels(backbone, neck, heads)
    _check_strides(model, backbone, neck)
