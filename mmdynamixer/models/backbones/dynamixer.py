# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""DynaMixer: A Vision MLP Architecture with Dynamic Mixing (ICML 2022).

The whole model in one file, top to bottom as in the paper (Wang et al.,
2022, Sec. 3 and Algorithm 1):

- :class:`DynaMixerOp`: the DynaMixer operation on sequences of ``N``
  tokens: compress each token to ``d`` features per segment, generate an
  ``N x N`` matrix from a segment's ``N * d`` features, softmax over the
  input tokens, mix the segment's channels with it, fuse the segments.
- :class:`DynaMixerBlock`: the token mixing of a layer: the op along every
  column, another along every row, a channel projection, reweighted per
  channel and projected.
- :class:`DynaMixerLayer`: pre-norm token mixing and pre-norm MLP, each with
  a residual connection and stochastic depth.
- :class:`DynaMixer`: the MMPretrain backbone: a patch embedding and stages
  of layers separated by 2x2 downsampling.

How much of a training step is kept for backward is not part of the
computation: :func:`keep_channel_matmuls` is the selective activation
checkpointing policy that the backbone applies around each layer
(``selective_cp``), and the argument checks are grouped at the end of
:class:`DynaMixer`.
"""
import functools
import re
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmcv.cnn.bricks import DropPath
from mmengine.model import BaseModule, Sequential
from mmengine.model.weight_init import trunc_normal_
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from mmpretrain.registry import MODELS
from torch.utils import checkpoint as activation_checkpoint

from ...utils import torch_features
from ...utils.checkpoint import (PartialLoadMixin, guard_state_dict_loads,
                                 load_pretrained)

GENERATORS = ('dynamic', 'static', 'per_token')
BRANCHES = ('h', 'w', 'c')
# The token-grid axis of (B, H, W, C) whose tokens each op branch mixes:
# 'h' the H tokens of every column, 'w' the W tokens of every row.
MIXED_AXIS = {'h': 1, 'w': 2}


def softmax_fp32(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Softmax in at least float32, so that fp16/bf16 logits under
    autocast cannot overflow (float64 stays float64)."""
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    return x.softmax(dim=dim, dtype=dtype)


def float32_under_autocast(method):
    """Run ``method(self, x, *args)`` in float32 with autocast off while
    autocast is on, and return its result in ``x``'s dtype. For the small
    computations that feed a softmax: their fp16 logits could overflow, and
    inf - inf in the softmax is NaN."""

    @functools.wraps(method)
    def wrapper(self, x: torch.Tensor, *args):
        if torch_features.autocast_enabled(x.device.type):
            with torch.autocast(x.device.type, enabled=False):
                return method(self, x.float(), *args).to(x.dtype)
        return method(self, x, *args)

    return wrapper


def float32_residuals(x: torch.Tensor) -> torch.Tensor:
    """A bf16/fp16 stage input in float32 while autocast is on: the residual
    stream that every layer adds to, and so every LayerNorm that reads it,
    stay float32 under mixed precision on every device (CUDA's autocast
    runs LayerNorm in float32 by itself, the CPU's keeps bf16). Residual
    additions rounded to bf16's 8 significant bits made bf16 training of
    the Quick start's small model less accurate and less repeatable. The
    matmuls still run in the autocast dtype."""
    if x.dtype in (torch.float16, torch.bfloat16) and \
            torch_features.autocast_enabled(x.device.type):
        return x.float()
    return x


class Windows(NamedTuple):
    """How a sequence is cut into windows (see :meth:`DynaMixerOp.windows`).

    ``index``: the ``(W * N, )`` token of each window position (None: one
    window, the whole sequence); ``count``: ``W``; ``rows``: the window rows
    each window produces; ``valid``: ``(W, N)`` False at padding (None: no
    padding).
    """
    index: Optional[torch.Tensor]
    count: int
    rows: slice
    valid: Optional[torch.Tensor]


