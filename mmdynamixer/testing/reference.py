# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""The reference DynaMixer: the network written out plainly from the paper
(Wang et al., "DynaMixer: A Vision MLP Architecture with Dynamic Mixing",
ICML 2022: Algorithm 1, Fig. 2, Sec. 3) and the authors' public code
(ziyuwwang/DynaMixer), in standard PyTorch.

It imports nothing from ``mmdynamixer``: the published S/M/L settings, the
token grids, the window strides and the sliding-window cut are worked out
here again, so that the tests that compare it with the backbone
(``tests/test_models/test_reference_equivalence.py``, in float64) share no
code with what they check. It is also the baseline that
``tools/analysis_tools/benchmark.py`` measures the backbone against: the
model a user would write, not a model to train.

What it is, op by op:

- :class:`ReferenceOp` (Algorithm 1): ``compress`` (Linear ``D -> S*d``)
  reduces every token; each segment's ``N*d`` reduced features (token-major)
  go through ``generate`` (one Linear ``N*d -> N*N`` shared by the ``S``
  segments), read as logits ``G[i, j]`` (``i`` input, ``j`` output token);
  softmax over ``i``; one matmul mixes every segment; ``out`` (Linear
  ``D -> D``). The paper's generator ablations (Table 5): ``'static'`` (one
  learned ``N x N`` logit matrix ``logits``) and ``'per_token'`` (each
  output token generates its own logits with ``generate``: Linear ``D -> D``,
  ReLU, Linear ``D -> S*N``).
- :class:`ReferenceBlock` (Fig. 2): ``mix_h`` on every column, ``mix_w`` on
  every row (each with its own permutes), ``mlp_c`` (Linear, no bias) on the
  channels; ``a = reweight(mean over tokens of (h + w + c))`` viewed as
  ``(B, C, K)``, softmax over ``K``, the weighted sum, ``proj``. The block
  ablations (Table 7): a subset of the branches, no reweighting (a plain
  sum), one op for rows and columns (``share_hw``).
- :class:`ReferenceLayer`: pre-norm block and MLP (ratio 3), each with a
  residual connection and stochastic depth.
- :class:`ReferenceDynaMixer`: 7x7 stride-7 stem, the stages separated by
  2x2 stride-2 convolutions; returns the last stage as ``(B, C, H, W)``.

