"""Selective recomputation (``selective_cp``, on by default): in training
the layers keep only what the expensive matmuls need and recompute the
cheap tensors in backward, with the same results. (That it equals the
baseline in float64 for S/M/L, every ablation switch and the sliding-window
mode with drop path is tested in tests/test_tools/test_benchmark_baseline.py;
torch.compile, which takes the plain path, in test_dynamixer_deploy.py.)"""
import copy

import pytest
import torch

from mmdynamixer.models import DynaMixer
from mmdynamixer.testing import BaselineDynaMixer, saved_tensor_bytes
from mmdynamixer.utils import torch_features
from mmdx_testing import CPU_FP16_REASON, cpu_autocast_supports, graph_nodes

needs_selective = pytest.mark.skipif(
    not torch_features.SELECTIVE_RECOMPUTE, reason=(
        'torch < 2.3 has no torch.compiler.is_compiling, so selective_cp is '
        'off (tests/test_utils/test_torch_features.py checks that it is, '
        'and what a layer keeps then)'))

SMALL = dict(arch=dict(embed_dims=[32, 64], depths=[2, 2],
                       num_segments=[4, 8], reduced_dims=[2, 2]),
             img_size=64, patch_size=4)


def randomised(model, std=0.2):
    for p in model.parameters():  # far from the init: every path matters
        torch.nn.init.normal_(p, std=std)
    return model


def outputs_and_grads(model, x, seed=1):
    model.zero_grad()
    torch.manual_seed(seed)  # the same drop-path masks in every run
    out = model(x)[-1]
    out.backward(torch.randn(out.shape, generator=torch.Generator()
                             .manual_seed(seed), dtype=out.dtype))
    return out.detach(), {n: p.grad.clone()
                          for n, p in model.named_parameters()}


def bound_bytes(model, batch, itemsize=4):
    """What a training forward of ``model`` (SMALL's layout: LayerNorm,
    GELU MLP, dynamic generators, three reweighted branches) may keep for
    backward with selective recomputation, from the tensor shapes alone.

    Per layer of ``T = B x H x W`` tokens of ``C`` channels, ``S``
    segments, ``d`` reduced dims and MLP ratio ``r``: the layer input, its
    LayerNorm output and statistics, the mixing weights of the column and
    row ops (``S x H`` and ``S x W`` per token), their gathered reduced
    features (``S x d`` per token each) and reordered generator weights
    (``N^3 d``, per layer), the branch sum, the residual stream before the
    MLP and the MLP's hidden layer: ``T (C (4 + r) + 2 + S (H + W + 2 d))
    + H^3 d + W^3 d``; per sample, the branch means and weights and the
    reweighting MLP's input and hidden layer (``C (2 K + 2)``, K = 3
    branches) and two drop-path masks. Plus the inputs of the stem and
    downsampling convolutions."""
    arch = model.arch_settings
    elements = batch * 3 * model.img_size[0] * model.img_size[1]
    for i, (C, depth) in enumerate(zip(arch['embed_dims'], arch['depths'])):
        H, W = model.grids[i]
        S, d = arch['num_segments'][i], arch['reduced_dims'][i]
        T = batch * H * W
        per_layer = (T * (C * (4 + 3) + 2 + S * (H + W + 2 * d)) +
                     (H**3 + W**3) * d + batch * (C * (2 * 3 + 2) + 2))
        elements += depth * per_layer
        if i + 1 < len(arch['embed_dims']):
            elements += T * C  # the next downsampling's input
    return elements * itemsize


def saved(model, x):
    return saved_tensor_bytes(lambda: model(x), model.parameters())[0]


