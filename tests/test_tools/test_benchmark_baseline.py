"""The baseline (the paper's model transcribed in standard PyTorch,
mmdynamixer.testing) computes what our backbone computes in training, with
its default selective recomputation and with stochastic depth, for S/M/L,
every ablation switch and the sliding-window mode.

Both run in float64, so that the check is tight and holds on any CPU: the two
implementations sum in different orders (fused branches, reordered generator
weights), which float64 rounds at ~1e-16 relative per operation. Through ~20
layers of sums over up to ~10^4 terms that stays below ~1e-11 of each
tensor's scale; the bound, 1e-9 of the scale, leaves two orders of margin and
is still ~10^4 times tighter than float32 could be checked on one CPU, let
alone across kernel paths (AVX2 and AVX-512 sum float32 differently)."""
import json

import pytest
import torch

from mmdynamixer.models import DynaMixer
from mmdynamixer.testing import BaselineDynaMixer
from mmdynamixer.utils import torch_features
from mmdx_testing import ABLATIONS, graph_nodes, run_tool

TOLERANCE = 1e-9  # of each tensor's largest magnitude (see above)


def assert_close_to_scale(actual, expected, name):
    scale = expected.abs().max()
    if scale == 0:  # a branch that drop path dropped for the whole batch
        assert not actual.any(), name
        return
    error = (actual - expected).abs().max()
    assert error <= TOLERANCE * scale, f'{name}: {error:.3g} > ' \
        f'{TOLERANCE:g} x {scale:.3g}'


def assert_same_numbers(kwargs, x):
    kwargs = dict(dict(drop_path_rate=0.3), **kwargs)
    torch.manual_seed(0)
    ours = DynaMixer(**kwargs).double()
    for p in ours.parameters():  # random weights, far from the init
        torch.nn.init.normal_(p, std=0.02)
    base = BaselineDynaMixer(**kwargs).double()
    base.load_state_dict(ours.state_dict(), strict=True)
    x = x.double()
    torch.manual_seed(1)  # both draw the same drop-path masks
    out = ours(x)[-1]
    torch.manual_seed(1)
    ref = base(x)[0]
    # the lean path ran (selective recomputation is the default), where
    # torch lets it (>= 2.3)
    nodes = graph_nodes(out)
    if not torch_features.SELECTIVE_RECOMPUTE:
        assert not any(n.startswith('Lean') for n in nodes), nodes
    else:
        assert 'LeanNormMLPBackward' in nodes, nodes
        if kwargs.get('reweight', True) and len(kwargs.get('branches',
                                                           'hwc')) > 1:
            assert 'LeanBranchSumBackward' in nodes, nodes
    assert_close_to_scale(out, ref, 'output')
    grad = torch.randn_like(out)
    out.backward(grad)
    ref.backward(grad)
    for (name, p), q in zip(ours.named_parameters(), base.parameters()):
        assert_close_to_scale(p.grad, q.grad, name)


@pytest.mark.parametrize('arch', ['s', 'm', 'l'])
def test_baseline_equals_backbone(arch):
    """With stochastic depth (training mode, rate 0.5): the two draw the
    same masks, so they drop the same residual branches."""
    batch = 4 if arch == 's' else 2
    assert_same_numbers(dict(arch=arch, drop_path_rate=0.5),
                        torch.randn(batch, 3, 224, 224))


@pytest.mark.parametrize('switches', ABLATIONS,
                         ids=lambda s: ','.join(map(str, s.values())) or
                         'full')
def test_baseline_equals_backbone_for_ablations(switches):
    # S's layers at 112 x 112 (16 x 16, then 8 x 8 tokens): every switch's
    # code at a quarter of the tokens; the published size is tested above
    assert_same_numbers(dict(switches, img_size=112),
                        torch.randn(2, 3, 112, 112))


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
    """The tool runs and what it reports is physically consistent: the FLOP
    count is the published one, no rate exceeds what the machine's own large
    matmul reaches, a training step costs more time and memory than
    inference, the saved activations order as the modes promise (with_cp
    keeps only layer inputs, selective recomputation less than the plain
    layer), and each ratio row is the ratio of its rows. (torch.compile, the
    fifth implementation, is left out here for the minutes it compiles; the
    compiled model is tested in test_dynamixer_deploy.py.)"""
    out = tmp_path / 'speed.json'
    proc = run_tool('tools/analysis_tools/benchmark.py', 'speed', '--archs',
                    's', '--batch', '1', '--repeats', '1', '--warmup', '0',
                    '--threads', '2', '--matmul-size', '1024', '--impls',
                    'baseline', 'plain', 'ours', 'with_cp', '--json',
                    str(out))
    assert 'ours/plain' in proc.stdout, proc.stdout
    result = json.loads(out.read_text())
    rows = {r['impl']: r for r in result['rows']}
    assert list(rows) == ['baseline', 'plain', 'ours', 'with_cp',
                          'plain/baseline', 'ours/baseline',
                          'with_cp/baseline', 'ours/plain']
    assert rows['baseline']['flops_per_image'] == 7_324_441_600  # 7.324G
    for impl in ('baseline', 'plain', 'ours', 'with_cp'):
        row = rows[impl]
        for mode in ('train', 'inference'):
            # above the large matmul's rate, the timing or the FLOP count
            # would be wrong (1.5: the matmul is timed once, at batch 1)
            assert 0.01 < row[f'{mode}_fraction_of_matmul'] < 1.5, row
        # a training step is forward + backward + AdamW: ~3x the work
        assert row['train_images_per_s'] < row['inference_images_per_s']
        # it keeps gradients and AdamW state: hundreds of MB
        assert row['train_peak_mb'] > max(300, 1.5 *
                                          row['inference_peak_mb']), row
    saved = {impl: rows[impl]['saved_mib_per_image']
             for impl in ('baseline', 'plain', 'ours', 'with_cp')}
    if torch_features.SELECTIVE_RECOMPUTE:
        assert saved['with_cp'] < saved['ours'] < saved['plain'], saved
    else:  # torch < 2.3: selective recomputation is off
        assert saved['with_cp'] < saved['ours'] == saved['plain'], saved
    for impl in ('plain', 'ours', 'with_cp'):
        assert rows[f'{impl}/baseline']['saved_ratio'] == \
            saved[impl] / saved['baseline']
