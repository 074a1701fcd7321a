"""The sliding-window DynaMixer: same parameters as the fixed model, any
input size, exact at the pretrained size, information across windows."""
import copy

import pytest
import torch

import mmdynamixer  # noqa: F401
from mmdynamixer.models import DynaMixer, DynaMixerOp
from mmdynamixer.utils import check_state_dict

from mmdx_testing import TINY_ARCH


@pytest.fixture(scope='module')
def s_pair():
    torch.manual_seed(0)
    fixed = DynaMixer('s', out_indices=(0, 1)).eval()
    for p in fixed.parameters():  # non-trivial mixing, not near-uniform
        torch.nn.init.normal_(p, std=0.05)
    sliding = DynaMixer('s', out_indices=(0, 1), sliding_window=True).eval()
    return fixed, sliding


def test_imagenet_checkpoint_loads_with_no_missing_or_unexpected_keys(
        s_pair, tmp_path):
    fixed, sliding = s_pair
    ckpt = tmp_path / 'in1k.pth'
    torch.save({'state_dict': {'backbone.' + k: v for k, v in
                               fixed.state_dict().items()}}, ckpt)
    model = DynaMixer('s', out_indices=(0, 1), sliding_window=True,
                      init_cfg=dict(type='Pretrained', checkpoint=str(ckpt),
                                    prefix='backbone.'))
    model.init_weights()  # strict: raises on any missing/unexpected key
    check_state_dict(model, fixed.state_dict())
    sliding.load_state_dict(fixed.state_dict(), strict=True)


def test_equals_fixed_model_at_224(s_pair):
    """In float64, so that agreement to 1e-12 holds on any CPU: both modes
    run the same operations at 224 and differ at most by summation order."""
    fixed, sliding = (copy.deepcopy(m).double() for m in s_pair)
    sliding.load_state_dict(fixed.state_dict())
    x = torch.randn(2, 3, 224, 224, dtype=torch.float64)
    with torch.no_grad():
        for a, b in zip(fixed(x), sliding(x)):
            torch.testing.assert_close(b, a, rtol=0,
                                       atol=1e-12 * a.abs().max().item())


@pytest.mark.parametrize('hw,grids', [
    ((7, 7), [(2, 2), (1, 1)]),            # one token in stage 2
    ((97, 333), [(14, 48), (7, 24)]),      # not multiples of 7, 14 or 32
    ((800, 1333), [(116, 192), (58, 96)]),
])
def test_any_size(s_pair, hw, grids):
    _, sliding = s_pair
    with torch.no_grad():
        outs = sliding(torch.randn(1, 3, *hw))
    assert [tuple(o.shape[-2:]) for o in outs] == grids
    assert [o.shape[1] for o in outs] == [192, 384]
    assert all(torch.isfinite(o).all() for o in outs)


def test_trains_at_odd_size():
    model = DynaMixer(arch=TINY_ARCH, img_size=32, patch_size=4,
                      sliding_window=True, out_indices=(0, 1))
    outs = model(torch.randn(2, 3, 45, 70))
    sum(o.mean() for o in outs).backward()
    assert all(p.grad is not None for p in model.parameters())


