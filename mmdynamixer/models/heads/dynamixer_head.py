# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
from typing import Dict, Tuple

import torch
import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmpretrain.models.heads import ClsHead
from mmpretrain.registry import MODELS

from ...utils.checkpoint import PartialLoadMixin, guard_state_dict_loads


@MODELS.register_module()
class DynaMixerClsHead(PartialLoadMixin, ClsHead):
    """The classifier of the published DynaMixer.

    A LayerNorm on every token of the last stage, the mean over tokens, and a
    linear layer. Hard labels and the soft labels of Mixup/CutMix both work
    through :class:`mmpretrain.models.heads.ClsHead`'s loss.

    Every ``load_state_dict`` into it must fit its keys exactly; its own
    ``load_state_dict(sd, strict=False)`` returns the missing and unexpected
    keys, as in PyTorch (:class:`~mmdynamixer.utils.PartialLoadMixin`).

    Args:
        num_classes (int): Number of categories.
        in_channels (int): Channels of the last backbone stage.
        norm_cfg (dict): Norm applied to each token. Defaults to LayerNorm
            with eps 1e-5.
        init_cfg (dict | list[dict]): Initialization config. Defaults to a
            truncated normal (std 0.02) linear layer with zero bias.
        **kwargs: ``loss``, ``topk``, ``cal_acc`` of :class:`ClsHead`.

    Examples:
        >>> import torch
        >>> head = DynaMixerClsHead(num_classes=10, in_channels=384)
        >>> head((torch.rand(2, 384, 16, 16), )).shape
        torch.Size([2, 10])
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 norm_cfg: Dict = dict(type='LN', eps=1e-5),
                 init_cfg=[
                     dict(type='TruncNormal', layer='Linear', std=.02,
                          bias=0.),
                     dict(type='Constant', layer='LayerNorm', val=1.,
                          bias=0.),
                 ],
                 **kwargs):
        super().__init__(init_cfg=init_cfg, **kwargs)
        for name, value in (('num_classes', num_classes),
                            ('in_channels', in_channels)):
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f'{name}={value!r} must be an int >= 1.')
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.norm = build_norm_layer(norm_cfg, in_channels)[1]
        self.fc = nn.Linear(in_channels, num_classes)
        guard_state_dict_loads(self)  # every load must fit, as the backbone

    def pre_logits(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        """Normalised, token-averaged features of the last stage (B, C)."""
        x = feats[-1]
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f'{type(self).__name__} expects (B, {self.in_channels}, H, W) '
                f'features from the last stage, got {tuple(x.shape)}: set '
                "the head's in_channels to the backbone's last embed_dims.")
        tokens = x.flatten(2).transpose(1, 2)  # (B, H*W, C)
        return self.norm(tokens).mean(dim=1)

    def forward(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        # the scores in at least float32, also under autocast: the loss,
        # the softmax of the predictions and their numpy copies (the
        # Inferencer's) need no lower precision
        scores = self.fc(self.pre_logits(feats))
        return scores if scores.dtype == torch.float64 else scores.float()
