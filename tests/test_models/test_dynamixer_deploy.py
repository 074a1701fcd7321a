"""Memory and deployment options: activation checkpointing (with_cp),
torch.compile without graph breaks, and mixed precision that stays finite
where float32 is (the ONNX export is tested with its tool in
tests/test_tools/test_pytorch2onnx.py)."""
import copy

import pytest
import torch

from mmdynamixer.models import DynaMixer
from mmdynamixer.testing import ReferenceDynaMixer, retained_bytes
from mmdx_testing import CPU_FP16_REASON, cpu_autocast_supports

SMALL = dict(arch=dict(embed_dims=[16, 32], depths=[2, 2],
                       num_segments=[4, 8], reduced_dims=[2, 2]),
             img_size=64, patch_size=4)


def randomised(model, std=0.1):
    for p in model.parameters():
        torch.nn.init.normal_(p, std=std)
    return model


def test_with_cp_same_numbers_less_memory():
    # float64: recomputation may sum in another order; float64 makes the
    # default tolerance of assert_close (1e-7) hold on any CPU
    torch.manual_seed(0)
    plain = randomised(DynaMixer(**SMALL, drop_path_rate=0.5)).double()
    ckpt = DynaMixer(**SMALL, drop_path_rate=0.5, with_cp=True).double()
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64, requires_grad=True)
    grad = torch.randn(2, 32, 8, 8, dtype=torch.float64)
    results = []
    for model in (plain, ckpt):
        torch.manual_seed(1)  # the same drop-path draws
        kept, out = retained_bytes(lambda: model(x)[0])
        out.backward(grad)
        results.append((out, kept, {n: p.grad.clone()
                                    for n, p in model.named_parameters()}))
        x.grad = None
    (out, kept, grads), (out_cp, kept_cp, grads_cp) = results
    torch.testing.assert_close(out_cp, out)
    for name in grads:  # recomputation drops the same paths
        torch.testing.assert_close(grads_cp[name], grads[name], msg=name)
    # only the layers' inputs (and the stem's) are kept
    assert kept_cp < kept / 5, (kept_cp, kept)
    with torch.no_grad():  # nothing to checkpoint at inference
        torch.testing.assert_close(ckpt.eval()(x)[0], plain.eval()(x)[0])


def outputs_and_grads(model, x, forward=None):
    """Outputs and parameter gradients of ``forward`` (default: ``model``)."""
    model.zero_grad()
    outs = (model if forward is None else forward)(x)
    sum(o.square().mean() for o in outs).backward()
    return ([o.detach() for o in outs],
            {n: p.grad.clone() for n, p in model.named_parameters()})


def relative_error(value, truth):
    return ((value.double() - truth).abs().max() / truth.abs().max()).item()


@pytest.mark.parametrize('sliding', [False, True])
def test_torch_compile_full_graph(sliding, tmp_path, monkeypatch):
    """Compiled is as exact as eager. Both run in float32 (what users
    compile; float64 hits an inductor code-generation bug with
    ATEN_CPU_CAPABILITY=default) and sum in different orders, so each is
    measured against the float64 eager model: no output or gradient of the
    compiled model may be off by more than 10 times the largest float32
    error of eager (~1e-6 relative), a bound derived from the computation on
    whatever CPU runs it (a wrong kernel is off by far more).

    The fixed model goes through inductor, as users compile it. The
    sliding-window model goes through dynamo and AOTAutograd (the
    ``aot_eager`` backend): the same full graph, forward and backward, with
    no graph break, and its numerics, without a second two minutes of
    inductor's C++ compilation on 2 cores."""
    torch.manual_seed(0)
    # one layer per stage: both stages' code, half the compile time
    model = randomised(DynaMixer(**dict(SMALL, arch=dict(
        SMALL['arch'], depths=[1, 1])), sliding_window=sliding,
        out_indices=(0, 1)))
    shape = (50, 78) if sliding else (64, 64)
    x = torch.randn(2, 3, *shape)
    truth = outputs_and_grads(copy.deepcopy(model).double(), x.double())
    eager = outputs_and_grads(model, x)
    torch._dynamo.reset()  # independent of other tests' compilations
    # and of kernels compiled by other runs: inductor's on-disk cache key
    # leaves out ATEN_CPU_CAPABILITY, so another run's kernels for another
    # instruction set would be loaded (and abort)
    monkeypatch.setenv('TORCHINDUCTOR_CACHE_DIR', str(tmp_path / 'inductor'))
    # fullgraph=True: any graph break is an error. Sliding-window models
    # see many input sizes: static shapes compile once per size.
    compiled = outputs_and_grads(model, x, torch.compile(
        model, fullgraph=True, dynamic=False if sliding else None,
        backend='aot_eager' if sliding else 'inductor'))
    names = [f'output {i}' for i in range(len(truth[0]))] + list(truth[1])
    exact = truth[0] + list(truth[1].values())
    bound = 10 * max(relative_error(e, t) for e, t in zip(
        eager[0] + list(eager[1].values()), exact))
    for name, ours, t in zip(names, compiled[0] + list(compiled[1].values()),
                             exact):
        assert relative_error(ours, t) <= bound, name


