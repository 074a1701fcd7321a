# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""Gradient-weighted class activation maps for DynaMixer classifiers.

DynaMixer's layers work on channels-last token grids ``(B, H, W, C)``, where
MMPretrain's ``vis_cam.py`` (through pytorch-grad-cam) expects ``(B, C, H,
W)`` feature maps. Here the layout is part of the methods, which keep
MMPretrain's ``--method`` names:

- ``gradcam`` (Selvaraju et al., ICCV 2017): each channel is weighted by
  the mean over the grid of the class score's gradient.
- ``layercam`` (Jiang et al., IEEE TIP 2021): each position of each
  channel is weighted by its own positive gradient.

Both end in a ReLU of the sum over channels. LayerCAM is the default:
DynaMixer mixes every token with its whole row and column from the first
layer on, so the gradient of one channel is spread over the grid and
Grad-CAM's grid-mean weight no longer says where the evidence is; the
per-position weight does (on the digits model, LayerCAM puts 2.3x as much
per pixel on strokes as on background, Grad-CAM 1.04x, by
``tools/analysis_tools/cam_localization.py``).
"""
from typing import Optional

import torch
import torch.nn.functional as F

from .mixing import find_dynamixer

CAM_METHODS = ('layercam', 'gradcam')


def target_layer(model, name: Optional[str] = None):
    """``(name, layer)``: the DynaMixer layer ``name`` of ``model`` (e.g.
    ``'backbone.stages.1.1'``), by default the last one (the finest
    features the head reads); an unknown name, or a module that is not a
    DynaMixer layer, names the valid ones."""
    backbone = find_dynamixer(model)
    layers = {f'backbone.stages.{i}.{j}': layer
              for i, stage in enumerate(backbone.stages)
              for j, layer in enumerate(stage)}
    names = list(layers)
    if name is None:
        name = names[-1]
    if name not in layers:
        raise ValueError(
            f'--target-layers {name!r} is not a DynaMixer layer of this '
            f'model: valid are {names[0]} .. {names[-1]} (stage.layer, e.g. '
            f'{names[-1]}).')
    return name, layers[name]


def token_pixels(model, name: str) -> int:
    """Pixels per token side at the layer ``name`` (``backbone.stages.i.j``):
    the stride of its stage's token grid, as the backbone gives it."""
    backbone = find_dynamixer(model)
    layer = model.get_submodule(name)
    for stage, layers in enumerate(backbone.stages):
        if any(layer is other for other in layers):
            return backbone.stage_strides[stage]
    raise ValueError(f'{name!r} is not a DynaMixer layer of this model.')


def check_method(method: str) -> str:
    """``method`` lower-cased, or a ValueError naming the valid ones."""
    if method.lower() not in CAM_METHODS:
        raise ValueError(
            f'--method {method!r} is not supported for DynaMixer: valid are '
            f'{", ".join(CAM_METHODS)} (pytorch-grad-cam\'s other methods '
            'assume (B, C, H, W) feature maps).')
    return method.lower()


def grad_cam(model, inputs: torch.Tensor, layer,
             category: Optional[int] = None, method: str = 'layercam'):
    """The class activation map of ``category`` (default: the predicted
    class) at ``layer`` (its output ``(1, H, W, C)``) for one preprocessed
    image, by ``method`` (``'layercam'`` or ``'gradcam'``).

    Returns:
        tuple: ``(cam, category, score)``: the ``(H, W)`` map scaled to
        [0, 1] (all zeros when nothing raises the score), the class and
        its softmax score.
    """
    method = check_method(method)
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
    if method == 'gradcam':
        weights = grads.mean(dim=(0, 1))  # one per channel
    else:
        weights = F.relu(grads)  # one per position and channel
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
