# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""Checks across the parts of a model, which no part can make alone."""
from mmengine.model import is_model_wrapper

from .backbones import DynaMixer


def check_model(model) -> None:
    """Raise a ValueError naming the setting and its value when the parts of
    a classifier with a DynaMixer backbone cannot work together (the
    backbone and the head are built separately, and a head of the wrong
    width would fail only at the first forward pass)."""
    model = model.module if is_model_wrapper(model) else model
    backbone = getattr(model, 'backbone', None)
    head = getattr(model, 'head', None)
    if not isinstance(backbone, DynaMixer) or getattr(model, 'neck', None) \
            or not isinstance(getattr(head, 'in_channels', None), int):
        return
    stage = backbone.out_indices[-1]  # the head reads the last output
    channels = backbone.embed_dims[stage]
    if head.in_channels != channels:
        raise ValueError(
            f'model.head.in_channels={head.in_channels}, but the DynaMixer '
            f"backbone's output that the head reads (stage {stage}) has "
            f'{channels} channels: set model.head.in_channels={channels}.')
