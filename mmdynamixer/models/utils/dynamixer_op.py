# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""The DynaMixer operation: token mixing with matrices generated from the tokens."""
import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_

GENERATORS = ('dynamic', 'static', 'per_token')


def softmax_fp32(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Softmax in at least float32, so that fp16/bf16 logits under
    autocast cannot overflow (float64 stays float64)."""
    return x.softmax(dim=dim, dtype=torch.promote_types(x.dtype,
                                                        torch.float32))


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

    The logits are normalised with a softmax over the input tokens (computed
    in float32 so that mixed precision stays finite), and output token ``j``
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

    def mixing_matrices(self, x: torch.Tensor) -> torch.Tensor:
        """Return the mixing matrices for ``x`` of shape ``(P, N, Q, C)``.

        Returns:
            Tensor: ``(P, Q, S, N_out, N_in)`` (``(1, 1, 1, N, N)`` for the
            static generator), each row summing to 1 over the input tokens.
            The transposed layout lets one batched matmul apply them.
        """
        P, N, Q, C = x.shape
        S, d = self.num_segments, self.reduced_dims
        if N != self.num_tokens:
            raise ValueError(
                f'This DynaMixer op mixes sequences of {self.num_tokens} '
                f'tokens, got {N}.')
        if self.generator == 'dynamic':
            # (P, N, Q, S*d) -> per (sequence, segment) token-major N*d
            reduced = self.compress(x).view(P, N, Q, S, d)
            reduced = reduced.permute(0, 2, 3, 1, 4).reshape(P, Q, S, N * d)
            logits = self.generate(reduced).view(P, Q, S, N, N)
            in_axis = -2  # G[i, j]: rows are input tokens
        elif self.generator == 'static':
            logits = self.logits.view(1, 1, 1, N, N)
            in_axis = -2
        else:
            logits = self.generate(x).view(P, N, Q, S, N)
            logits = logits.permute(0, 2, 3, 1, 4)  # (P, Q, S, N_out, N_in)
            in_axis = -1
        weights = softmax_fp32(logits, in_axis).to(x.dtype)
        return weights.transpose(-1, -2) if in_axis == -2 else weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mix ``x`` of shape ``(P, N, Q, C)`` along dim 1.

        ``P`` and ``Q`` index independent sequences (e.g. batch and columns).
        """
        P, N, Q, C = x.shape
        S = self.num_segments
        weights = self.mixing_matrices(x)
        segments = x.view(P, N, Q, S, C // S).permute(0, 2, 3, 1, 4)
        mixed = torch.matmul(weights, segments)  # (P, Q, S, N, C/S)
        mixed = mixed.permute(0, 3, 1, 2, 4).reshape(P, N, Q, C)
        return self.out(mixed)
