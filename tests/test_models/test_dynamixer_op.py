"""The op and the block against literal, loop-by-loop transcriptions of the
paper's DynaMixer operation and block, in the index orders of the authors'
reference code (models/dynamixer.py)."""
import pytest
import torch
import torch.nn.functional as F

from mmdynamixer.models import DynaMixerBlock, DynaMixerOp


def spec_op(op, X):
    """The DynaMixer operation for one sequence X (N, D), index by index."""
    N, D = X.shape
    S, d = op.num_segments, op.reduced_dims
    Wc, bc = op.compress.weight, op.compress.bias
    Wg, bg = op.generate.weight, op.generate.bias
    reduced = X @ Wc.T + bc  # (N, S*d), token n viewed as (S, d)
    out = torch.zeros_like(X)
    for s in range(S):
        flat = torch.stack([reduced[n, s * d + k] for n in range(N)
                            for k in range(d)])  # index n*d + k
        g = flat @ Wg.T + bg  # N*N, G[i, j] = g[i*N + j]
        G = g.view(N, N)
        A = torch.softmax(G, dim=0)  # over the input token i
        seg = slice(s * D // S, (s + 1) * D // S)
        for j in range(N):
            out[j, seg] = sum(A[i, j] * X[i, seg] for i in range(N))
    return out @ op.out.weight.T + op.out.bias


def test_op_matches_spec_index_order():
    op = DynaMixerOp(embed_dims=12, num_tokens=5, num_segments=3,
                     reduced_dims=2).double()
    for p in op.parameters():  # break any symmetry a wrong order could hide
        torch.nn.init.normal_(p)
    x = torch.randn(2, 5, 3, 12, dtype=torch.float64)  # (P, N, Q, C)
    ours = op(x)
    for p in range(2):
        for q in range(3):
            torch.testing.assert_close(ours[p, :, q], spec_op(op, x[p, :, q]))


def test_op_parameter_count_matches_spec_formula():
    D, N, S, d = 192, 32, 8, 2
    op = DynaMixerOp(D, N, S, d)
    expected = D * S * d + S * d + N * d * N * N + N * N + D * D + D
    assert sum(p.numel() for p in op.parameters()) == expected


@pytest.mark.parametrize('generator', ['dynamic', 'static', 'per_token'])
def test_mixing_matrices_are_distributions_over_inputs(generator):
    op = DynaMixerOp(16, 6, 4, 2, generator=generator)
    op.init_weights()
    weights = op.mixing_matrices(torch.randn(3, 6, 2, 16))
    assert weights.shape[-2:] == (6, 6)
    torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]))
    assert (weights >= 0).all()


def test_static_generator_ignores_input_and_per_token_does_not():
    x1, x2 = torch.randn(2, 1, 6, 1, 16).unbind(0)
    static = DynaMixerOp(16, 6, 4, generator='static')
    static.init_weights()
    torch.testing.assert_close(static.mixing_matrices(x1),
                               static.mixing_matrices(x2))
    dense = DynaMixerOp(16, 6, 4, generator='per_token')
    assert not torch.allclose(dense.mixing_matrices(x1),
                              dense.mixing_matrices(x2))


def test_op_errors():
    with pytest.raises(ValueError, match='Unknown generator'):
        DynaMixerOp(16, 6, 4, generator='attention')
    with pytest.raises(ValueError, match='must divide'):
        DynaMixerOp(18, 6, 4)
    with pytest.raises(ValueError, match='sequences of 6 tokens, got 7'):
        DynaMixerOp(16, 6, 4)(torch.randn(1, 7, 1, 16))


def test_block_matches_spec_reweighting():
    """The block: h over columns, w over rows, c, split-attention weights
    (the reference's reweight MLP, index c*3 + k)."""
    blk = DynaMixerBlock(16, grid=(4, 5), num_segments=4, reduced_dims=2)
    blk = blk.double()
    for p in blk.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(2, 4, 5, 16, dtype=torch.float64)  # B H W C
    B, H, W, C = x.shape
    h = torch.stack([torch.stack([spec_op(blk.mix_h, x[b, :, w])
                                  for w in range(W)], 1) for b in range(B)])
    w = torch.stack([torch.stack([spec_op(blk.mix_w, x[b, i])
                                  for i in range(H)], 0) for b in range(B)])
    c = x @ blk.mlp_c.weight.T
    a = (h + w + c).mean(dim=(1, 2))
    a = blk.reweight.fc2(F.gelu(blk.reweight.fc1(a)))
    a = a.view(B, C, 3).softmax(-1)  # index c*3 + k
    mixed = (h * a[:, None, None, :, 0] + w * a[:, None, None, :, 1]
             + c * a[:, None, None, :, 2])
    expected = mixed @ blk.proj.weight.T + blk.proj.bias
    torch.testing.assert_close(blk(x), expected)

