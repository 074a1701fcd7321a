"""The benchmark's baseline (SPEC sections 1-3 transcribed in standard
PyTorch) computes what our backbone computes, in float32, for S/M/L, every
ablation switch and the sliding-window mode: outputs to 1e-5, and each
parameter's gradient to 1e-5 absolute plus 1e-5 of that tensor's largest
gradient (the stem's gradients reach ~70 after 18 layers of backpropagation,
where float32 summation order alone moves them by ~1e-5 in absolute terms)."""
import json

import pytest
import torch

from mmdynamixer.models import DynaMixer
from mmdx_testing import ABLATIONS, load_benchmark, run_tool


def assert_same_numbers(kwargs, x):
    torch.manual_seed(0)
    ours = DynaMixer(**kwargs)
    for p in ours.parameters():  # random weights, far from the init
        torch.nn.init.normal_(p, std=0.02)
    base = load_benchmark().BaselineDynaMixer(**kwargs)
    base.load_state_dict(ours.state_dict(), strict=True)
    out, ref = ours(x)[-1], base(x)[0]
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(out)
    out.backward(grad)
    ref.backward(grad)
    for (name, p), q in zip(ours.named_parameters(), base.parameters()):
        scale = q.grad.abs().max()
        assert scale > 0, name
        assert (p.grad - q.grad).abs().max() <= 1e-5 * (1 + scale), name


@pytest.mark.parametrize('arch', ['s', 'm', 'l'])
def test_baseline_equals_backbone(arch):
    batch = 2 if arch == 's' else 1
    assert_same_numbers(dict(arch=arch), torch.randn(batch, 3, 224, 224))


@pytest.mark.parametrize('switches', ABLATIONS,
                         ids=lambda s: ','.join(map(str, s.values())) or
                         'full')
def test_baseline_equals_backbone_for_ablations(switches):
    assert_same_numbers(dict(switches), torch.randn(1, 3, 224, 224))


@pytest.mark.parametrize('generator', ['dynamic', 'static', 'per_token'])
@pytest.mark.parametrize('hw', [(126, 182), (97, 333)])
def test_baseline_equals_backbone_in_sliding_mode(generator, hw):
    # odd sizes: padded images, windows with padding at both ends
    assert_same_numbers(dict(arch='s', sliding_window=True,
                             generator=generator),
                        torch.randn(1, 3, *hw))


def test_baseline_sliding_strides_on_a_small_model():
    arch = dict(embed_dims=[16, 32], depths=[1, 1], num_segments=[4, 8],
                reduced_dims=[2, 2])
    for stride in (0.25, 0.5, 1.0, [3, 2]):
        assert_same_numbers(dict(arch=arch, img_size=64, patch_size=4,
                                 sliding_window=True, window_stride=stride),
                            torch.randn(2, 3, 52, 100))


def test_speed_benchmark_end_to_end(tmp_path):
    out = tmp_path / 'speed.json'
    proc = run_tool('tools/analysis_tools/benchmark.py', 'speed', '--archs',
                    's', '--batch', '1', '--repeats', '1', '--warmup', '0',
                    '--threads', '1', '--matmul-size', '256', '--json',
                    str(out))
    assert 'ours/baseline' in proc.stdout, proc.stdout
    result = json.loads(out.read_text())
    base, ours, ratio = result['rows']
    assert (base['impl'], ours['impl']) == ('baseline', 'ours')
    assert base['flops_per_image'] == 7_324_441_600  # SPEC: 7.324G
    rate = result['matmul_flop_rate']['float32']
    for row in (base, ours):
        for mode, work in (('train', 6), ('inference', 2)):
            ips = row[f'{mode}_images_per_s']
            assert row[f'{mode}_flop_rate'] == pytest.approx(
                work * 7_324_441_600 * ips)
            assert row[f'{mode}_fraction_of_matmul'] == pytest.approx(
                row[f'{mode}_flop_rate'] / rate)
            # model, AdamW state and activations: hundreds of MB, not 0
            assert row[f'{mode}_peak_mb'] > (300 if mode == 'train' else 10)
    for mode in ('train', 'inference'):
        assert ratio[f'{mode}_memory_ratio'] == pytest.approx(
            ours[f'{mode}_peak_mb'] / base[f'{mode}_peak_mb'])
        # one round: the speedup is the ratio of the two times
        assert ratio[f'{mode}_speedup'] == pytest.approx(
            ours[f'{mode}_images_per_s'] / base[f'{mode}_images_per_s'])