def reference_sliding_mix(op, x, stride):
    """The op's docstring, token by token: output token t comes from the
    window of N tokens starting (t // stride) * stride - margin; positions
    outside the sequence are padding, with zero reduced features in the
    generator and no weight as inputs. Padding is zeros here; the op fills
    it with copies of edge tokens, so agreement also shows that padded
    values never reach a real token."""
    P, L, Q, C = x.shape
    N, S, d = op.num_tokens, op.num_segments, op.reduced_dims
    margin = (N - stride) // 2
    Wc, bc = op.compress.weight, op.compress.bias
    Wg, bg = op.generate.weight, op.generate.bias
    out = torch.zeros_like(x)
    for start in range(0, L, stride):
        pos = range(start - margin, start - margin + N)
        valid = torch.tensor([0 <= t < L for t in pos])
        for p in range(P):
            for q in range(Q):
                X = torch.stack([x[p, t, q] if 0 <= t < L else
                                 torch.zeros(C, dtype=x.dtype) for t in pos])
                reduced = (X @ Wc.T + bc) * valid[:, None]
                for s in range(S):
                    flat = reduced[:, s * d:(s + 1) * d].reshape(-1)
                    G = (flat @ Wg.T + bg).view(N, N)  # G[i, j]
                    G[~valid] = float('-inf')
                    A = G.softmax(dim=0)
                    seg = slice(s * C // S, (s + 1) * C // S)
                    for j in range(margin, margin + stride):
                        t = start - margin + j
                        if t < L:
                            out[p, t, q, seg] = A[:, j] @ X[:, seg]
    return out


@pytest.mark.parametrize('L,stride', [(12, 4), (5, 4), (3, 8), (13, 8),
                                      (17, 6), (9, 3)])
def test_sliding_mix_matches_its_definition(L, stride):
    op = DynaMixerOp(16, 8, 4, 2).double()
    for p in op.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(2, L, 2, 16, dtype=torch.float64)
    torch.testing.assert_close(op(x, 1, stride),
                               op.out(reference_sliding_mix(op, x, stride)))


@pytest.mark.parametrize('generator', ['static', 'per_token'])
def test_sliding_weights_are_distributions_over_real_inputs(generator):
    op = DynaMixerOp(16, 8, 4, 2, generator=generator)
    op.init_weights()
    x = torch.randn(2, 13, 3, 16)
    weights = op.mixing_matrices(x, 1, 4)  # (P, Q, S, W, out, in)
    weights = weights.expand(2, 3, 4, -1, -1, -1)  # static: broadcast
    win = op.windows(13, 4)
    assert weights.shape == (2, 3, 4, win.count, 4, 8)
    torch.testing.assert_close(weights.sum(-1),
                               torch.ones(weights.shape[:-1]))
    padding = ~win.valid[None, None, None, :, None, :].expand_as(weights)
    assert (weights[padding] == 0).all()


def reach(window_stride):
    """How far (in stage-1 tokens) a change at token column 0 travels."""
    torch.manual_seed(0)
    model = DynaMixer(arch=dict(TINY_ARCH, depths=[4, 1]), img_size=32,
                      patch_size=4, reweight=False, sliding_window=True,
                      window_stride=window_stride, out_indices=0)
    model = model.double().eval()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.1)
    # 8 x 40 tokens; windows of 8 tokens; float64 so that the weak far
    # contributions stand far above rounding
    x = torch.randn(1, 3, 32, 160, dtype=torch.float64)
    y = x.clone()
    y[..., :4] += 1.0  # the pixels of token column 0
    with torch.no_grad():
        diff = (model(x)[0] - model(y)[0]).abs().amax(dim=(0, 1, 2))
    return diff


def test_information_crosses_window_borders():
    overlapping = reach(0.5)   # stride 4: windows overlap
    disjoint = reach(1.0)      # stride 8: no overlap, no crossing
    assert (disjoint[:8] > 0).all()
    assert (disjoint[8:] == 0).all()  # never leaves the first window
    # each of the 4 layers carries the change one stride (4 tokens) on:
    # columns 0..15 (two windows of 8) are reached, and nothing beyond
    assert (overlapping[:16] > 0).all()
    assert (overlapping[16:] == 0).all()


def test_window_stride_errors():
    with pytest.raises(ValueError, match=r'\(0, 1\]'):
        DynaMixer(arch=TINY_ARCH, img_size=32, patch_size=4,
                  sliding_window=True, window_stride=1.5)
    with pytest.raises(ValueError, match='one int per stage'):
        DynaMixer(arch=TINY_ARCH, img_size=32, patch_size=4,
                  sliding_window=True, window_stride=[4])
    with pytest.raises(ValueError, match='window stride must be'):
        DynaMixerOp(16, 8, 4)(torch.randn(1, 12, 1, 16), 1, 9)


def test_fixed_size_error_points_to_sliding_mode():
    with pytest.raises(ValueError, match='sliding_window=True'):
        DynaMixer('s')(torch.randn(1, 3, 256, 256))
