# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""The DynaMixer operation: token mixing with matrices generated from the tokens."""
import functools
from typing import NamedTuple, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_

from mmdynamixer.utils.torch_features import autocast_enabled

GENERATORS = ('dynamic', 'static', 'per_token')


class Windows(NamedTuple):
    """How a sequence is cut into windows (see :meth:`DynaMixerOp.windows`).

    ``index``: the ``(W * N, )`` token of each window position (None: one
    window, the whole sequence); ``count``: ``W``; ``rows``: the window rows
    each window produces; ``valid``: ``(W, N)`` False at padding (None: no
    padding); ``edges``: ``(start, stop)`` ranges of windows with padding.
    """
    index: Optional[torch.Tensor]
    count: int
    rows: slice
    valid: Optional[torch.Tensor]
    edges: Tuple[Tuple[int, int], ...]


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
        if autocast_enabled(x.device.type):
            with torch.autocast(x.device.type, enabled=False):
                return method(self, x.float(), *args).to(x.dtype)
        return method(self, x, *args)

    return wrapper


class DynaMixerOp(BaseModule):
    """One segment-shared DynaMixer operation over sequences of ``num_tokens``.

    The ``C`` channels are split into ``num_segments`` segments. For every
    sequence and segment, an ``N x N`` mixing matrix is generated and applied
    to that segment's channels; a final linear layer mixes the segments.

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
    precision stays finite), and output token ``j``
    of segment ``s`` is ``sum_i softmax(G)[i, j] * x_s[i]``.

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
        >>> x = torch.rand(2, 8, 5, 64)  # mix along dim 1 of (P, N, Q, C)
        >>> op(x).shape
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
                nn.Linear(embed_dims, embed_dims), nn.ReLU(inplace=True),
                nn.Linear(embed_dims, S * N))
        self.out = nn.Linear(embed_dims, embed_dims)

    def init_weights(self):
        super().init_weights()
        if self.generator == 'static':
            trunc_normal_(self.logits, std=.02)

    def windows(self, length: int, stride: Optional[int],
                device=None) -> Windows:
        """How a sequence of ``length`` tokens is cut into windows.

        With ``stride=None`` (the fixed-size model) the sequence must have
        the op's ``N`` tokens and is one window; so is any sequence of ``N``
        tokens. Otherwise window ``k`` produces the ``stride`` tokens
        ``[k * stride, (k + 1) * stride)`` from the ``N`` tokens around them
        (a margin of ``(N - stride) // 2`` before), see :meth:`forward`.
        """
        N = self.num_tokens
        if stride is None or length == N:
            if length != N:
                raise ValueError(
                    f'This DynaMixer op mixes sequences of {N} tokens, got '
                    f'{length}; other lengths need sliding windows '
                    '(a window_stride).')
            return Windows(None, 1, slice(None), None, ())
        if not 0 < stride <= N:
            raise ValueError(f'window stride must be in [1, {N}] so that '
                             f'windows of {N} tokens cover every token, got '
                             f'{stride}.')
        margin = (N - stride) // 2
        count = -(-length // stride)
        positions = (torch.arange(count, device=device)[:, None] * stride +
                     torch.arange(N, device=device) - margin)
        # Windows k < lo reach before the start, windows k >= hi past the
        # end (integer arithmetic: no device sync on the forward path).
        lo = min(count, -(-margin // stride))
        hi = max(0, min(count, (length + margin - N) // stride + 1))
        edges = ((0, lo), (hi, count)) if lo < hi else ((0, count), )
        edges = tuple(e for e in edges if e[0] < e[1])
        valid = ((positions >= 0) & (positions < length)) if edges else None
        # Padding is masked out of the generator and the mixing, so its
        # values never matter: edge tokens are repeated there.
        return Windows(positions.clamp(0, length - 1).flatten(), count,
                       slice(margin, margin + stride), valid, edges)

    @staticmethod
    def _gather(t: torch.Tensor, win: Windows) -> torch.Tensor:
        """(P, L, Q, S, k) per-token features -> (P, Q, S, W, N, k)."""
        t = t.permute(0, 2, 3, 1, 4)  # (P, Q, S, L, k)
        if win.index is None:
            return t.unsqueeze(3)
        t = t.index_select(3, win.index)  # one copy, windows side by side
        return t.view(*t.shape[:3], win.count, -1, t.shape[-1])

    @staticmethod
    def _mask_padding_(t: torch.Tensor, mask: torch.Tensor, value: float,
                       win: Windows):
        """Fill ``t`` (window axis 3) where ``mask`` (W, ...) is True, in
        place and only in the windows that hold padding."""
        for start, stop in win.edges:
            t[:, :, :, start:stop].masked_fill_(mask[start:stop], value)

    def mixing_matrices(self, x: torch.Tensor,
                        window_stride: Optional[int] = None) -> torch.Tensor:
        """The mixing weights the op applies to ``x`` ``(P, L, Q, C)``.

        Returns:
            Tensor: ``(P, Q, S, W, N_out, N_in)``: for each sequence,
            segment and window (``W = 1`` for whole sequences of ``N``), the
            weights of the ``N_in = N`` inputs for each of the ``N_out``
            tokens it produces, summing to 1 over the inputs. The static
            generator's weights are the same for every sequence and segment
            and come with size-1 ``P, Q, S`` axes.
        """
        win = self.windows(x.shape[1], window_stride, x.device)
        return self._mixing_matrices(x, win)

    # The generator is a few percent of the FLOPs: float32 under autocast,
    # while the mixing itself stays in the AMP dtype.
    @float32_under_autocast
    def _mixing_matrices(self, x: torch.Tensor, win: Windows) -> torch.Tensor:
        return softmax_fp32(self._logits(x, win), -1).to(x.dtype)

    def _logits(self, x: torch.Tensor, win: Windows) -> torch.Tensor:
        P, L, Q, C = x.shape
        N, S, d = self.num_tokens, self.num_segments, self.reduced_dims
        if self.generator == 'dynamic':
            reduced = self._gather(self.compress(x).view(P, L, Q, S, d), win)
            if win.valid is not None:  # padding feeds nothing to the generator
                self._mask_padding_(reduced, ~win.valid[:, :, None], 0., win)
            # Output i*N + j of `generate` is G[i, j] (i input, j output).
            # Reorder its (small) weight instead of the (large) logits, so
            # that they come out as (j, i): a softmax over the contiguous
            # last axis, and no transpose before the matmul. `reduced` is
            # token-major per segment: index n*d + k.
            weight = self.generate.weight.view(N, N, N * d).transpose(0, 1)
            bias = self.generate.bias.view(N, N).t()
            logits = F.linear(reduced.flatten(-2),
                              weight[win.rows].reshape(-1, N * d),
                              bias[win.rows].reshape(-1))
            logits = logits.unflatten(-1, (-1, N))  # (P, Q, S, W, out, in)
        elif self.generator == 'static':
            logits = self.logits.t()[win.rows].expand(1, 1, 1, win.count, -1,
                                                      N)
            if win.valid is not None:
                logits = logits.clone()
        else:  # each token generates its own row once: (P, L, Q, S*N)
            logits = self.generate(x).view(P, L, Q, S, N)
            logits = logits.permute(0, 2, 3, 1, 4)  # (P, Q, S, L, N)
            produced = win.count * (logits.shape[3] if win.index is None else
                                    win.rows.stop - win.rows.start)
            logits = F.pad(logits, (0, 0, 0, produced - L))
            logits = logits.unflatten(3, (win.count, -1))
        if win.valid is not None:  # padding is never mixed into a token
            self._mask_padding_(logits, ~win.valid[:, None, :],
                                float('-inf'), win)
        return logits

    def mix(self, x: torch.Tensor,
            window_stride: Optional[int] = None) -> torch.Tensor:
        """The token mixing of ``x`` ``(P, L, Q, C)`` along dim 1, before
        the ``out`` projection."""
        win = self.windows(x.shape[1], window_stride, x.device)
        weights = self._mixing_matrices(x, win)  # (P, Q, S, W, out, N)
        return self.apply_mixing(weights, x, win)

    def apply_mixing(self, weights: torch.Tensor, x: torch.Tensor,
                     win: Windows) -> torch.Tensor:
        """Mix ``x`` ``(P, L, Q, C)`` with ``weights`` ``(P, Q, S, W, out,
        N)`` (see :meth:`mixing_matrices`)."""
        P, L, Q, C = x.shape
        S = self.num_segments
        segments = self._gather(x.view(P, L, Q, S, C // S), win)
        mixed = torch.matmul(weights, segments)  # (P, Q, S, W, out, C/S)
        mixed = mixed.flatten(3, 4)[:, :, :, :L]  # crop padded outputs
        return mixed.permute(0, 3, 1, 2, 4).reshape(P, L, Q, C)

    def apply_mixing_backward(self, grad: torch.Tensor,
                              weights: torch.Tensor, x: torch.Tensor,
                              win: Windows, dtype: torch.dtype):
        """Gradients of :meth:`apply_mixing` for ``weights`` and ``x``,
        given ``grad`` of its output; ``dtype`` is the one its matmul ran
        in (another one than the inputs' under autocast)."""
        P, L, Q, C = x.shape
        S = self.num_segments
        segments = self._gather(x.view(P, L, Q, S, C // S), win).to(dtype)
        grad = grad.reshape(P, L, Q, S, C // S).permute(0, 2, 3, 1, 4)
        produced = win.count * (win.rows.stop - win.rows.start
                                if win.index is not None else L)
        grad = F.pad(grad, (0, 0, 0, produced - L))  # cropped outputs
        grad = grad.unflatten(3, (win.count, -1))  # (P, Q, S, W, out, C/S)
        grad_weights = torch.matmul(grad, segments.transpose(-1, -2))
        grad_weights = grad_weights.sum_to_size(weights.shape)
        grad_segments = torch.matmul(weights.to(dtype).transpose(-1, -2),
                                     grad).to(x.dtype)  # (P, Q, S, W, N, c)
        if win.index is None:
            grad_x = grad_segments.squeeze(3)
        else:  # index_select's backward: add each window position back
            grad_x = grad_segments.new_zeros(P, Q, S, L, C // S).index_add_(
                3, win.index, grad_segments.flatten(3, 4))
        grad_x = grad_x.permute(0, 3, 1, 2, 4).reshape(P, L, Q, C)
        return grad_weights.to(weights.dtype), grad_x

    def forward(self,
                x: torch.Tensor,
                window_stride: Optional[int] = None,
                project: bool = True,
                lean: bool = False):
        """Mix ``x`` of shape ``(P, L, Q, C)`` along dim 1, then apply the
        ``out`` projection (``project=False`` skips it, for callers that fuse
        it into their own matmul).

        ``P`` and ``Q`` index independent sequences (e.g. batch and columns).
        Without ``window_stride``, ``L`` must be the op's ``N`` and the whole
        sequence is mixed at once, as in the published model.

        With ``window_stride``, any ``L`` is mixed in sliding windows of
        ``N`` tokens: window ``k`` produces the ``stride`` tokens
        ``[k * stride, (k + 1) * stride)`` from the ``N`` tokens around them,
        so every token is mixed from ``N`` inputs around it by one generated
        row, as in the fixed model and at the same cost per token. With
        ``stride < N`` neighbouring windows share inputs, so information
        crosses window borders; ``stride == N`` gives disjoint windows (the
        block-diagonal mixing of MLP-Mixer's fine-tuning at higher
        resolution). At ``L == N`` it is exactly the fixed model.

        Windows at the ends reach past the sequence; those positions are
        padding. Padding would change the generated matrices, so padded
        tokens give zero reduced features to the generator (a window with
        padding is generated as if those tokens were blank) and their logits
        as inputs are ``-inf`` (no real token takes anything from padding,
        whatever values the padded positions hold); outputs past the end are
        cropped.

        ``lean=True`` (with ``project=False``) returns ``(mixed, weights,
        windows)``, keeping only ``weights`` and ``x`` for backward
        (:class:`~.selective_recompute.LeanMix`).
        """
        if lean:  # for DynaMixerBlock's selective recomputation
            from .selective_recompute import LeanMix
            win = self.windows(x.shape[1], window_stride, x.device)
            weights = self._mixing_matrices(x, win)
            return LeanMix.apply(self, weights, x, win), weights, win
        mixed = self.mix(x, window_stride)
        return self.out(mixed) if project else mixed
