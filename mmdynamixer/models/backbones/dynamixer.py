# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""DynaMixer: A Vision MLP Architecture with Dynamic Mixing (ICML 2022)."""
import re
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmcv.cnn.bricks import DropPath
from mmengine.model import BaseModule, Sequential
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from mmpretrain.registry import MODELS

from ...utils.checkpoint import guard_state_dict_loads, load_pretrained
from ...utils import torch_features
from ..utils import DynaMixerOp, float32_under_autocast, softmax_fp32
from ..utils.selective_recompute import (LeanBranchSum, LeanNormMLP,
                                         recompute_applies)

BRANCHES = ('h', 'w', 'c')


class DynaMixerBlock(BaseModule):
    """Token mixing of one DynaMixer layer on a ``(B, H, W, C)`` grid.

    Columns are mixed by ``mix_h``, rows by ``mix_w``, channels by ``mlp_c``;
    the branches are combined with per-channel weights from a small MLP on
    their mean (split attention, as in ViP), then projected.

    Args:
        embed_dims (int): Channels ``C``.
        grid (tuple[int, int]): Token grid ``(H, W)`` the ops are sized for.
        num_segments (int): Segments of each op.
        reduced_dims (int): Reduced dimension ``d`` of each op.
        generator (str): Mixing-matrix generator, see :class:`DynaMixerOp`.
        branches (Sequence[str]): Branches to use among ``'h'`` (columns),
            ``'w'`` (rows) and ``'c'`` (channels).
        reweight (bool): Combine branches with learned weights; if False,
            they are summed.
        share_hw (bool): Use one op (``mix_h``) for rows and columns.
        proj_drop (float): Dropout after the projection.
        window_strides (tuple[int, int], optional): Sliding-window strides
            of the column and row ops; None for the fixed-size model.
        selective_cp (bool): In training, keep for backward only what the
            expensive matmuls need and recompute the rest
            (:mod:`~mmdynamixer.models.utils.selective_recompute`).
    """

    def __init__(self,
                 embed_dims: int,
                 grid: Tuple[int, int],
                 num_segments: int,
                 reduced_dims: int = 2,
                 generator: str = 'dynamic',
                 branches: Sequence[str] = BRANCHES,
                 reweight: bool = True,
                 share_hw: bool = False,
                 proj_drop: float = 0.,
                 window_strides: Optional[Tuple[int, int]] = None,
                 selective_cp: bool = True,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.selective_cp = selective_cp
        self.window_strides = window_strides or (None, None)
        self.branches = tuple(b for b in BRANCHES if b in branches)
        if len(self.branches) != len(set(branches)) or not self.branches:
            raise ValueError(f'branches must be a non-empty subset of '
                             f'{BRANCHES}, got {tuple(branches)}.')
        if share_hw and grid[0] != grid[1]:
            raise ValueError('share_hw needs a square token grid, got '
                             f'{grid[0]}x{grid[1]}.')
        self.share_hw = share_hw
        op = dict(embed_dims=embed_dims, num_segments=num_segments,
                  reduced_dims=reduced_dims, generator=generator)
        if 'h' in self.branches or (share_hw and 'w' in self.branches):
            self.mix_h = DynaMixerOp(num_tokens=grid[0], **op)
        if 'w' in self.branches and not share_hw:
            self.mix_w = DynaMixerOp(num_tokens=grid[1], **op)
        if 'c' in self.branches:
            self.mlp_c = nn.Linear(embed_dims, embed_dims, bias=False)
        self.reweight = None
        if reweight and len(self.branches) > 1:
            hidden = embed_dims // 4
            self.reweight = nn.Sequential()
            self.reweight.add_module('fc1', nn.Linear(embed_dims, hidden))
            self.reweight.add_module('act', nn.GELU())
            self.reweight.add_module(
                'fc2', nn.Linear(hidden, embed_dims * len(self.branches)))
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop)

    def branch_inputs(self, x: torch.Tensor, lean: bool = False):
        """``(input, linear)`` of each active branch: the branch's output is
        ``linear(input)`` (the op's mixing before its ``out`` projection;
        ``x`` itself for the channel branch).

        With ``lean``, each op's mixing keeps only its weights and input for
        backward (``LeanMix``), and ``(branches, recipes, tensors)`` is
        returned: the recipes and tensors recompute the branches in
        :class:`LeanBranchSum`.
        """
        B, H, W, C = x.shape
        branches, recipes, tensors = [], [], []
        for branch in self.branches:
            if branch == 'c':
                branches.append((x, self.mlp_c))
                recipes.append(None)
                tensors += [x, self.mlp_c.weight, self.mlp_c.bias, None, None]
                continue
            if branch == 'h':  # sequences: (B) x columns (W)
                op, seqs, stride = self.mix_h, x, self.window_strides[0]
            else:  # sequences: (B x rows), one per row
                op = self.mix_h if self.share_hw else self.mix_w
                seqs = x.reshape(B * H, W, 1, C)
                stride = self.window_strides[1]
            if lean:  # through the op's forward, so that its hooks see it
                mixed, weights, win = op(seqs, stride, project=False,
                                         lean=True)
            else:
                mixed = op(seqs, stride, project=False)
            mixed = mixed.view(B, H, W, C)
            branches.append((mixed, op.out))
            if lean:
                recipes.append((op, win))
                tensors += [mixed, op.out.weight, op.out.bias, weights, seqs]
        return (branches, recipes, tensors) if lean else branches

    def branch_weights(self, branches: list) -> torch.Tensor:
        """Per-sample, per-channel weights ``(B, C, K)`` (summing to 1) of
        the branches given as :meth:`branch_inputs`. The mean of a branch
        output over the tokens is the linear map of its input's mean."""
        means = torch.stack([t.mean(dim=(1, 2)) for t, _ in branches], -1)
        return self._branch_weights(means, [lin for _, lin in branches])

    # small, and feeding a softmax: float32 under autocast
    @float32_under_autocast
    def _branch_weights(self, means: torch.Tensor, linears: list):
        # elementwise products, like the reference's weighted sum that they
        # replace, so that FLOP counters give the published model's count
        pooled = sum((means[:, None, :, k] * lin.weight).sum(-1) + (
            0 if lin.bias is None else lin.bias)
                     for k, lin in enumerate(linears))
        logits = self.reweight(pooled).view(*pooled.shape, len(linears))
        return softmax_fp32(logits, -1).to(means.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        if (self.selective_cp and self.reweight is not None
                and recompute_applies()):
            branches, recipes, tensors = self.branch_inputs(x, lean=True)
            weights = self.branch_weights(branches)  # (B, C, K)
            x = LeanBranchSum.apply(recipes, (B, H, W, C), weights, *tensors)
            return self.proj_drop(self.proj(x.view(B, H, W, C)))
        branches = self.branch_inputs(x)
        if self.reweight is None:
            x = sum(linear(t) for t, linear in branches)
            return self.proj_drop(self.proj(x))
        # The branch outputs are linear in their inputs: the per-channel
        # weighted sum folds the weights into per-sample matrices,
        # sum_k t_k @ (W_k^T a_k) + sum_k a_k b_k, so no branch output is
        # ever materialised or kept for backward.
        weights = self.branch_weights(branches)  # (B, C, K)
        bias = sum(weights[..., k] * lin.bias
                   for k, (_, lin) in enumerate(branches)
                   if lin.bias is not None)
        x = bias[:, None]
        for k, (t, lin) in enumerate(branches):
            scaled = lin.weight.t() * weights[:, None, :, k]  # (B, C, C)
            t = t.reshape(B, H * W, C)
            # baddbmm accumulates inside the GEMM; tracers (FLOP counters,
            # ONNX) see the same product as a matmul they know.
            x = x + torch.matmul(t, scaled) if torch.jit.is_tracing() \
                else torch.baddbmm(x, t, scaled)
        return self.proj_drop(self.proj(x.view(B, H, W, C)))


class DynaMixerLayer(BaseModule):
    """A DynaMixer layer: pre-norm token mixing and a pre-norm MLP, each
    with a residual connection and stochastic depth, on ``(B, H, W, C)``.
    ``with_cp`` checkpoints the layer: its activations are recomputed in
    the backward pass instead of being kept."""

    def __init__(self,
                 embed_dims: int,
                 mlp_ratio: float = 3.,
                 drop_path_rate: float = 0.,
                 norm_cfg: Dict = dict(type='LN', eps=1e-5),
                 act_cfg: Dict = dict(type='GELU'),
                 with_cp: bool = False,
                 selective_cp: bool = True,
                 init_cfg=None,
                 **mixer_kwargs):
        super().__init__(init_cfg=init_cfg)
        self.with_cp = with_cp
        hidden = int(embed_dims * mlp_ratio)
        self.norm1 = build_norm_layer(norm_cfg, embed_dims)[1]
        self.mixer = DynaMixerBlock(embed_dims, selective_cp=selective_cp,
                                    **mixer_kwargs)
        self.norm2 = build_norm_layer(norm_cfg, embed_dims)[1]
        self.mlp = nn.Sequential()
        self.mlp.add_module('fc1', nn.Linear(embed_dims, hidden))
        self.mlp.add_module('act', build_activation_layer(act_cfg))
        self.mlp.add_module('fc2', nn.Linear(hidden, embed_dims))
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 \
            else nn.Identity()

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.mixer(self.norm1(x)))
        return x + self.drop_path(self.mlp_of_norm(x))

    def mlp_of_norm(self, x: torch.Tensor) -> torch.Tensor:
        """``mlp(norm2(x))``; with ``selective_cp`` (LayerNorm and GELU),
        keeping only ``x`` and the ``fc1`` output for backward."""
        norm, fc1, act, fc2 = (self.norm2, self.mlp.fc1, self.mlp.act,
                               self.mlp.fc2)
        if (self.mixer.selective_cp and recompute_applies()
                and isinstance(norm, nn.LayerNorm)
                and norm.weight is not None and norm.bias is not None
                and isinstance(act, nn.GELU)):
            return LeanNormMLP.apply(x, norm.weight, norm.bias, norm.eps,
                                     fc1.weight, fc1.bias, act.approximate,
                                     fc2.weight, fc2.bias)
        return self.mlp(norm(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.with_cp and x.requires_grad:
            # keep only the layer's input; recompute the rest in backward
            # (the RNG state is restored, so drop path drops the same)
            return checkpoint(self._forward, x, use_reentrant=False)
        return self._forward(x)


@MODELS.register_module()
class DynaMixer(BaseBackbone):
    """DynaMixer backbone.

    A PyTorch implementation of `DynaMixer: A Vision MLP Architecture with
    Dynamic Mixing <https://arxiv.org/abs/2201.12083>`_ (ICML 2022). A 7x7
    stride-7 patch embedding is followed by stages of DynaMixer layers,
    separated by 2x2 stride-2 convolutions. Each layer mixes every row and
    every column of the token grid with mixing matrices generated from the
    tokens themselves.

    The generators are sized to the token grid, so the published model
    accepts exactly the ``img_size`` it was built for (224 for S/M/L: 32x32
    tokens in stage 1, 16x16 in stage 2). With ``sliding_window=True`` the
    same parameters (and checkpoints) take any input size: every row and
    column is mixed in windows of the pretrained length that slide along it
    (see :meth:`DynaMixerOp.forward`), and the image is zero-padded at
    the bottom and right to a multiple of the total stride (14). At the
    pretrained size it computes exactly what the fixed model does.

    Args:
        arch (str | dict): DynaMixer architecture. A string picks a published
            model: ``'s'``/``'small'``, ``'m'``/``'medium'`` or
            ``'l'``/``'large'``. A dict defines a custom model and needs the
            keys (one entry per stage):

            - **embed_dims** (List[int]): channels of each stage.
            - **depths** (List[int]): layers of each stage.
            - **num_segments** (List[int]): segments ``S`` of each stage.
            - **reduced_dims** (List[int]): reduced dimension ``d``.

            Defaults to ``'s'``.
        img_size (int | tuple): Input size the model is built for.
            Defaults to 224.
        patch_size (int): Patch size of the stem. Defaults to 7.
        in_channels (int): Input channels. Defaults to 3.
        mlp_ratio (float): Hidden ratio of the channel MLPs. Defaults to 3.
        generator (str): Mixing-matrix generator: ``'dynamic'`` (DynaMixer),
            ``'static'`` (a learned matrix) or ``'per_token'``
            (Synthesizer Dense). Defaults to ``'dynamic'``.
        branches (Sequence[str]): Token-mixing branches among ``'h'``
            (columns), ``'w'`` (rows), ``'c'`` (channels).
            Defaults to all three.
        reweight (bool): Combine branches with learned per-channel weights
            (True) or sum them (False). Defaults to True.
        share_hw (bool): Mix rows and columns with one shared op.
            Defaults to False.
        sliding_window (bool): Accept any input size by mixing in sliding
            windows of the pretrained length, for detection and
            segmentation. Defaults to False (the published fixed-size model).
        window_stride (float | Sequence[int], optional): Stride of the
            sliding windows: a fraction of each op's window length, or one
            int per stage. Below 1 windows overlap, so information crosses
            window borders. Only with ``sliding_window=True``.
            Defaults to None (0.5 with ``sliding_window=True``).
        drop_rate (float): Dropout after each token-mixing projection.
            Defaults to 0.
        drop_path_rate (float): Stochastic depth rate; layer ``i`` of the
            ``n`` layers of the whole network drops with rate
            ``drop_path_rate * i / (n - 1)``. The published models use 0.1
            (S, M) and 0.3 (L). Defaults to 0.
        out_indices (int | Sequence[int]): Stages whose output is returned.
            Defaults to -1 (the last stage).
        norm_outputs (bool): Put a norm layer (``norm{i}``, of ``norm_cfg``)
            on the output of each stage of ``out_indices``, as Swin and
            ConvNeXt do for the necks of detectors and segmenters: the raw
            residual streams grow with depth and differ in scale between
            stages. New layers: an ImageNet checkpoint lacks them, and
            they start from their init (:meth:`fresh_keys`). Defaults to
            False (the published classifier, unchanged).
        frozen_stages (int): Stages to freeze (the first ``frozen_stages``
            stages with their patch embedding / downsampling; parameters stop
            updating and stay in eval mode). 0 freezes nothing. Defaults to 0.
        norm_cfg (dict): Norm layer config. Defaults to LayerNorm, eps 1e-5.
        act_cfg (dict): Activation of the MLPs. Defaults to GELU.
        with_cp (bool): Use activation checkpointing per layer, to save
            memory at the cost of a second forward in backward.
            Defaults to False.
        selective_cp (bool): In training, keep for backward the results of
            the expensive matmuls and recompute the cheap tensors
            (LayerNorm and GELU outputs, gathered and mixed tokens, the
            per-sample branch matrices): about half the saved activations
            of a straightforward implementation for a few percent of the
            time, with the same results. No effect at inference, under
            tracing or under ``torch.compile`` (whose partitioner makes this
            choice itself). Combines with ``with_cp``. Defaults to True.
        pretrained (str, optional): Not used: MMSegmentation hands its
            config's ``model.pretrained`` to the backbone, and anything but
            None raises an error that says to use ``init_cfg`` instead.
        init_cfg (dict | list[dict], optional): Initialization config.
            Defaults to the published init (truncated normal std 0.02 for
            linear layers, ones and zeros for LayerNorm, PyTorch's default
            for convolutions).

    Examples:
        >>> from mmpretrain.models import build_backbone
        >>> import mmdynamixer  # noqa: F401 registers DynaMixer
        >>> import torch
        >>> model = build_backbone(dict(type='DynaMixer', arch='s',
        ...                             out_indices=(0, 1)))
        >>> outs = model(torch.rand(1, 3, 224, 224))
        >>> for out in outs:
        ...     print(out.shape)
        torch.Size([1, 192, 32, 32])
        torch.Size([1, 384, 16, 16])
    """
    arch_zoo = {
        **dict.fromkeys(['s', 'small'], {
            'embed_dims': [192, 384],
            'depths': [4, 14],
            'num_segments': [8, 16],
            'reduced_dims': [2, 2],
        }),
        **dict.fromkeys(['m', 'medium'], {
            'embed_dims': [256, 512],
            'depths': [7, 17],
            'num_segments': [8, 16],
            'reduced_dims': [2, 2],
        }),
        **dict.fromkeys(['l', 'large'], {
            'embed_dims': [256, 512],
            'depths': [8, 28],
            'num_segments': [8, 16],
            'reduced_dims': [8, 8],
        }),
    }  # yapf: disable
    arch_keys = ('embed_dims', 'depths', 'num_segments', 'reduced_dims')

    def __init__(self,
                 arch: Union[str, dict] = 's',
                 img_size: Union[int, Tuple[int, int]] = 224,
                 patch_size: int = 7,
                 in_channels: int = 3,
                 mlp_ratio: float = 3.,
                 generator: str = 'dynamic',
                 branches: Sequence[str] = BRANCHES,
                 reweight: bool = True,
                 share_hw: bool = False,
                 sliding_window: bool = False,
                 window_stride: Union[float, Sequence[int], None] = None,
                 drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 out_indices: Union[int, Sequence[int]] = -1,
                 norm_outputs: bool = False,
                 frozen_stages: int = 0,
                 norm_cfg: Dict = dict(type='LN', eps=1e-5),
                 act_cfg: Dict = dict(type='GELU'),
                 with_cp: bool = False,
                 selective_cp: bool = True,
                 pretrained: Optional[str] = None,
                 init_cfg=[
                     dict(type='TruncNormal', layer='Linear', std=.02,
                          bias=0.),
                     dict(type='Constant', layer='LayerNorm', val=1.,
                          bias=0.),
                 ]):
        super().__init__(init_cfg=init_cfg)
        if pretrained is not None:
            raise ValueError(
                f'pretrained={pretrained!r} reached the DynaMixer backbone '
                "(MMSegmentation passes its config's `model.pretrained` to "
                'the backbone). Set model.pretrained=None and give the '
                "checkpoint as backbone init_cfg=dict(type='Pretrained', "
                "checkpoint=..., prefix='backbone.').")
        self.arch_settings = self.parse_arch(arch)
        self.embed_dims = self.arch_settings['embed_dims']
        self.num_stages = len(self.embed_dims)
        self.img_size = (img_size, img_size) if isinstance(img_size, int) \
            else tuple(img_size)
        self.patch_size = patch_size
        self.grids = self.token_grids(self.img_size, patch_size,
                                      self.num_stages)
        self.out_indices = self.parse_out_indices(out_indices,
                                                  self.num_stages)
        self.frozen_stages = self.parse_frozen_stages(frozen_stages,
                                                      self.num_stages)
        self.check_switches(branches, reweight, share_hw, sliding_window,
                            window_stride, drop_path_rate)
        if selective_cp and not torch_features.SELECTIVE_RECOMPUTE:
            torch_features.log_unavailable(
                'selective_cp', 'torch >= 2.3 (it steps aside when '
                'torch.compiler.is_compiling())', 'DynaMixer layers keep all '
                'their activations for backward, as with selective_cp=False')
        self.sliding_window = sliding_window
        strides = self.window_strides(
            self.grids, 0.5 if window_stride is None else window_stride) \
            if sliding_window else [None] * self.num_stages

        depths = self.arch_settings['depths']
        dpr = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.downsample_layers = nn.ModuleList()
        self.stages = nn.ModuleList()
        for i, dims in enumerate(self.embed_dims):
            if i == 0:
                down = nn.Conv2d(in_channels, dims, patch_size, patch_size)
            else:
                down = nn.Conv2d(self.embed_dims[i - 1], dims, 2, 2)
            self.downsample_layers.append(down)
            first = sum(depths[:i])
            self.stages.append(Sequential(*[
                DynaMixerLayer(
                    dims,
                    mlp_ratio=mlp_ratio,
                    drop_path_rate=dpr[first + j],
                    norm_cfg=norm_cfg,
                    act_cfg=act_cfg,
                    with_cp=with_cp,
                    selective_cp=selective_cp,
                    grid=self.grids[i],
                    num_segments=self.arch_settings['num_segments'][i],
                    reduced_dims=self.arch_settings['reduced_dims'][i],
                    generator=generator,
                    branches=branches,
                    reweight=reweight,
                    share_hw=share_hw,
                    proj_drop=drop_rate,
                    window_strides=strides[i]) for j in range(depths[i])
            ]))
        self.norm_outputs = norm_outputs
        if norm_outputs:
            for i in self.out_indices:
                self.add_module(f'norm{i}', build_norm_layer(
                    norm_cfg, self.embed_dims[i])[1])
        self._freeze_stages()
        # every later load_state_dict into the backbone, by any library or
        # tool, must fit it exactly (MMEngine's loaders are not strict)
        guard_state_dict_loads(self)

    @classmethod
    def parse_arch(cls, arch: Union[str, dict]) -> dict:
        if isinstance(arch, str):
            key = arch.lower()
            if key not in cls.arch_zoo:
                raise ValueError(f'Unknown DynaMixer arch {arch!r}; choose '
                                 f'one of {sorted(cls.arch_zoo)} or pass a '
                                 f'dict with keys {list(cls.arch_keys)}.')
            return {k: list(v) for k, v in cls.arch_zoo[key].items()}
        if not isinstance(arch, dict):
            raise TypeError(f'arch must be a str or a dict, got {type(arch)}')
        missing = [k for k in cls.arch_keys if k not in arch]
        if missing:
            raise ValueError(f'Custom DynaMixer arch is missing the keys '
                             f'{missing} (it needs {list(cls.arch_keys)}).')
        unknown = sorted(set(arch) - set(cls.arch_keys))
        if unknown:
            raise ValueError(f'Custom DynaMixer arch has unknown keys '
                             f'{unknown} (valid: {list(cls.arch_keys)}).')
        settings = {k: list(arch[k]) for k in cls.arch_keys}
        lengths = {k: len(v) for k, v in settings.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError('Every key of a custom DynaMixer arch needs one '
                             f'entry per stage, got lengths {lengths}.')
        return settings

    @staticmethod
    def token_grids(img_size, patch_size, num_stages):
        """Token grid ``(H, W)`` of each stage for a fixed input size."""
        h, w = img_size
        if h % patch_size or w % patch_size:
            raise ValueError(f'img_size {h}x{w} is not a multiple of '
                             f'patch_size={patch_size}.')
        grids = [(h // patch_size, w // patch_size)]
        for _ in range(num_stages - 1):
            gh, gw = grids[-1]
            if gh % 2 or gw % 2:
                raise ValueError(
                    f'img_size {h}x{w} gives an odd token grid {gh}x{gw} '
                    'before a 2x2 downsampling; choose an img_size whose '
                    f'grid divides by {2 ** (num_stages - 1)}.')
            grids.append((gh // 2, gw // 2))
        return grids

    @staticmethod
    def window_strides(grids, window_stride):
        """(column, row) window strides of each stage."""
        if isinstance(window_stride, (int, float)) and \
                not isinstance(window_stride, bool):
            if not 0 < window_stride <= 1:
                raise ValueError('A fractional window_stride must be in '
                                 f'(0, 1], got {window_stride}.')
            return [tuple(max(1, round(n * window_stride)) for n in grid)
                    for grid in grids]
        strides = list(window_stride)
        if len(strides) != len(grids) or not all(
                0 < s <= min(g) for s, g in zip(strides, grids)):
            raise ValueError(f'window_stride needs one int per stage in '
                             f'[1, window length] for windows {grids}, got '
                             f'{window_stride}.')
        return [(s, s) for s in strides]

    @staticmethod
    def parse_out_indices(out_indices, num_stages):
        if isinstance(out_indices, int):
            out_indices = [out_indices]
        parsed = []
        for index in out_indices:
            if not (isinstance(index, int) and
                    -num_stages <= index < num_stages):
                raise ValueError(
                    f'out_indices {index!r} is out of range for '
                    f'{num_stages} stages: valid are 0..{num_stages - 1} '
                    f'(or -{num_stages}..-1 from the end).')
            parsed.append(index % num_stages)
        return tuple(sorted(set(parsed)))

    @staticmethod
    def parse_frozen_stages(frozen_stages, num_stages):
        if not (isinstance(frozen_stages, int) and
                0 <= frozen_stages <= num_stages):
            raise ValueError(
                f'frozen_stages={frozen_stages!r} is out of range: valid are '
                f'0 (nothing frozen) .. {num_stages} (all {num_stages} '
                'stages).')
        return frozen_stages

    @staticmethod
    def check_switches(branches, reweight, share_hw, sliding_window,
                       window_stride, drop_path_rate):
        """Refuse settings that contradict each other."""
        branches = tuple(branches)
        if share_hw and not {'h', 'w'} <= set(branches):
            raise ValueError(
                f'share_hw=True shares one op between rows and columns, but '
                f"branches={branches} lacks 'h' or 'w': set share_hw=False, "
                "or keep both 'h' and 'w'.")
        if reweight and len(set(branches)) == 1:
            raise ValueError(
                f'reweight=True weighs the branches against each other, but '
                f'branches={branches} has one: set reweight=False.')
        if window_stride is not None and not sliding_window:
            raise ValueError(
                f'window_stride={window_stride!r} is set, but it applies only '
                'to the sliding-window mode: add sliding_window=True, or '
                'remove window_stride.')
        if not 0 <= drop_path_rate < 1:
            raise ValueError(f'drop_path_rate={drop_path_rate} must be in '
                             '[0, 1).')

    def fresh_keys(self) -> tuple:
        """Keys a pretrained checkpoint may lack, all together: layers that
        this configuration adds on top of the published model (the output
        norms of ``norm_outputs``)."""
        if not self.norm_outputs:
            return ()
        return tuple(f'norm{i}.{name}' for i in self.out_indices
                     for name, _ in getattr(self, f'norm{i}')
                     .named_parameters())

    def mismatch_hints(self, missing, unexpected, prefix: str = '') -> list:
        """Hints for a checkpoint whose output norms do not match this
        backbone's (a dense model's checkpoint, built with other
        ``out_indices`` or without ``norm_outputs``)."""
        def stages(keys):
            found = (re.fullmatch(rf'{re.escape(prefix)}norm(\d+)\..+', k)
                     for k in keys)
            return {int(m.group(1)) for m in found if m}

        own = set(self.out_indices) if self.norm_outputs else set()
        theirs = (own - stages(missing)) | stages(unexpected)
        if theirs == own or not theirs:
            return []
        return [f'The checkpoint has output norms for stages '
                f'{sorted(theirs)}, this backbone for {sorted(own)} '
                f'(norm_outputs={self.norm_outputs}, out_indices='
                f'{self.out_indices}): build it with norm_outputs=True, '
                f'out_indices={tuple(sorted(theirs))}.']

    def get_layer_depth(self, param_name: str, prefix: str = ''):
        """The depth of a parameter, for layer-wise learning-rate decay.

        The stem is depth 0 and the ``L`` DynaMixer layers are depths 1 to
        ``L`` in order; a downsampling layer shares the depth of the first
        layer after it. The output norms and everything outside the backbone
        (names without ``prefix``: neck, heads) are depth ``L + 1``: they
        are new, so they train at the full learning rate.

        Args:
            param_name (str): The name of the parameter.
            prefix (str): The prefix of the backbone's parameter names
                (``'backbone.'`` in a classifier or detector).
                Defaults to an empty string.

        Returns:
            Tuple[int, int]: The depth and the number of depths (``L + 2``),
            as MMPretrain's ``LearningRateDecayOptimWrapperConstructor``
            takes them: the learning-rate scale is
            ``rate ** (L + 1 - depth)``.
        """
        depths = self.arch_settings['depths']
        num_layers = sum(depths)
        if not param_name.startswith(prefix):
            return num_layers + 1, num_layers + 2
        parts = param_name[len(prefix):].split('.')
        if parts[0] == 'downsample_layers':
            stage = int(parts[1])
            depth = 0 if stage == 0 else sum(depths[:stage]) + 1
        elif parts[0] == 'stages':
            stage, layer = int(parts[1]), int(parts[2])
            depth = sum(depths[:stage]) + layer + 1
        else:  # the output norms
            depth = num_layers + 1
        return depth, num_layers + 2

    def init_weights(self):
        """Initialise, then load a ``Pretrained`` entry of ``init_cfg`` (a
        dict, or one entry of a list) strictly: every key must fit."""
        original = self.init_cfg
        cfgs = original if isinstance(original, list) else \
            [original] if original else []
        pretrained = [c for c in cfgs if c.get('type') == 'Pretrained']
        if not pretrained:
            super().init_weights()
            return
        if len(pretrained) > 1:
            raise ValueError('init_cfg has more than one Pretrained entry: '
                             f'{pretrained}; keep one.')
        self.init_cfg = [c for c in cfgs if c.get('type') != 'Pretrained']
        try:  # the other entries first: they init what the checkpoint lacks
            super().init_weights()
        finally:
            self.init_cfg = original
        load_pretrained(self, pretrained[0], fresh=self.fresh_keys())
        self._is_init = True

    @property
    def total_stride(self) -> int:
        return self.patch_size * 2**(self.num_stages - 1)

    def check_input_size(self, x: torch.Tensor):
        if self.sliding_window:
            return
        if tuple(x.shape[-2:]) != self.img_size:
            h, w = self.img_size
            raise ValueError(
                f'DynaMixer was built for {h}x{w} inputs (token grids '
                f'{self.grids}), got {x.shape[-2]}x{x.shape[-1]}. Its mixing '
                f'generators are sized to that grid: resize or crop inputs '
                f'to {h}x{w} (e.g. `ResizeEdge`+`CenterCrop` in the '
                'pipeline), or build the backbone with `sliding_window=True` '
                'to run any size with the same weights.')

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        self.check_input_size(x)
        if self.sliding_window:  # whole token grids in every stage
            stride = self.total_stride
            pad_h = -x.shape[-2] % stride
            pad_w = -x.shape[-1] % stride
            if pad_h or pad_w:
                x = F.pad(x, (0, pad_w, 0, pad_h))
        outs = []
        for i, (down, stage) in enumerate(
                zip(self.downsample_layers, self.stages)):
            x = down(x).permute(0, 2, 3, 1)  # tokens channels-last: B H W C
            x = stage(x)
            if i in self.out_indices:
                out = getattr(self, f'norm{i}')(x) if self.norm_outputs \
                    else x
                outs.append(out.permute(0, 3, 1, 2).contiguous())
            x = x.permute(0, 3, 1, 2)
        return tuple(outs)

    def _freeze_stages(self):
        for i in range(min(self.frozen_stages, self.num_stages)):
            for module in (self.downsample_layers[i], self.stages[i]):
                module.eval()
                for param in module.parameters():
                    param.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        return self
