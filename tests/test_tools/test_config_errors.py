"""Configs that cannot work fail when the model is built, through the real
tools/train.py, naming the field and the valid values, before any training
step and without touching what the work dir held."""
import json
import os.path as osp
import sys
import textwrap

import pytest

from mmdx_testing import (REPO, make_imagenet, run_tool, snapshot,
                          write_tiny_imagenet_config)

# (--cfg-options, the exact message, the options of the fix it names); the
# tiny model has 2 stages with 8x8 and 4x4 token grids, 16 and 32 channels
CASES = [
    (['model.backbone.out_indices=[2]'],
     'out_indices 2 is out of range for 2 stages: valid are 0..1 (or '
     '-2..-1 from the end).', ['model.backbone.out_indices=[1]']),
    (['model.backbone.frozen_stages=3'],
     'frozen_stages=3 is out of range: valid are 0 (nothing frozen) .. 2 '
     '(all 2 stages).', ['model.backbone.frozen_stages=2']),
    (['model.backbone.sliding_window=True',
      'model.backbone.window_stride=[9,4]'],
     'window_stride needs one int per stage in [1, window length] for '
     'windows [(8, 8), (4, 4)], got [9, 4].',
     ['model.backbone.sliding_window=True',
      'model.backbone.window_stride=[8,4]']),
    (['model.backbone.window_stride=0.5'],
     'window_stride=0.5 is set, but it applies only to the sliding-window '
     'mode: add sliding_window=True, or remove window_stride.',
     ['model.backbone.window_stride=0.5',
      'model.backbone.sliding_window=True']),
    (['model.backbone.img_size=30'],
     'img_size 30x30 is not a multiple of patch_size=4.',
     ['model.backbone.img_size=32']),
    (['model.head.in_channels=16'],
     "model.head.in_channels=16, but the DynaMixer backbone's output that "
     'the head reads (stage 1) has 32 channels: set model.head.in_channels='
     '32.', ['model.head.in_channels=32']),
    (['model.head.num_classes=0'], 'num_classes=0 must be an int >= 1.',
     ['model.head.num_classes=1']),
    (['model.backbone.arch.heads=[2,2]'],
     "Custom DynaMixer arch has unknown keys ['heads'] (valid: "
     "['embed_dims', 'depths', 'num_segments', 'reduced_dims']).", []),
    (['model.backbone.arch=xs', 'model.head.in_channels=384'],
     "Unknown DynaMixer arch 'xs'; choose one of ['l', 'large', 'm', "
     "'medium', 's', 'small'] or pass a dict with keys ['embed_dims', "
     "'depths', 'num_segments', 'reduced_dims'].",
     ['model.backbone.arch=s', 'model.backbone.img_size=224',
      'model.backbone.patch_size=7', 'model.head.in_channels=384']),
    (['model.backbone.share_hw=True', 'model.backbone.branches=[h,c]'],
     "share_hw=True shares one op between rows and columns, but "
     "branches=('h', 'c') lacks 'h' or 'w': set share_hw=False, or keep "
     "both 'h' and 'w'.",
     ['model.backbone.share_hw=False', 'model.backbone.branches=[h,c]']),
    (['model.backbone.branches=[w]'],
     "reweight=True weighs the branches against each other, but "
     "branches=('w',) has one: set reweight=False.",
     ['model.backbone.branches=[w]', 'model.backbone.reweight=False']),
    (['model.backbone.drop_path_rate=1.5'],
     'drop_path_rate=1.5 must be in [0, 1).',
     ['model.backbone.drop_path_rate=0.5']),
]

# every case, and then its fix, through tools/train.py up to the built
# model and the checks that the runner's hooks make before a run (training
# itself is tested elsewhere), in one process
DRIVER = '''
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location('train', 'tools/train.py')
train = importlib.util.module_from_spec(spec)
spec.loader.exec_module(train)
config, work, cases = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
results = []
for options in cases:
    try:
        runner = train.build_runner([config, '--work-dir', work,
                                     '--cfg-options', *options])
        runner.call_hook('before_run')  # ModelCheckHook
        results.append('no error')
    except Exception as err:  # what the user would see last
        results.append(f'{type(err).__name__}: {err}')
print('RESULTS ' + json.dumps(results))
'''


def test_impossible_configs_fail_at_build_naming_the_fix(tmp_path):
    data = make_imagenet(str(tmp_path / 'imagenet'))
    config = write_tiny_imagenet_config(tmp_path / 'tiny.py', data)
    work = tmp_path / 'work'
    work.mkdir()
    (work / 'notes.txt').write_text('kept')
    before = snapshot(str(work))
    runs = [options for options, _, _ in CASES] + \
        [fix for _, _, fix in CASES if fix]
    proc = run_tool('-c', DRIVER, config, str(work), json.dumps(runs))
    results = json.loads(proc.stdout.split('RESULTS ')[-1])
    for (options, message, _), result in zip(CASES, results):
        assert result.endswith(message), (options, result)
        assert result.startswith(('ValueError', 'TypeError')), result
    fixes = results[len(CASES):]
    assert fixes == ['no error'] * len(fixes), fixes
    now = snapshot(str(work))
    assert {p: now[p] for p in before} == before
    assert not [p for p in now if p.endswith('.pth')]