DEVICES = [pytest.param('cpu', marks=pytest.mark.skipif(
    not cpu_autocast_supports(torch.float16), reason=CPU_FP16_REASON +
    '; test_generators_run_in_float32_under_autocast checks the same '
    'code under bfloat16')),
    pytest.param('cuda', marks=pytest.mark.skipif(
        not torch.cuda.is_available(), reason='needs CUDA; the CPU case '
        'runs the same autocast code with float16'))]


@pytest.mark.parametrize('dtype', [torch.bfloat16, pytest.param(
    torch.float16, marks=pytest.mark.skipif(
        not cpu_autocast_supports(torch.float16), reason=CPU_FP16_REASON))])
@pytest.mark.parametrize('generator', ['dynamic', 'per_token'])
def test_generators_run_in_float32_under_autocast(generator, dtype):
    """Under CPU autocast the generators (and the softmax after them)
    compute in float32, the mixing and the projections in the autocast
    dtype: what keeps float16 finite (below), seen on every torch. The
    residual stream (every layer's output, so the stage outputs) and the
    LayerNorms that read it stay float32, as CUDA's autocast runs
    LayerNorm."""
    model = DynaMixer(**dict(SMALL, generator=generator))
    op = model.stages[0][0].mixer.mix_h
    seen = {}

    def record(name):
        def hook(module, inputs, output):
            seen.setdefault(name, output.dtype)
        return hook

    generator_layer = op.compress if generator == 'dynamic' else \
        op.generate
    generator_layer.register_forward_hook(record('generator'))
    model.stages[0][0].mixer.proj.register_forward_hook(record('proj'))
    for i, stage in enumerate(model.stages):
        for j, layer in enumerate(stage):
            for name in ('norm1', 'norm2'):
                getattr(layer, name).register_forward_hook(
                    record(f'{i}.{j}.{name}'))
            layer.register_forward_hook(record(f'{i}.{j}'))
    with torch.autocast('cpu', dtype=dtype):
        outs = model(torch.randn(2, 3, 64, 64))
    float32 = {f'{i}.{j}{name}': torch.float32 for i, stage in
               enumerate(model.stages) for j in range(len(stage))
               for name in ('', '.norm1', '.norm2')}
    assert seen == {'generator': torch.float32, 'proj': dtype, **float32}
    assert [out.dtype for out in outs] == [torch.float32] * len(outs)


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('generator', ['dynamic', 'per_token'])
def test_amp_stays_finite_with_large_activations(device, generator):
    """Generator logits far beyond float16's range (~1e6): float32 is
    finite, and so is float16 autocast because the generators and the
    softmaxes run in float32; the plain transcription (the reference
    DynaMixer, the benchmark's baseline) in autocast is not, so the input
    does test this."""
    torch.manual_seed(0)
    kwargs = dict(SMALL, generator=generator)
    model = randomised(DynaMixer(**kwargs)).to(device)
    for name, p in model.named_parameters():
        if 'generate' in name or 'compress' in name:
            p.data.mul_(1000.)  # logits of ~1e5
        elif 'reweight' in name:
            p.data.mul_(100.)
    x = torch.randn(2, 3, 64, 64, device=device) * 100
    with torch.no_grad():
        logits = model.stages[0][0].mixer.mix_h.logits_of(
            model.stages[0][0].norm1(
                model.downsample_layers[0](x).permute(0, 2, 3, 1)),
            model.stages[0][0].mixer.mix_h.windows(16, None))
    assert logits.abs().max() > 1e5  # would overflow float16 (65504)
    reference = model(x)[0]
    assert torch.isfinite(reference).all()
    with torch.autocast(device, dtype=torch.float16):
        out = model(x)[0]
    assert out.dtype == torch.float32  # the residual stream
    assert torch.isfinite(out).all()
    out.float().square().mean().backward()
    for name, p in model.named_parameters():
        assert torch.isfinite(p.grad).all(), name
    # close to float32 (float16 mixing: a few 1e-3 relative)
    torch.testing.assert_close(out.float(), reference, rtol=0.05,
                               atol=0.05 * reference.abs().max().item())
    plain = ReferenceDynaMixer(
        kwargs['arch'], img_size=64, patch_size=4, generator=generator)
    plain.load_state_dict(model.state_dict())
    plain.to(device)
    with torch.no_grad(), torch.autocast(device, dtype=torch.float16):
        assert not torch.isfinite(plain(x)[0]).all()
