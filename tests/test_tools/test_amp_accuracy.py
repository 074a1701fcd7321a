"""tools/analysis_tools/amp_accuracy.py: trains a config in float32 and with
--amp (bf16 on this CPU) through the real tools/train.py and tests both
through tools/test.py; its summary statistics against numpy's."""
import importlib
import json
import os.path as osp
import re
import sys

import numpy as np
import torch

from mmdynamixer.utils import load_checkpoint_file
from mmdx_testing import REPO, make_imagenet, run_tool, \
    write_tiny_imagenet_config

TOOL = 'tools/analysis_tools/amp_accuracy.py'
# the bf16 capability the check reads: so that --amp trains in bf16 (emulated
# where the CPU has no bf16 instructions) on every CPU
CPUINFO = 'processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n'


def load_tool():
    """The tool as a module (it imports its sibling dense_transfer)."""
    sys.path.insert(0, osp.join(REPO, 'tools', 'analysis_tools'))
    try:
        return importlib.import_module('amp_accuracy')
    finally:
        sys.path.pop(0)


def test_summary_is_the_mean_sd_and_paired_standard_error():
    tool = load_tool()
    results = {0: {'float32': 96.1, 'amp': 95.3, 'amp-test': 96.1},
               1: {'float32': 98.0, 'amp': 96.4, 'amp-test': 97.8},
               2: {'float32': 96.7, 'amp': 97.5, 'amp-test': 96.7}}
    rows = {line.split(' | ')[0].lstrip('| '): line.split(' | ')[1:]
            for line in tool.summary(results).splitlines()[2:]}
    assert list(rows) == list(tool.ROWS.values())
    for key, name in tool.ROWS.items():
        values = np.array([results[s][key] for s in results])
        cells = rows[name]
        assert cells[:3] == [f'{v:.2f}' for v in values]
        assert cells[3] == f'{values.mean():.2f} ({values.std(ddof=1):.2f})'
        if key == 'float32':
            assert cells[4] == '- |'
        else:
            diffs = values - np.array([results[s]['float32']
                                       for s in results])
            se = diffs.std(ddof=1) / np.sqrt(len(diffs))
            assert cells[4] == f'{diffs.mean():+.2f} ({se:.2f}) |'


def test_trains_and_tests_in_both_precisions(tmp_path):
    data = make_imagenet(str(tmp_path / 'imagenet'), num_classes=4,
                         train_per_class=4, val_per_class=2)
    config = write_tiny_imagenet_config(tmp_path / 'cfg.py', data,
                                        max_epochs=2)
    cpuinfo = tmp_path / 'cpuinfo'
    cpuinfo.write_text(CPUINFO)
    work = tmp_path / 'study'
    out = run_tool(TOOL, config, '--seeds', '3', '--work-dir', str(work),
                   env=dict(MMDYNAMIXER_CPUINFO=str(cpuinfo))).stdout
    with open(work / 'amp_accuracy.json') as f:
        results = json.load(f)['results']['3']
    assert set(results) == {'float32', 'amp', 'amp-test'}
    seed = work / 'seed3'
    logs = {name: (seed / name / f'{kind}.log').read_text()
            for name, kind in (('float32', 'train'), ('amp', 'train'),
                               ('amp-test', 'test'))}
    # the seed reached the runs, and --amp meant bf16 on this CPU
    for name in ('float32', 'amp'):
        assert re.search(r'randomness = dict\(.*seed=3\)', logs[name])
    assert 'CPUBf16OptimWrapper' in logs['amp']
    assert 'CPUBf16OptimWrapper' not in logs['float32']
    assert 'No GPU: --amp tests in bf16 autocast on the CPU' in \
        logs['amp-test']
    # each row is what tools/test.py printed for that checkpoint
    for name in results:
        log = (seed / name / 'test.log').read_text()
        assert f'"accuracy/top1": {results[name]}' in log
    # bf16 training took another path than float32 from the same start
    last = {p: (seed / p / 'last_checkpoint').read_text().strip()
            for p in ('float32', 'amp')}
    weights = {p: load_checkpoint_file(last[p])['state_dict'] for p in last}
    assert any(not torch.equal(weights['float32'][k], weights['amp'][k])
               for k in weights['float32'] if k.startswith('backbone.'))
    # the table prints what the json holds
    table = out[out.index('| row |'):]
    assert f"| {results['float32']:.2f} |" in table
    assert 'bf16 autocast on the CPU (the CPU has avx512_bf16)' in out