@needs_selective
def test_saved_bytes_stay_below_the_bound_from_the_shapes():
    """The lean set is what bound_bytes lists; the plain layer (and the
    baseline) keep more than that bound, so the bound tells them apart."""
    torch.manual_seed(0)
    model = DynaMixer(**SMALL, drop_path_rate=0.1)
    x = torch.randn(2, 3, 64, 64)
    bound = bound_bytes(model, batch=2)
    ours = saved(model, x)
    assert ours <= bound, (ours, bound)
    plain = DynaMixer(**SMALL, selective_cp=False, drop_path_rate=0.1)
    baseline = BaselineDynaMixer(**SMALL, drop_path_rate=0.1)
    assert saved(plain, x) > 1.5 * bound
    assert saved(baseline, x) > 1.5 * bound
    with torch.no_grad():  # nothing is kept at inference
        assert saved(model, x) == 0


@needs_selective
def test_the_lean_path_runs_wherever_there_is_a_backward():
    """Not under no_grad (nothing to keep), and wherever gradients are
    asked for, also of a model in eval mode (Grad-CAM); selective_cp=False
    turns it off."""
    model = DynaMixer(**SMALL).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert model(x)[-1].grad_fn is None
    lean = {'LeanNormMLPBackward', 'LeanBranchSumBackward',
            'LeanMixBackward'}
    assert lean <= graph_nodes(model(x)[-1])
    plain = DynaMixer(**SMALL, selective_cp=False)
    assert not lean & graph_nodes(plain(x)[-1])


@pytest.mark.parametrize('kwargs', [
    dict(),
    dict(sliding_window=True),
    dict(generator='per_token', share_hw=True),
], ids=['fixed', 'sliding', 'per_token-share_hw'])
def test_with_cp_on_top_gives_the_same_numbers(kwargs):
    """with_cp recomputes the lean layer in backward: the same outputs and
    gradients as the plain layer, drop path included (float64)."""
    torch.manual_seed(0)
    lean = randomised(DynaMixer(**SMALL, **kwargs, with_cp=True,
                                drop_path_rate=0.3)).double()
    plain = DynaMixer(**SMALL, **kwargs, selective_cp=False,
                      drop_path_rate=0.3).double()
    plain.load_state_dict(lean.state_dict())
    x = torch.randn(3, 3, *((50, 78) if kwargs.get('sliding_window')
                            else (64, 64)), dtype=torch.float64)
    out, grads = outputs_and_grads(lean, x)
    ref, ref_grads = outputs_and_grads(plain, x)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=0)
    for name, grad in ref_grads.items():
        torch.testing.assert_close(grads[name], grad, rtol=1e-10,
                                   atol=1e-12 * grad.abs().max().item(),
                                   msg=name)


@pytest.mark.parametrize('dtype', [torch.bfloat16, pytest.param(
    torch.float16, marks=pytest.mark.skipif(
        not cpu_autocast_supports(torch.float16), reason=CPU_FP16_REASON))])
def test_autocast_gives_the_same_numbers_as_the_plain_layer(dtype):
    """Under autocast the lean functions run the same operations in the
    same dtypes, and their backwards make autocast's casts themselves: the
    same outputs and gradients as selective_cp=False (float32 parameters,
    low-precision matmuls)."""
    torch.manual_seed(0)
    lean = randomised(DynaMixer(**SMALL, drop_path_rate=0.3), std=0.05)
    plain = copy.deepcopy(lean)
    for layer in plain.modules():
        if hasattr(layer, 'selective_cp'):
            layer.selective_cp = False
    x = torch.randn(2, 3, 64, 64)
    results = []
    for model in (lean, plain):
        with torch.autocast('cpu', dtype=dtype):
            results.append(outputs_and_grads(model, x))
    (out, grads), (ref, ref_grads) = results
    assert out.dtype == dtype
    # one rounding step of the low-precision type, for sums taken in
    # another order (the lean backward sums a few gradients itself)
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    for name, grad in ref_grads.items():
        torch.testing.assert_close(grads[name], grad, rtol=4 * eps,
                                   atol=4 * eps * grad.abs().max().item(),
                                   msg=name)