def as_sequences(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``x`` (channels last) as ``(P, L, Q, C)``: the ``L`` tokens along
    ``dim`` form a sequence for every index of the dims before (``P``) and
    after it (``Q``). A view of a contiguous ``x``: nothing is transposed."""
    P = 1
    for size in x.shape[:dim]:
        P *= size
    return x.reshape(P, x.shape[dim], -1, x.shape[-1])


class DynaMixerOp(BaseModule):
    """One segment-shared DynaMixer operation over sequences of ``num_tokens``.

    The ``C`` channels are split into ``num_segments`` segments ``S``. For
    every sequence and segment, an ``N x N`` mixing matrix is generated and
    applied to that segment's channels; a final linear layer fuses the
    segments.

    Three generators are available (the ablation of the paper's Table 5):

    - ``'dynamic'`` (DynaMixer): ``compress`` reduces each token to ``d``
      features per segment; ``generate`` maps the ``N * d`` reduced features
      of a segment to ``N * N`` logits ``G[i, j]`` (``i`` the input token,
      ``j`` the output token), shared by all segments.
    - ``'static'`` ("Synthesizer Random", ViP-like): one learned ``N x N``
      logit matrix, the same for every input.
    - ``'per_token'`` ("Synthesizer Dense"): each output token generates its
      own logits over the ``N`` inputs for every segment with a two-layer MLP
      ``C -> C -> S * N``.

    The logits are normalised with a softmax over the input tokens (the
    generator and the softmax run in float32 under autocast, so that mixed
    precision stays finite), and output token ``j`` of segment ``s`` is
    ``sum_i softmax(G)[i, j] * x_s[i]``.

    With a window stride, sequences of any length ``L`` are mixed in sliding
    windows of ``N`` tokens: window ``k`` produces the ``stride`` tokens
    ``[k * stride, (k + 1) * stride)`` from the ``N`` tokens around them, so
    every token is mixed from ``N`` inputs around it by one generated row, as
    in the fixed model and at the same cost per token. With ``stride < N``
    neighbouring windows share inputs, so information crosses window
    borders; ``stride == N`` gives disjoint windows. At ``L == N`` it is
    exactly the fixed model. Windows at the ends reach past the sequence:
    padded tokens give zero reduced features to the generator (a window with
    padding is generated as if those tokens were blank), their logits as
    inputs are ``-inf`` (no real token takes anything from padding), and
    outputs past the end are cropped.

    Args:
        embed_dims (int): Channels ``C`` of the tokens.
        num_tokens (int): Sequence length ``N`` the generator is sized for.
        num_segments (int): Segments ``S``; must divide ``embed_dims``.
        reduced_dims (int): Reduced features ``d`` per token and segment
            (``'dynamic'`` only). Defaults to 2.
        generator (str): ``'dynamic'``, ``'static'`` or ``'per_token'``.
            Defaults to ``'dynamic'``.
        init_cfg (dict, optional): Initialization config. Defaults to None.

    Examples:
        >>> import torch
        >>> op = DynaMixerOp(embed_dims=64, num_tokens=8, num_segments=4)
        >>> x = torch.rand(2, 8, 5, 64)  # (B, H, W, C)
        >>> op(x, dim=1).shape  # mixes the 8 tokens of each of 2 x 5 columns
        torch.Size([2, 8, 5, 64])
    """

    def __init__(self,
                 embed_dims: int,
                 num_tokens: int,
                 num_segments: int,
                 reduced_dims: int = 2,
                 generator: str = 'dynamic',
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if generator not in GENERATORS:
            raise ValueError(f'Unknown generator {generator!r}; '
                             f'choose one of {GENERATORS}.')
        if embed_dims % num_segments:
            raise ValueError(f'num_segments={num_segments} must divide '
                             f'embed_dims={embed_dims}.')
        self.embed_dims = embed_dims
        self.num_tokens = num_tokens
        self.num_segments = num_segments
        self.reduced_dims = reduced_dims
        self.generator = generator
        N, S, d = num_tokens, num_segments, reduced_dims
        if generator == 'dynamic':
            self.compress = nn.Linear(embed_dims, S * d)
            self.generate = nn.Linear(N * d, N * N)
        elif generator == 'static':
            self.logits = nn.Parameter(torch.zeros(N, N))
        else:
            self.generate = nn.Sequential(
                nn.Linear(embed_dims, embed_dims), nn.ReLU(),
                nn.Linear(embed_dims, S * N))
        self.out = nn.Linear(embed_dims, embed_dims)

    def init_weights(self):
        super().init_weights()
        if self.generator == 'static':
            trunc_normal_(self.logits, std=.02)

    def forward(self, x: torch.Tensor, dim: int = 1,
                window_stride: Optional[int] = None) -> torch.Tensor:
        """Mix the tokens of ``x`` (channels last, e.g. ``(B, H, W, C)``)
        along ``dim``, every other index being a separate sequence, and fuse
        the segments: the output has ``x``'s shape. Without
        ``window_stride`` the sequences must have the op's ``N`` tokens (the
        published model); with it, any length is mixed in sliding windows.
        """
        seqs = as_sequences(x, dim)  # (P, L, Q, C)
        win = self.windows(seqs.shape[1], window_stride, x.device)
        weights = self.mixing_weights(seqs, win)  # (P, Q, S, W, out, N)
        mixed = self.mix(weights, seqs, win)  # (P, L, Q, C)
        return self.out(mixed.view(x.shape))

    def mixing_matrices(self, x: torch.Tensor, dim: int = 1,
                        window_stride: Optional[int] = None) -> torch.Tensor:
        """The mixing weights that :meth:`forward` applies to ``x`` (same
        arguments).

        Returns:
            Tensor: ``(P, Q, S, W, N_out, N_in)``: for each sequence (``P``
            and ``Q`` index the dims before and after ``dim``), segment and
            window (``W = 1`` for whole sequences of ``N``), the weights of
            the ``N_in = N`` inputs for each of the ``N_out`` tokens it
            produces, summing to 1 over the inputs. The static generator's
            weights are the same for every sequence and segment and come
            with size-1 ``P, Q, S`` axes.
        """
        seqs = as_sequences(x, dim)
        win = self.windows(seqs.shape[1], window_stride, x.device)
        return self.mixing_weights(seqs, win)

    # The generator is a few percent of the FLOPs: float32 under autocast,
    # while the mixing itself stays in the AMP dtype.
    @float32_under_autocast
    def mixing_weights(self, seqs: torch.Tensor,
                       win: Windows) -> torch.Tensor:
        """Generate (compress, generate) and normalise (softmax over the
        inputs) the mixing weights of ``seqs`` ``(P, L, Q, C)``."""
        return softmax_fp32(self.logits_of(seqs, win), -1).to(seqs.dtype)

    def logits_of(self, seqs: torch.Tensor, win: Windows) -> torch.Tensor:
        """``(P, Q, S, W, out, N)`` logits; output ``j`` of window ``k``
        over its inputs ``i``: ``G[i, j]`` transposed, so that the softmax
        runs over the contiguous last axis."""
        P, L, Q, C = seqs.shape
        N, S, d = self.num_tokens, self.num_segments, self.reduced_dims
        if self.generator == 'dynamic':
            reduced = gather(self.compress(seqs).view(P, L, Q, S, d), win)
            if win.valid is not None:  # padding feeds nothing to generate
                reduced = reduced.masked_fill(~win.valid[:, :, None], 0.)
            # Output i*N + j of `generate` is G[i, j] (i input, j output);
            # its (small) weight is reordered instead of the (large)
            # logits. `reduced` is token-major per segment: n*d + k.
            weight = self.generate.weight.view(N, N, N * d).transpose(0, 1)
            bias = self.generate.bias.view(N, N).t()
            logits = F.linear(reduced.flatten(-2),
                              weight[win.rows].reshape(-1, N * d),
                              bias[win.rows].reshape(-1))
            logits = logits.unflatten(-1, (-1, N))
        elif self.generator == 'static':
            logits = self.logits.t()[win.rows].expand(1, 1, 1, win.count, -1,
                                                      N)
        else:  # each token generates its own row once: (P, L, Q, S*N)
            logits = self.generate(seqs).view(P, L, Q, S, N)
            logits = logits.permute(0, 2, 3, 1, 4)  # (P, Q, S, L, N)
            produced = win.count * (L if win.index is None else
                                    win.rows.stop - win.rows.start)
            logits = F.pad(logits, (0, 0, 0, produced - L))
            logits = logits.unflatten(3, (win.count, -1))
        if win.valid is not None:  # padding is never mixed into a token
            logits = logits.masked_fill(~win.valid[:, None, :], float('-inf'))
        return logits

    def mix(self, weights: torch.Tensor, seqs: torch.Tensor,
            win: Windows) -> torch.Tensor:
        """Mix each segment of ``seqs`` ``(P, L, Q, C)`` with ``weights``
        ``(P, Q, S, W, out, N)``."""
        P, L, Q, C = seqs.shape
        S = self.num_segments
        segments = gather(seqs.view(P, L, Q, S, C // S), win)
        mixed = torch.matmul(weights, segments)  # (P, Q, S, W, out, C/S)
        mixed = mixed.flatten(3, 4)[:, :, :, :L]  # crop padded outputs
        return mixed.permute(0, 3, 1, 2, 4).reshape(P, L, Q, C)

    def windows(self, length: int, stride: Optional[int],
                device=None) -> Windows:
        """How a sequence of ``length`` tokens is cut into windows.

        With ``stride=None`` (the fixed-size model) the sequence must have
        the op's ``N`` tokens and is one window; so is any sequence of ``N``
        tokens. Otherwise window ``k`` produces the ``stride`` tokens
        ``[k * stride, (k + 1) * stride)`` from the ``N`` tokens around them
        (a margin of ``(N - stride) // 2`` before).
        """
        N = self.num_tokens
        if stride is None or length == N:
            if length != N:
                raise ValueError(
                    f'This DynaMixer op mixes sequences of {N} tokens, got '
                    f'{length}; other lengths need sliding windows '
                    '(a window_stride).')
            return Windows(None, 1, slice(None), None)
        if not 0 < stride <= N:
            raise ValueError(f'window stride must be in [1, {N}] so that '
                             f'windows of {N} tokens cover every token, got '
                             f'{stride}.')
        margin = (N - stride) // 2
        count = -(-length // stride)
        positions = (torch.arange(count, device=device)[:, None] * stride +
                     torch.arange(N, device=device) - margin)
        # the first window starts at -margin, the last ends past the end?
        # (integer arithmetic: no device sync on the forward path)
        padded = margin > 0 or (count - 1) * stride - margin + N > length
        valid = ((positions >= 0) & (positions < length)) if padded else None
        # Padding is masked out of the generator and the mixing, so its
        # values never matter: edge tokens are repeated there.
        return Windows(positions.clamp(0, length - 1).flatten(), count,
                       slice(margin, margin + stride), valid)


def gather(t: torch.Tensor, win: Windows) -> torch.Tensor:
    """``(P, L, Q, S, k)`` per-token features -> ``(P, Q, S, W, N, k)``:
    each window's tokens, side by side (one copy)."""
    t = t.permute(0, 2, 3, 1, 4)  # (P, Q, S, L, k)
    if win.index is None:
        return t.unsqueeze(3)
    t = t.index_select(3, win.index)
    return t.view(*t.shape[:3], win.count, -1, t.shape[-1])



class BranchReweighting(BaseModule):
    """Per-channel weights of ``K`` branches from the mean of their sum
    over the tokens (split attention, as in ViP and ResNeSt):
    ``softmax_k(fc2(act(fc1(mean))))``, where output ``c * K + k`` of
    ``fc2`` is the logit of branch ``k`` for channel ``c``. Runs in float32
    under autocast, as the mixing generators do.

    Args:
        embed_dims (int): Channels ``C``.
        num_branches (int): Branches ``K``.
    """

    def __init__(self, embed_dims: int, num_branches: int, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.num_branches = num_branches
        self.fc1 = nn.Linear(embed_dims, embed_dims // 4)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(embed_dims // 4, embed_dims * num_branches)

    @float32_under_autocast
    def forward(self, mean: torch.Tensor) -> torch.Tensor:
        """``(B, C)`` mean of the branch sum -> ``(B, C, K)`` weights, summing
        to 1 over the branches."""
        logits = self.fc2(self.act(self.fc1(mean)))
        return softmax_fp32(logits.unflatten(-1, (-1, self.num_branches)),
                            -1).to(mean.dtype)


class DynaMixerBlock(BaseModule):
    """The token mixing of one DynaMixer layer on a ``(B, H, W, C)`` grid.

    ``mix_h`` mixes the tokens of every column (along ``H``), ``mix_w``
    those of every row (along ``W``), ``mlp_c`` the channels of every token;
    the branches are combined with per-channel weights
    (:class:`BranchReweighting`), or summed, then projected.

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
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.branches = tuple(b for b in BRANCHES if b in branches)
        if len(self.branches) != len(set(branches)) or not self.branches:
            raise ValueError(f'branches must be a non-empty subset of '
                             f'{BRANCHES}, got {tuple(branches)}.')
        if share_hw and grid[0] != grid[1]:
            raise ValueError('share_hw needs a square token grid, got '
                             f'{grid[0]}x{grid[1]}.')
        self.share_hw = share_hw
        self.window_strides = dict(zip('hw', window_strides or (None, None)))
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
            self.reweight = BranchReweighting(embed_dims, len(self.branches))
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop)

    def token_mixers(self) -> List[tuple]:
        """``(branch, op, axis, window stride)`` of each token-mixing branch
        (``'h'``, ``'w'``), in order: the op mixes the tokens along
        ``axis`` of the ``(B, H, W, C)`` grid (:data:`MIXED_AXIS`)."""
        return [(b, self.mix_w if b == 'w' and not self.share_hw else
                 self.mix_h, MIXED_AXIS[b], self.window_strides[b])
                for b in self.branches if b in MIXED_AXIS]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [op(x, axis, stride) for _, op, axis, stride in
                self.token_mixers()]
        if 'c' in self.branches:
            outs.append(self.mlp_c(x))
        if self.reweight is None:
            return self.proj_drop(self.proj(sum(outs)))
        # the mean of the branch sum over the tokens, a per-channel weight
        # of each branch (B, C, K), and the weighted sum
        a = self.reweight(sum(out.mean(dim=(1, 2)) for out in outs))
        x = sum(out * a[:, None, None, :, k] for k, out in enumerate(outs))
        return self.proj_drop(self.proj(x))


class DynaMixerLayer(BaseModule):
    """A DynaMixer layer on ``(B, H, W, C)``: pre-norm token mixing
    (:class:`DynaMixerBlock`) and a pre-norm MLP, each with a residual
    connection and stochastic depth.

    Args:
        embed_dims (int): Channels ``C``.
        mlp_ratio (float): Hidden channels of the MLP per channel.
        drop_path_rate (float): Stochastic depth rate of both residuals.
        norm_cfg (dict): Norm layer config.
        act_cfg (dict): Activation of the MLP.
        **mixer_kwargs: Arguments of :class:`DynaMixerBlock`.
    """

    def __init__(self,
                 embed_dims: int,
                 mlp_ratio: float = 3.,
                 drop_path_rate: float = 0.,
                 norm_cfg: Dict = dict(type='LN', eps=1e-5),
                 act_cfg: Dict = dict(type='GELU'),
                 init_cfg=None,
                 **mixer_kwargs):
        super().__init__(init_cfg=init_cfg)
        hidden = int(embed_dims * mlp_ratio)
        self.norm1 = build_norm_layer(norm_cfg, embed_dims)[1]
        self.mixer = DynaMixerBlock(embed_dims, **mixer_kwargs)
        self.norm2 = build_norm_layer(norm_cfg, embed_dims)[1]
        self.mlp = nn.Sequential()
        self.mlp.add_module('fc1', nn.Linear(embed_dims, hidden))
        self.mlp.add_module('act', build_activation_layer(act_cfg))
        self.mlp.add_module('fc2', nn.Linear(hidden, embed_dims))
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 \
            else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.mixer(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def keep_channel_matmuls(ctx, op, *args, channels: int, **kwargs):
    """The selective activation checkpointing policy of a DynaMixer layer
    of ``channels`` channels (``selective_cp``, for
    :func:`torch.utils.checkpoint.create_selective_checkpoint_contexts`):
    keep the results of the matmuls over at least ``channels`` inputs (the
    Linear layers on the tokens: ``compress``, ``out``, ``mlp_c``, ``proj``,
    ``fc1``, ``fc2``); recompute in the backward pass everything cheaper
    per element it produces: the LayerNorms, the GELU, the generators over
    ``N * d`` reduced features, the softmaxes, the gathered copies of the
    tokens, the mixing matmuls over ``N`` tokens and the elementwise
    products."""
    policy = activation_checkpoint.CheckpointPolicy
    if op.name() in ('aten::addmm', 'aten::mm'):
        mat1 = args[1] if op.name() == 'aten::addmm' else args[0]
        if mat1.shape[-1] >= channels:
            return policy.MUST_SAVE
    return policy.PREFER_RECOMPUTE


@MODELS.register_module()
class DynaMixer(PartialLoadMixin, BaseBackbone):
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
        with_cp (bool): In training, keep only each layer's input for
            backward and recompute the layer in the backward pass
            (activation checkpointing): the least memory, at the cost of a
            second forward. Takes precedence over ``selective_cp``.
            Defaults to False.
        selective_cp (bool): In training, keep for backward the results of
            the Linear layers' matmuls and recompute the cheap rest
            (selective activation checkpointing with the policy
            :func:`keep_channel_matmuls`): about half the activations of a
            straightforward implementation, for the same results. Needs
            ``torch.utils.checkpoint.create_selective_checkpoint_contexts``
            (torch >= 2.4); without it, one log line says that layers keep
            everything. Defaults to True.
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
        self.recompute = self.recompute_mode(with_cp, selective_cp)
        self.sliding_window = sliding_window
        strides = self.window_strides(
            self.grids, 0.5 if window_stride is None else window_stride) \
            if sliding_window else [None] * self.num_stages

        depths = self.arch_settings['depths']
        # layer i of n drops with rate * i / (n - 1), in Python floats as in
        # the authors' code
        n = sum(depths)
        dpr = [drop_path_rate * i / max(n - 1, 1) for i in range(n)]
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

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        self.check_input_size(x)
        if self.sliding_window:  # whole token grids in every stage
            stride = self.stage_strides[-1]
            pad_h = -x.shape[-2] % stride
            pad_w = -x.shape[-1] % stride
            if pad_h or pad_w:
                x = F.pad(x, (0, pad_w, 0, pad_h))
        outs = []
        for i, (down, stage) in enumerate(
                zip(self.downsample_layers, self.stages)):
            # tokens channels-last: B H W C
            x = float32_residuals(down(x)).permute(0, 2, 3, 1)
            for layer in stage:
                x = self.run_layer(layer, x)
            if i in self.out_indices:
                out = getattr(self, f'norm{i}')(x) if self.norm_outputs \
                    else x
                outs.append(out.permute(0, 3, 1, 2).contiguous())
            x = x.permute(0, 3, 1, 2)
        return tuple(outs)

    def run_layer(self, layer: DynaMixerLayer,
                  x: torch.Tensor) -> torch.Tensor:
        """``layer(x)``; in training, through the activation checkpointing
        that ``with_cp`` or ``selective_cp`` asked for: the same computation,
        with less of it kept for backward."""
        if self.recompute is None or not (layer.training
                                          and torch.is_grad_enabled()):
            return layer(x)
        if self.recompute == 'all':
            context_fn = activation_checkpoint.noop_context_fn
        else:  # the policy of a layer of x.shape[-1] channels
            context_fn = functools.partial(
                activation_checkpoint.create_selective_checkpoint_contexts,
                functools.partial(keep_channel_matmuls, channels=x.shape[-1]))
        return activation_checkpoint.checkpoint(
            layer, x, use_reentrant=False, context_fn=context_fn)

    @property
    def stage_strides(self) -> Tuple[int, ...]:
        """The stride, in input pixels, of each stage's token grid: the
        product of the strides of the downsampling layers up to it (7 and
        14 for the published models)."""
        strides, stride = [], 1
        for down in self.downsample_layers:
            stride *= down.stride[0]
            strides.append(stride)
        return tuple(strides)

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
        self.is_init = True

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

    # ---- the arguments, checked: errors name the value, the valid set and
    # the fix

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

    @staticmethod
    def recompute_mode(with_cp: bool, selective_cp: bool) -> Optional[str]:
        """What training recomputes in backward: ``'all'`` of each layer
        (``with_cp``), ``'selective'`` or nothing (None)."""
        if with_cp:
            return 'all'
        if not selective_cp:
            return None
        if not torch_features.SELECTIVE_CHECKPOINT:
            torch_features.log_unavailable(
                'selective_cp', 'torch >= 2.4 (torch.utils.checkpoint.'
                'create_selective_checkpoint_contexts)', 'DynaMixer layers '
                'keep all their activations for backward, as with '
                'selective_cp=False')
            return None
        return 'selective'
