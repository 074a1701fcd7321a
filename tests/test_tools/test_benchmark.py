"""tools/analysis_tools/benchmark.py and checkpointing_study.py, end to end
on tiny models (batch 2, one or two timed steps): what they write is what
they say they measured."""
import csv
import json
import math
import statistics

import pytest
import torch

from mmdx_testing import DIGITS_CONFIG, TINY_ARCH, run_tool

BENCHMARK = 'tools/analysis_tools/benchmark.py'
STUDY = 'tools/analysis_tools/checkpointing_study.py'
QUICK = ['--batch-size', '2', '--warmup', '1', '--repeats', '1',
         '--threads', '1', '--device', 'cpu']


def build_digits_classifier(options):
    """The digits config's model with ``options``, built as MMPretrain's
    tools build it, independently of the tool."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    import mmdynamixer  # noqa: F401
    cfg = Config.fromfile(DIGITS_CONFIG)
    cfg.merge_from_dict(options)
    init_default_scope('mmpretrain')
    return MODELS.build(cfg.model)


def positive(value):
    return float(value) > 0 and math.isfinite(float(value))


def test_benchmark_config_results(tmp_path):
    """One run with both benchmarks and the FLOPs into a CSV file, one
    training benchmark with ``with_cp`` into a JSON file."""
    plain, with_cp = tmp_path / 'plain.csv', tmp_path / 'with_cp.json'
    out = run_tool(BENCHMARK, DIGITS_CONFIG, *QUICK, '--flops',
                   '--results-file', str(plain), '--cfg-options',
                   'model.backbone.selective_cp=False').stdout
    assert f'torch {torch.__version__} on cpu' in out, out
    with open(plain, newline='') as f:
        [row] = list(csv.DictReader(f))
    run_tool(BENCHMARK, DIGITS_CONFIG, *QUICK, '--bench', 'train',
             '--results-file', str(with_cp), '--cfg-options',
             'model.backbone.with_cp=True')
    checkpointed = json.loads(with_cp.read_text())

    assert row['model'] == 'dynamixer-tiny_1xb64_digits'
    assert row['cfg_options'] == 'model.backbone.selective_cp=False'
    assert (row['batch_size'], row['img_size']) == ('2', '32x32')
    for key in ('infer_samples_per_sec', 'infer_step_time_ms',
                'train_samples_per_sec', 'train_step_time_ms',
                'train_activation_mib_per_image'):
        assert positive(row[key]), (key, row)
    for key in ('infer_peak_mib', 'train_peak_mib'):
        # NaN only where the kernel cannot reset the peak
        assert positive(row[key]) or math.isnan(float(row[key])), row
    assert math.isclose(float(row['train_samples_per_sec']) *
                        float(row['train_step_time_ms']), 2e3)

    model = build_digits_classifier(dict(model=dict(backbone=dict(
        selective_cp=False))))
    assert int(row['param_count']) == sum(p.numel()
                                          for p in model.parameters())
    from mmengine.analysis import get_model_complexity_info
    with torch.no_grad():
        flops = get_model_complexity_info(
            model.eval(), inputs=(torch.zeros(1, 3, 32, 32), ),
            show_table=False, show_arch=False)['flops']
    assert int(row['flops']) == flops

    # the training benchmark alone: no inference columns, no FLOPs
    assert 'infer_samples_per_sec' not in checkpointed
    assert 'flops' not in checkpointed
    assert checkpointed['param_count'] == int(row['param_count'])
    assert positive(checkpointed['train_samples_per_sec'])
    assert checkpointed['train_activation_mib_per_image'] < \
        float(row['train_activation_mib_per_image'])


def test_benchmark_arch_and_refusals(tmp_path):
    results = tmp_path / 's.json'
    run_tool(BENCHMARK, '--arch', 's', '--bench', 'inference',
             '--batch-size', '1', '--warmup', '0', '--repeats', '1',
             '--threads', '1', '--device', 'cpu', '--no-peak-memory',
             '--results-file', str(results))
    s = json.loads(results.read_text())
    # DynaMixer-S with its 1000-class head: the published count
    # (tests/test_tools/test_get_flops.py)
    assert s['param_count'] == 26_265_960
    assert (s['model'], s['img_size']) == ('dynamixer-s', '224x224')
    assert positive(s['infer_samples_per_sec'])
    assert 'train_samples_per_sec' not in s

    # a fixed-size model at another size: refused with the two ways out
    err = run_tool(BENCHMARK, '--arch', 's', '--img-size', '512',
                   check=False)
    assert err.returncode == 2
    assert 'model.backbone.sliding_window=True' in err.stderr
    assert 'model.backbone.img_size=512' in err.stderr


def test_checkpointing_study(tmp_path):
    results = tmp_path / 'study.json'
    out = run_tool(STUDY, '--archs', json.dumps(TINY_ARCH), '--img-size',
                   '32', '--patch-size', '4', '--batch', '2', '--warmup',
                   '1', '--repeats', '2', '--threads', '1', '--json',
                   str(results)).stdout
    assert f'torch {torch.__version__} on cpu' in out, out
    study = json.loads(results.read_text())
    assert study['archs'] == {'custom0': TINY_ARCH}
    rows = {r['mode']: r for r in study['rows']}
    modes = ['reference', 'plain', 'selective', 'with_cp']
    assert list(rows) == modes + [f'{m}/reference' for m in modes[1:]]
    for mode in modes:
        row = rows[mode]
        assert row['arch'] == 'custom0'
        assert positive(row['activation_mib_per_image']), row
        assert positive(row['train_samples_per_sec']), row
        assert len(row['train_round_times_s']) == 2
        assert row['train_step_time_ms'] == pytest.approx(
            1e3 * statistics.median(row['train_round_times_s']))
        # printed as measured
        assert f'{row["activation_mib_per_image"]:13.2f}' in out
    assert rows['with_cp']['activation_mib_per_image'] < \
        rows['plain']['activation_mib_per_image']

    ref = rows['reference']
    for mode in modes[1:]:
        ratio, row = rows[f'{mode}/reference'], rows[mode]
        assert ratio['activation_ratio'] == pytest.approx(
            row['activation_mib_per_image'] /
            ref['activation_mib_per_image'])
        assert ratio['train_throughput_ratio'] == pytest.approx(
            statistics.median(
                r / t for r, t in zip(ref['train_round_times_s'],
                                      row['train_round_times_s'])))
        assert f'{ratio["activation_ratio"]:12.3f}x' in out


def test_benchmark_amp_on_cpu_is_bf16_and_the_precision_study_ratios(
        tmp_path):
    """--amp on a CPU benchmarks bf16 autocast (fp16 is refused, naming
    bf16); the precision study prints each bf16 row's ratios to float32 of
    the same run, from its own round times."""
    result = tmp_path / 'bf16.json'
    out = run_tool(BENCHMARK, DIGITS_CONFIG, *QUICK, '--amp', '--bench',
                   'inference', '--no-peak-memory', '--results-file',
                   str(result)).stdout
    assert 'bf16: ' in out  # the CPU's bf16 capability, printed
    assert json.loads(result.read_text())['precision'] == 'bfloat16 autocast'
    proc = run_tool(BENCHMARK, DIGITS_CONFIG, *QUICK, '--amp', 'fp16',
                    check=False)
    assert proc.returncode != 0 and '--amp fp16 needs CUDA' in proc.stderr

    study = tmp_path / 'study.json'
    run_tool('tools/analysis_tools/precision_study.py', '--archs', 's',
             '--batch', '1', '--warmup', '0', '--repeats', '2',
             '--threads', '1', '--json', str(study))
    rows = json.loads(study.read_text())['rows']
    fp32, bf16, ratio = rows
    assert (fp32['mode'], bf16['mode'], ratio['mode']) == (
        'float32', 'bf16', 'bf16/float32')
    for bench in ('infer', 'train'):
        expected = statistics.median(
            a / b for a, b in zip(fp32[f'{bench}_round_times_s'],
                                  bf16[f'{bench}_round_times_s']))
        assert ratio[f'{bench}_throughput_ratio'] == pytest.approx(expected)
        assert ratio[f'{bench}_peak_ratio'] == pytest.approx(
            bf16[f'{bench}_peak_mib'] / fp32[f'{bench}_peak_mib'])
