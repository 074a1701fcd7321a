"""Activation checkpointing in training: ``selective_cp`` (on by default:
the policy ``keep_channel_matmuls`` keeps the Linear layers' results and
recomputes the rest in backward) and ``with_cp`` (each layer recomputed
from its input) change what a training step keeps, never what it computes.
(That the model equals the independent reference in float64 in every mode
is tested in test_reference_equivalence.py; torch.compile in training, with
the policy, in test_dynamixer_deploy.py.)"""
import pytest
import torch

from mmdynamixer.models import DynaMixer
from mmdynamixer.testing import (ReferenceDynaMixer, retained_bytes,
                                 saved_for_backward)
from mmdynamixer.utils import torch_features
from mmdx_testing import CPU_FP16_REASON, cpu_autocast_supports

needs_selective = pytest.mark.skipif(
    not torch_features.SELECTIVE_CHECKPOINT, reason=(
        'torch < 2.4 has no torch.utils.checkpoint.'
        'create_selective_checkpoint_contexts, so selective_cp is off '
        '(tests/test_utils/test_torch_features.py checks that it is, and '
        'what a layer keeps then)'))

# generators over N * d < C reduced features in both stages (16 * 2 < 48,
# 8 * 2 < 96), as in the published models: the policy recomputes them
SMALL = dict(arch=dict(embed_dims=[48, 96], depths=[2, 2],
                       num_segments=[4, 8], reduced_dims=[2, 2]),
             img_size=64, patch_size=4)
MODES = dict(selective=dict(), plain=dict(selective_cp=False),
             with_cp=dict(with_cp=True))


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


def models_in_every_mode(**kwargs):
    torch.manual_seed(0)
    models = {mode: DynaMixer(**SMALL, **kwargs, **extra)
              for mode, extra in MODES.items()}
    state = randomised(models['plain']).state_dict()
    for model in models.values():
        model.load_state_dict(state)
    return models


@pytest.mark.parametrize('kwargs', [
    dict(drop_path_rate=0.3),
    dict(sliding_window=True, drop_path_rate=0.3),
    dict(generator='per_token', share_hw=True),
    dict(generator='static', branches='hw', reweight=False),
], ids=['fixed', 'sliding', 'per_token-share_hw', 'static-hw'])
@pytest.mark.parametrize('dtype', [None, torch.bfloat16, pytest.param(
    torch.float16, marks=pytest.mark.skipif(
        not cpu_autocast_supports(torch.float16), reason=CPU_FP16_REASON))],
    ids=['float32', 'bf16-autocast', 'fp16-autocast'])
def test_modes_compute_the_same_numbers_bit_for_bit(kwargs, dtype):
    """Recomputation reruns the same kernels on the same inputs (the RNG
    state restored for drop path): outputs and parameter gradients are
    equal bit for bit to the plain model's, in float32 and under autocast."""
    models = models_in_every_mode(**kwargs)
    x = torch.randn(2, 3, *((50, 78) if kwargs.get('sliding_window')
                            else (64, 64)))
    results = {}
    for mode, model in models.items():
        with torch.autocast('cpu', dtype=dtype or torch.bfloat16,
                            enabled=dtype is not None):
            results[mode] = outputs_and_grads(model, x)
    ref, ref_grads = results['plain']
    assert ref.dtype == torch.float32  # the residual stream, also in AMP
    if dtype is not None:  # autocast did change the numbers
        assert not torch.equal(ref, outputs_and_grads(models['plain'], x)[0])
    for mode in ('selective', 'with_cp'):
        out, grads = results[mode]
        assert torch.equal(out, ref), mode
        for name, grad in ref_grads.items():
            assert torch.equal(grads[name], grad), (mode, name)


def kept_bound(model, batch, itemsize=4):
    """What a training forward of ``model`` (SMALL's layout: LayerNorm,
    GELU MLP of ratio ``r = 3``, dynamic generators over fewer than ``C``
    reduced features, three reweighted branches) may keep for backward
    under ``keep_channel_matmuls``, from the tensor shapes alone.

    Per layer of ``T = B x H x W`` tokens of ``C`` channels, ``S`` segments
    and ``d`` reduced dims: its input; the results of the matmuls over
    ``C`` or more inputs: ``compress`` of the column and row ops (``S d``
    per token each), their ``out`` and ``mlp_c`` (``3 C``), ``proj``
    (``C``), ``fc1`` (``r C``) and ``fc2`` (``C``): ``T C (6 + r) + 2 T S d``;
    per sample, the reweighting's ``fc1`` (``C / 4``). Outside the layers:
    the inputs of the stem and the downsampling convolutions, and the
    output. The generators' logits (``S N`` per token and op), the
    softmaxes, the LayerNorm and GELU outputs, the gathered copies and the
    mixed tokens are recomputed, not kept."""
    arch = model.arch_settings
    elements = batch * 3 * model.img_size[0] * model.img_size[1]
    for i, (C, depth) in enumerate(zip(arch['embed_dims'], arch['depths'])):
        H, W = model.grids[i]
        S, d = arch['num_segments'][i], arch['reduced_dims'][i]
        T = batch * H * W
        elements += depth * (T * C * (6 + 3) + 2 * T * S * d +
                             batch * C // 4)
        elements += T * C  # the next downsampling's input, or the output
    return elements * itemsize


@needs_selective
def test_selective_cp_keeps_what_the_policy_says():
    """The default keeps no more than kept_bound lists (plus 2% for
    autograd's bookkeeping); the plain model and the independent reference
    keep more than twice that, so the bound tells them apart."""
    models = models_in_every_mode(drop_path_rate=0.1)
    x = torch.randn(2, 3, 64, 64)
    bound = kept_bound(models['selective'], batch=2)
    kept = {mode: retained_bytes(lambda: model(x))[0]
            for mode, model in models.items()}
    reference = ReferenceDynaMixer(**SMALL, drop_path_rate=0.1)
    kept['reference'] = retained_bytes(lambda: reference(x))[0]
    assert kept['selective'] <= 1.02 * bound, (kept, bound)
    assert kept['plain'] > 2 * bound, (kept, bound)
    assert kept['reference'] > 2 * bound, (kept, bound)
    assert kept['with_cp'] < kept['selective'] / 3, kept


def test_nothing_is_recomputed_outside_training():
    """Under no_grad nothing is kept, and a model in eval mode (Grad-CAM
    asks it for gradients) runs its layers plainly: it keeps what the plain
    model keeps. Counted with autograd's saved-tensor hooks, exact on every
    torch (which also shows that training recomputes: with_cp saves under
    a third of what the plain model saves)."""
    models = models_in_every_mode()
    x = torch.randn(1, 3, 64, 64)
    training = {mode: saved_for_backward(lambda: model.train()(x))
                for mode, model in models.items()}
    assert training['with_cp'][0] < training['plain'][0] / 3, training
    kept = {mode: saved_for_backward(lambda: model.eval()(x))
            for mode, model in models.items()}
    assert kept['selective'] == kept['plain'] == kept['with_cp'], kept
    with torch.no_grad():  # one forward, both counts
        held, saved = retained_bytes(
            lambda: saved_for_backward(lambda: models['selective'](x)))
    assert saved == (0, 0)
    # nor anything of its own: what it still holds when it returns (the
    # profiler's count, within tens of KB on torch 2.1) is far below what a
    # training forward saves
    assert held < training['plain'][0] / 10, (held, training)