The sliding-window mode (the package's extension for other input sizes): a
sequence of ``L`` tokens is mixed in zero-padded windows of the op's ``N``
tokens, cut with ``unfold``; window ``k`` produces tokens
``[k*stride, (k+1)*stride)`` from the ``N`` tokens that start
``(N - stride) // 2`` before them. Padded tokens give zero reduced features
to the generator and ``-inf`` logits as inputs; outputs past the end are
cropped. A sequence of exactly ``N`` tokens is one window, as in the fixed
model. The image is zero-padded at the bottom and right to a multiple of the
total stride.

Module and parameter names are the backbone's
(``downsample_layers.{i}``, ``stages.{i}.{j}.norm1 / mixer / norm2 / mlp``),
so both load the same state dict. Stochastic depth draws the same random
numbers in the same order as the backbone (one ``torch.rand((B, 1, 1, 1))``
per residual branch that can drop, in layer order, block before MLP), so
with the same seed both drop the same samples.
"""
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

# The published models: the authors' dynamixer_s/m/l, whose stage lists merge
# into two stages of 32x32 and 16x16 tokens at 224 px (for L the code has
# 8 + 28 layers where the paper's table says 9 + 27; the code made the
# paper's numbers).
ARCHS = {
    's': dict(embed_dims=(192, 384), depths=(4, 14), num_segments=(8, 16),
              reduced_dims=(2, 2)),
    'm': dict(embed_dims=(256, 512), depths=(7, 17), num_segments=(8, 16),
              reduced_dims=(2, 2)),
    'l': dict(embed_dims=(256, 512), depths=(8, 28), num_segments=(8, 16),
              reduced_dims=(8, 8)),
}
ARCHS.update(small=ARCHS['s'], medium=ARCHS['m'], large=ARCHS['l'])


def token_grids(img_size: Tuple[int, int], patch_size: int,
                num_stages: int):
    """``(H, W)`` tokens of each stage: the stem divides by the patch size,
    each later stage halves."""
    h, w = img_size
    assert h % patch_size == 0 and w % patch_size == 0, (img_size,
                                                         patch_size)
    h, w = h // patch_size, w // patch_size
    grids = [(h, w)]
    for _ in range(num_stages - 1):
        assert h % 2 == 0 and w % 2 == 0, f'odd grid {h}x{w} to downsample'
        h, w = h // 2, w // 2
        grids.append((h, w))
    return grids


def window_strides(grids, window_stride):
    """``(column, row)`` strides of each stage: a fraction of each window
    length (rounded, at least 1), or one int per stage."""
    if isinstance(window_stride, (int, float)):
        return [(max(1, round(h * window_stride)),
                 max(1, round(w * window_stride))) for h, w in grids]
    assert len(window_stride) == len(grids), (window_stride, grids)
    return [(int(s), int(s)) for s in window_stride]


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Stochastic depth (Huang et al., 2016): each sample's residual branch
    is dropped with probability ``rate``, the kept ones scaled up by
    ``1 / (1 - rate)``. One uniform draw per sample, of ``x``'s dtype."""
    if rate == 0 or not training:
        return x
    keep = 1 - rate
    shape = (x.shape[0], ) + (1, ) * (x.ndim - 1)
    mask = (keep + torch.rand(shape, dtype=x.dtype, device=x.device)).floor()
    return x.div(keep) * mask


class ReferenceOp(nn.Module):
    """One DynaMixer op over sequences of ``tokens`` tokens (Algorithm 1)."""

    def __init__(self, dim: int, tokens: int, segments: int, reduced: int,
                 generator: str = 'dynamic'):
        super().__init__()
        assert dim % segments == 0, (dim, segments)
        assert generator in ('dynamic', 'static', 'per_token'), generator
        self.tokens, self.segments, self.reduced = tokens, segments, reduced
        self.generator = generator
        N, S, d = tokens, segments, reduced
        if generator == 'dynamic':
            self.compress = nn.Linear(dim, S * d)
            self.generate = nn.Linear(N * d, N * N)
        elif generator == 'static':
            self.logits = nn.Parameter(torch.zeros(N, N))
        else:
            self.generate = nn.Sequential(
                nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, S * N))
        self.out = nn.Linear(dim, dim)

    def mixing_logits(self, x: torch.Tensor,
                      valid: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``(B, S, N_in, N_out)`` logits ``G[i, j]`` for ``x`` ``(B, N, D)``;
        ``valid`` ``(B, N)``: False at padding."""
        B, N, _ = x.shape
        S, d = self.segments, self.reduced
        if self.generator == 'dynamic':
            r = self.compress(x)  # (B, N, S*d): token n, segment s, k
            if valid is not None:  # padding feeds nothing to the generator
                r = r * valid[:, :, None]
            r = r.reshape(B, N, S, d).permute(0, 2, 1, 3)  # (B, S, N, d)
            g = self.generate(r.reshape(B, S, N * d))  # index n*d + k
            g = g.reshape(B, S, N, N)  # row-major: G[i, j]
        elif self.generator == 'static':
            g = self.logits.expand(B, S, N, N)
        else:  # output token j generates its logits over the inputs i
            g = self.generate(x).reshape(B, N, S, N)  # (B, j, S, i)
            g = g.permute(0, 2, 3, 1)
        if valid is not None:  # no token takes anything from padding
            g = g.masked_fill(~valid[:, None, :, None], float('-inf'))
        return g

    def mix(self, x: torch.Tensor,
            valid: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Mix ``x`` ``(B, N, D)`` along its ``N`` tokens, segment by
        segment, before the ``out`` projection."""
        B, N, D = x.shape
        S = self.segments
        a = self.mixing_logits(x, valid).softmax(dim=2)  # over inputs i
        xs = x.reshape(B, N, S, D // S).permute(0, 2, 1, 3)  # (B, S, N, c)
        y = torch.matmul(a.transpose(2, 3), xs)  # y_j = sum_i a_ij x_i
        return y.permute(0, 2, 1, 3).reshape(B, N, D)

    def forward(self, x: torch.Tensor,
                stride: Optional[int] = None) -> torch.Tensor:
        """``x`` ``(B, L, D)``; without ``stride``, ``L`` is the op's ``N``.
        With ``stride``, any ``L``: sliding windows (see the module's
        docstring)."""
        B, L, D = x.shape
        N = self.tokens
        if stride is None or L == N:
            assert L == N, f'{L} tokens for an op of {N}'
            return self.out(self.mix(x))
        assert 0 < stride <= N, (stride, N)
        margin = (N - stride) // 2
        count = -(-L // stride)  # windows: each produces `stride` tokens
        after = (count - 1) * stride - margin + N - L  # padding at the end
        windows = F.pad(x, (0, 0, margin, after)).unfold(1, N, stride)
        windows = windows.transpose(2, 3).reshape(B * count, N, D)
        valid = F.pad(x.new_ones(L), (margin, after)).unfold(0, N, stride)
        valid = (valid > 0).repeat(B, 1)  # (B * count, N)
        y = self.mix(windows, valid).reshape(B, count, N, D)
        y = y[:, :, margin:margin + stride].reshape(B, count * stride, D)
        return self.out(y[:, :L])


class ReferenceBlock(nn.Module):
    """The token mixing of a layer on ``(B, H, W, C)`` (Fig. 2)."""

    def __init__(self, dim: int, grid: Tuple[int, int], segments: int,
                 reduced: int, generator: str = 'dynamic',
                 branches: Sequence[str] = 'hwc', reweight: bool = True,
                 share_hw: bool = False,
                 strides: Tuple[Optional[int], Optional[int]] = (None, None)):
        super().__init__()
        self.branches = [b for b in 'hwc' if b in branches]
        assert self.branches and len(self.branches) == len(set(branches))
        assert not share_hw or ('h' in branches and 'w' in branches and
                                grid[0] == grid[1])
        self.share_hw, self.strides = share_hw, tuple(strides)
        op = dict(segments=segments, reduced=reduced, generator=generator)
        if 'h' in self.branches:
            self.mix_h = ReferenceOp(dim, grid[0], **op)
        if 'w' in self.branches and not share_hw:
            self.mix_w = ReferenceOp(dim, grid[1], **op)
        if 'c' in self.branches:
            self.mlp_c = nn.Linear(dim, dim, bias=False)
        self.reweight = None
        if reweight and len(self.branches) > 1:
            self.reweight = nn.Sequential()
            self.reweight.add_module('fc1', nn.Linear(dim, dim // 4))
            self.reweight.add_module('act', nn.GELU())
            self.reweight.add_module(
                'fc2', nn.Linear(dim // 4, dim * len(self.branches)))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        outs = []
        if 'h' in self.branches:  # every column: sequences of H tokens
            cols = x.permute(0, 2, 1, 3).reshape(B * W, H, C)
            h = self.mix_h(cols, self.strides[0])
            outs.append(h.reshape(B, W, H, C).permute(0, 2, 1, 3))
        if 'w' in self.branches:  # every row: sequences of W tokens
            op = self.mix_h if self.share_hw else self.mix_w
            rows = op(x.reshape(B * H, W, C), self.strides[1])
            outs.append(rows.reshape(B, H, W, C))
        if 'c' in self.branches:
            outs.append(self.mlp_c(x))
        if self.reweight is None:
            return self.proj(sum(outs))
        K = len(outs)
        a = sum(outs).mean(dim=(1, 2))  # (B, C)
        a = self.reweight(a).reshape(B, C, K).softmax(dim=2)  # index c*K + k
        mixed = sum(out * a[:, None, None, :, k] for k, out in enumerate(outs))
        return self.proj(mixed)


class ReferenceLayer(nn.Module):
    """``x + DropPath(block(norm1(x)))``, then
    ``x + DropPath(mlp(norm2(x)))``, on ``(B, H, W, C)``."""

    def __init__(self, dim: int, mlp_ratio: float = 3.,
                 drop_path_rate: float = 0., **block):
        super().__init__()
        self.drop_path_rate = drop_path_rate
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.mixer = ReferenceBlock(dim, **block)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.mlp = nn.Sequential()
        self.mlp.add_module('fc1', nn.Linear(dim, hidden))
        self.mlp.add_module('act', nn.GELU())
        self.mlp.add_module('fc2', nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p, training = self.drop_path_rate, self.training
        x = x + drop_path(self.mixer(self.norm1(x)), p, training)
        return x + drop_path(self.mlp(self.norm2(x)), p, training)


class ReferenceDynaMixer(nn.Module):
    """The DynaMixer network without a head, returning ``(last stage,)`` as
    ``(B, C, H, W)``.

    Args:
        arch (str | dict): ``'s'``, ``'m'``, ``'l'`` (or ``'small'``...), or
            a dict of ``embed_dims``, ``depths``, ``num_segments``,
            ``reduced_dims`` (one entry per stage).
        img_size (int | tuple): The input size the ops are sized for.
        patch_size (int): The stem's kernel and stride.
        in_channels (int): Input channels.
        mlp_ratio (float): Hidden ratio of the MLPs.
        generator (str): ``'dynamic'``, ``'static'`` or ``'per_token'``.
        branches (Sequence[str]): A subset of ``'h'``, ``'w'``, ``'c'``.
        reweight (bool): Weigh the branches (True) or sum them.
        share_hw (bool): One op for rows and columns (``mix_h``).
        sliding_window (bool): Any input size, in sliding windows.
        window_stride (float | Sequence[int], optional): A fraction of each
            window length or one int per stage; None: 0.5.
        drop_path_rate (float): Layer ``i`` of the ``n`` layers drops with
            ``drop_path_rate * i / (n - 1)``.
    """

    def __init__(self, arch: Union[str, dict] = 's',
                 img_size: Union[int, Tuple[int, int]] = 224,
                 patch_size: int = 7, in_channels: int = 3,
                 mlp_ratio: float = 3., generator: str = 'dynamic',
                 branches: Sequence[str] = 'hwc', reweight: bool = True,
                 share_hw: bool = False, sliding_window: bool = False,
                 window_stride: Union[float, Sequence[int], None] = None,
                 drop_path_rate: float = 0.):
        super().__init__()
        arch = ARCHS[arch.lower()] if isinstance(arch, str) else arch
        dims, depths = list(arch['embed_dims']), list(arch['depths'])
        if isinstance(img_size, int):
            img_size = (img_size, img_size)
        grids = token_grids(img_size, patch_size, len(dims))
        if sliding_window:
            strides = window_strides(
                grids, 0.5 if window_stride is None else window_stride)
        else:
            assert window_stride is None, 'window_stride needs sliding'
            strides = [(None, None)] * len(dims)
        self.img_size = tuple(img_size)
        self.sliding_window = sliding_window
        self.total_stride = patch_size * 2**(len(dims) - 1)
        n = sum(depths)
        rates = [drop_path_rate * i / (n - 1) if n > 1 else 0.
                 for i in range(n)]
        self.downsample_layers = nn.ModuleList()
        self.stages = nn.ModuleList()
        for i, dim in enumerate(dims):
            self.downsample_layers.append(
                nn.Conv2d(in_channels, dim, patch_size, patch_size)
                if i == 0 else nn.Conv2d(dims[i - 1], dim, 2, 2))
            block = dict(grid=grids[i], segments=arch['num_segments'][i],
                         reduced=arch['reduced_dims'][i], generator=generator,
                         branches=branches, reweight=reweight,
                         share_hw=share_hw, strides=strides[i])
            first = sum(depths[:i])
            self.stages.append(nn.Sequential(*[
                ReferenceLayer(dim, mlp_ratio, rates[first + j], **block)
                for j in range(depths[i])
            ]))
        self.init_weights()

    def init_weights(self):
        """The authors' init: Linear weights truncated normal (std 0.02) and
        zero biases, LayerNorm ones and zeros, convolutions PyTorch's
        default; the static generator's logits like a Linear weight."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, ReferenceOp) and m.generator == 'static':
                nn.init.trunc_normal_(m.logits, std=.02)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor]:
        if self.sliding_window:  # whole token grids in every stage
            s = self.total_stride
            x = F.pad(x, (0, -x.shape[-1] % s, 0, -x.shape[-2] % s))
        else:
            assert tuple(x.shape[-2:]) == self.img_size, x.shape
        for down, stage in zip(self.downsample_layers, self.stages):
            x = stage(down(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return (x, )
