# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""Grad-CAM (Selvaraju et al., ICCV 2017) for DynaMixer classifiers.

DynaMixer's layers work on channels-last token grids ``(B, H, W, C)``, where
MMPretrain's ``vis_cam.py`` (through pytorch-grad-cam) expects ``(B, C, H,
W)`` feature maps. Here the layout is part of the method: the weight of
each channel is the mean over the grid of the gradient of the class score,
and the map is the ReLU of the weighted sum of the channels.
"""
from typing import Optional

import torch
import torch.nn.functional as F

from .mixing import find_dynamixer


def default_target_layer(model):
    """The last DynaMixer layer: the finest features the head reads."""
    backbone = find_dynamixer(model)
    return backbone.stages[-1][-1]


def grad_cam(model, inputs: torch.Tensor, layer,
             category: Optional[int] = None):
    """The Grad-CAM of ``category`` (default: the predicted class) at
    ``layer`` (its output ``(1, H, W, C)``) for one preprocessed image.

    Returns:
        tuple: ``(cam, category, score)``: the ``(H, W)`` map scaled to
        [0, 1] (all zeros when no channel raises the score), the class and
        its softmax score.
    """
    saved = {}

    def keep(module, args, output):
        output.retain_grad()
        saved['features'] = output

    handle = layer.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            logits = model(inputs[:1], mode='tensor')
            num_classes = logits.shape[-1]
            if category is None:
                category = int(logits[0].argmax())
            elif not 0 <= category < num_classes:
                raise ValueError(
                    f'--target-category {category} is out of range: the '
                    f'model has {num_classes} classes, valid are 0..'
                    f'{num_classes - 1}.')
            model.zero_grad(set_to_none=True)
            logits[0, category].backward()
    finally:
        handle.remove()
    features = saved['features'][0].detach()  # (H, W, C)
    grads = saved['features'].grad[0]
    weights = grads.mean(dim=(0, 1))  # (C, )
    cam = F.relu((features * weights).sum(-1))
    if cam.max() > 0:
        cam = cam / cam.max()
    score = logits[0].detach().softmax(-1)[category].item()
    return cam, category, score


def cam_on_image(cam: torch.Tensor, size: tuple,
                 token_pixels: int) -> torch.Tensor:
    """``cam`` ``(H, W)``, one value per token of ``token_pixels`` pixels,
    upsampled bilinearly to ``size`` ``(h, w)`` of the image the model saw
    (a sliding model's grid also covers its padding at the bottom and
    right, which is cropped)."""
    H, W = cam.shape
    up = F.interpolate(cam[None, None], size=(H * token_pixels,
                                              W * token_pixels),
                       mode='bilinear', align_corners=False)[0, 0]
    return up[:size[0], :size[1]]
