# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""Selective recomputation for DynaMixer layers: backward keeps the results
of the expensive matmuls and recomputes the cheap tensors they were made
from.

A straightforward layer keeps, per token, the LayerNorm outputs, the GELU
output of the MLP (3 C), a gathered copy of the tokens for each mixing
matmul, each mixed branch, and per sample the ``(C, C)`` reweighted branch
matrices. Recomputing those costs a LayerNorm, a GELU, two small mixing
matmuls and elementwise products in backward, a few percent of a training
step, and halves what a training step keeps.

Each function's forward runs the same operations as the plain layer
(under the caller's autocast, so in the same dtypes) and its backward the
same gradient kernels, with the casts autocast made written out: results
equal the plain layer's up to the order of floating-point sums.
"""
import torch
import torch.nn.functional as F
from torch.autograd import Function

from mmdynamixer.utils import torch_features
from mmdynamixer.utils.torch_features import autocast_state


def recompute_applies() -> bool:
    """Whether a forward may take the lean functions: when it records a
    backward, and not while tracing or compiling (tracers and torch.compile
    see the plain operations; compile's partitioner chooses what to
    recompute itself). Never on a torch without
    ``torch.compiler.is_compiling`` (< 2.3): it could not tell."""
    return (torch_features.SELECTIVE_RECOMPUTE and torch.is_grad_enabled()
            and not torch.jit.is_tracing()
            and not torch_features.is_compiling())


def gemm_operand(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``t`` as autocast handed it to a matmul that ran in ``dtype``."""
    return t.to(dtype)


class LeanMix(Function):
    """``op.apply_mixing(weights, x, win)``, keeping ``weights`` and ``x``
    for backward, not the gathered (copied) segments of ``x``."""

    @staticmethod
    def forward(ctx, op, weights, x, win):
        mixed = op.apply_mixing(weights, x, win)
        ctx.op, ctx.win, ctx.dtype = op, win, mixed.dtype
        ctx.save_for_backward(weights, x)
        return mixed

    @staticmethod
    def backward(ctx, grad):
        weights, x = ctx.saved_tensors
        grad_weights, grad_x = ctx.op.apply_mixing_backward(
            grad, weights, x, ctx.win, ctx.dtype)
        return None, grad_weights, grad_x, None


class LeanBranchSum(Function):
    """DynaMixerBlock's reweighted branch sum before ``proj``,
    ``sum_k t_k @ (W_k^T * a_k) + sum_k a_k b_k`` (``a_k``: per-sample,
    per-channel branch weights), keeping for backward not the mixed branches
    ``t_k`` nor the per-sample ``(C, C)`` matrices, but what recomputes them:
    each op's mixing weights and input (``recipes``).

    Args (of ``apply``):
        recipes (list): per branch, ``(op, win)`` of the op that mixed it,
            or None for a branch that is its own input (channels).
        shape (tuple): ``(B, H, W, C)``.
        a (Tensor): ``(B, C, K)`` branch weights.
        *tensors: per branch ``k``: ``t_k`` (its output, ``(B, H, W, C)``
            or any view of that size), ``W_k``, ``b_k`` (or None), and for
            mixed branches the op's ``weights`` and ``x`` (else None, None).
    """

    @staticmethod
    def forward(ctx, recipes, shape, a, *tensors):
        B, H, W, C = shape
        branches = [tensors[i:i + 5] for i in range(0, len(tensors), 5)]
        bias = sum(a[..., k] * b for k, (_, _, b, _, _) in
                   enumerate(branches) if b is not None)
        z = bias[:, None]
        for k, (t, weight, _, _, _) in enumerate(branches):
            scaled = weight.t() * a[:, None, :, k]  # (B, C, C)
            z = torch.baddbmm(z, t.reshape(B, H * W, C), scaled)
        ctx.recipes, ctx.shape = recipes, shape
        ctx.dtypes = dict(gemm=z.dtype, bias=bias.dtype,
                          t=[t.dtype for t, *_ in branches])
        ctx.autocast = (a.device.type, *autocast_state(a.device.type))
        kept = []
        for (t, weight, b, mix_weights, x), recipe in zip(branches, recipes):
            kept += [t if recipe is None else None, weight, b, mix_weights,
                     x]
        ctx.save_for_backward(a, *kept)
        return z

    @staticmethod
    def backward(ctx, grad_z):
        B, H, W, C = ctx.shape
        a, *kept = ctx.saved_tensors
        gemm = ctx.dtypes['gemm']
        device, autocast, autocast_dtype = ctx.autocast
        grad_bias = grad_z.sum(1).to(ctx.dtypes['bias'])  # (B, C)
        grad_a = torch.zeros_like(a)
        grads = []
        for k, recipe in enumerate(ctx.recipes):
            t, weight, b, mix_weights, x = kept[5 * k:5 * k + 5]
            if recipe is not None:  # recompute the mixed branch
                op, win = recipe
                with torch.autocast(device, autocast_dtype,
                                    enabled=autocast):
                    t = op.apply_mixing(mix_weights, x, win)
            t = t.reshape(B, H * W, C)
            scaled = weight.t() * a[:, None, :, k]
            grad_t = torch.bmm(grad_z, gemm_operand(scaled, gemm).transpose(
                1, 2)).to(ctx.dtypes['t'][k])
            grad_scaled = torch.bmm(gemm_operand(t, gemm).transpose(1, 2),
                                    grad_z).to(scaled.dtype)
            grad_weight = (grad_scaled * a[:, None, :, k]).sum(0).t()
            grad_a[..., k] = (grad_scaled * weight.t()).sum(1)
            grad_b = None
            if b is not None:
                grad_a[..., k] += grad_bias * b
                grad_b = (grad_bias * a[..., k]).sum(0)
            grads += [grad_t.view(B, H, W, C), grad_weight, grad_b, None,
                      None]
        return (None, None, grad_a, *grads)


class LeanNormMLP(Function):
    """``fc2(act(fc1(norm(x))))`` with LayerNorm and GELU, keeping ``x`` and
    the ``fc1`` output for backward, not the LayerNorm output nor the GELU
    output (3 C per token)."""

    @staticmethod
    def forward(ctx, x, norm_weight, norm_bias, eps, w1, b1, approximate,
                w2, b2):
        C = x.shape[-1]
        normed = F.layer_norm(x, (C, ), norm_weight, norm_bias, eps)
        hidden = F.linear(normed, w1, b1)
        out = F.linear(F.gelu(hidden, approximate=approximate), w2, b2)
        ctx.eps, ctx.approximate = eps, approximate
        ctx.norm_dtype = normed.dtype
        ctx.save_for_backward(x, norm_weight, norm_bias, w1, b1, hidden, w2,
                              b2)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, norm_weight, norm_bias, w1, b1, hidden, w2, b2 = ctx.saved_tensors
        C = x.shape[-1]
        gemm, dtype = hidden.dtype, ctx.norm_dtype
        grad_out = grad_out.reshape(-1, grad_out.shape[-1])
        hidden = hidden.reshape(-1, hidden.shape[-1])
        act = F.gelu(hidden, approximate=ctx.approximate)
        grad_act = grad_out.mm(gemm_operand(w2, gemm))
        grad_w2 = grad_out.t().mm(act).to(w2.dtype)
        grad_b2 = grad_out.sum(0).to(b2.dtype)
        grad_hidden = torch.ops.aten.gelu_backward(
            grad_act, hidden, approximate=ctx.approximate)
        # the LayerNorm as autocast ran it (its input cast to float32 where
        # autocast does that; the parameters are float32 already)
        x_in = x.reshape(-1, C).to(dtype)
        normed, mean, rstd = torch.native_layer_norm(
            x_in, (C, ), norm_weight, norm_bias, ctx.eps)
        grad_normed = grad_hidden.mm(gemm_operand(w1, gemm)).to(dtype)
        grad_w1 = grad_hidden.t().mm(gemm_operand(normed, gemm)).to(
            w1.dtype)
        grad_b1 = grad_hidden.sum(0).to(b1.dtype)
        grad_x, grad_nw, grad_nb = torch.ops.aten.native_layer_norm_backward(
            grad_normed, x_in, (C, ), mean, rstd, norm_weight, norm_bias,
            [True, True, True])
        return (grad_x.view(x.shape).to(x.dtype), grad_nw, grad_nb, None,
                grad_w1, grad_b1, None, grad_w2, grad_b2)
