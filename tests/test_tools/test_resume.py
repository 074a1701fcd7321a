"""A run killed in the middle, even in the middle of saving a checkpoint,
continues with --resume and ends exactly as a run that was never stopped:
weights, optimizer, schedulers and logs."""
import glob
import json
import os
import os.path as osp
import shutil

import pytest
import torch

from mmdynamixer.utils import load_checkpoint_file
from mmdx_testing import (REPO, make_imagenet, run_tool, snapshot,
                          stock_tool, write_tiny_imagenet_config)

TESTS = osp.join(REPO, 'tests')
CRASH = '''
custom_imports = dict(imports=['mmdynamixer', 'mmdx_crash_hook'],
                      allow_failed_imports=False)
custom_hooks = [dict(type='EpochSeedHook'), dict(type='ModelCheckHook'),
                dict(type='StrictLoadHook'), dict(type='NonFiniteLossHook'),
                dict(type='DynaMixerDiagnosticsHook', interval=1),
                dict(type='KillAtIterHook', iteration=9)]
'''
VOLATILE = {'time', 'data_time', 'eta', 'memory'}


def scalars(work_dir):
    """Logged scalars by (kind, step); a later log of a step replaces an
    earlier one (a resumed run logs again what a killed one had logged)."""
    merged = {}
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                          'scalars.json'))):
        for line in open(path):
            entry = json.loads(line)
            kind = 'val' if any(k.startswith('accuracy') for k in entry) \
                else 'train'
            merged[(kind, entry['step'])] = {
                k: v for k, v in entry.items() if k not in VOLATILE}
    return merged


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('resume')
    data = make_imagenet(str(tmp / 'imagenet'), num_classes=4,
                         train_per_class=4, val_per_class=1)
    plain = write_tiny_imagenet_config(tmp / 'plain.py', data,
                                       random_aug=True, max_epochs=4)
    crash = write_tiny_imagenet_config(tmp / 'crash.py', data,
                                       random_aug=True, max_epochs=4,
                                       extra=CRASH)
    env = dict(PYTHONPATH=TESTS + os.pathsep + os.environ.get('PYTHONPATH',
                                                              ''))
    full, resumed = str(tmp / 'full'), str(tmp / 'resumed')
    run_tool('tools/train.py', plain, '--work-dir', full)
    killed = run_tool('tools/train.py', crash, '--work-dir', resumed,
                      env=env, check=False)
    assert killed.returncode == -9  # SIGKILL, 4 iterations per epoch
    assert osp.exists(osp.join(resumed, 'epoch_2.pth'))
    assert not osp.exists(osp.join(resumed, 'epoch_3.pth'))
    return dict(tmp=tmp, plain=plain, full=full, resumed=resumed, data=data,
                env=env)


def test_corrupted_checkpoint_is_a_clear_error_and_changes_nothing(runs):
    work = str(runs['tmp'] / 'corrupted')
    shutil.copytree(runs['resumed'], work)
    ckpt = osp.join(work, 'epoch_2.pth')
    with open(osp.join(work, 'last_checkpoint'), 'w') as f:
        f.write(ckpt)
    with open(ckpt, 'r+b') as f:
        f.truncate(os.path.getsize(ckpt) // 2)
    before = snapshot(work)
    for resume in (['--resume'], ['--resume', ckpt]):
        proc = run_tool('tools/train.py', runs['plain'], '--work-dir', work,
                        *resume, check=False)
        assert proc.returncode != 0
        assert 'corrupted or truncated' in proc.stderr
        assert ckpt in proc.stderr
        assert snapshot(work) == before


def test_resumed_run_equals_uninterrupted_run(runs):
    run_tool('tools/train.py', runs['plain'], '--work-dir', runs['resumed'],
             '--resume')
    a = load_checkpoint_file(osp.join(runs['full'], 'epoch_4.pth'))
    b = load_checkpoint_file(osp.join(runs['resumed'], 'epoch_4.pth'))
    assert a['meta']['epoch'] == b['meta']['epoch'] == 4
    assert a['meta']['iter'] == b['meta']['iter'] == 16
    for key, value in a['state_dict'].items():
        assert torch.equal(value, b['state_dict'][key]), key
    opt_a, opt_b = a['optimizer']['state'], b['optimizer']['state']
    assert opt_a.keys() == opt_b.keys()
    for idx in opt_a:
        for name, value in opt_a[idx].items():
            assert torch.equal(torch.as_tensor(value),
                               torch.as_tensor(opt_b[idx][name])), name
    assert a['param_schedulers'] == b['param_schedulers']
    hub_a = a['message_hub']['log_scalars']
    hub_b = b['message_hub']['log_scalars']
    for key in ('train/loss', 'train/lr',
                'train/dynamixer/stage1_entropy_h'):
        assert hub_a[key].data[0].tolist() == hub_b[key].data[0].tolist()
    logs_a, logs_b = scalars(runs['full']), scalars(runs['resumed'])
    assert len(logs_a) == 16 + 4 and logs_a == logs_b


def assert_same_training_state(path_a, path_b):
    a, b = load_checkpoint_file(path_a), load_checkpoint_file(path_b)
    assert a['meta']['iter'] == b['meta']['iter']
    for key, value in a['state_dict'].items():
        assert torch.equal(value, b['state_dict'][key]), key
    for idx, state in a['optimizer']['state'].items():
        for name, value in state.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(
                b['optimizer']['state'][idx][name])), name


# one kept checkpoint and a best one: what MMEngine alone would lose
KEEP_ONE = """
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(
    interval=1, max_keep_ckpts=1, save_best='accuracy/top1', rule='greater'))
"""


def incomplete(work):
    return glob.glob(osp.join(work, '.*.incomplete'))


@pytest.mark.parametrize('name,point,nth,tool', [
    ('epoch_3.pth', 'write', 1, 'ours'),   # torn temporary file
    # the same, killed and resumed with MMPretrain's own tools/train.py: the
    # config's AtomicCheckpointHook does it, and the run ends as ours does
    ('epoch_3.pth', 'write', 1, 'mmpretrain'),
    ('epoch_3.pth', 'rename', 1, 'ours'),  # complete, last_checkpoint stale
    ('best_', 'write', 2, 'ours'),         # replacing the first best
])
def test_kill_during_a_save_then_resume(runs, name, point, nth, tool):
    train = 'tools/train.py' if tool == 'ours' else stock_tool('mmpretrain')
    tmp = runs['tmp']
    work = str(tmp / f'killed-{name}-{point}-{tool}')
    crash = write_tiny_imagenet_config(
        tmp / f'crash-{name}-{point}-{tool}.py', runs['data'],
        random_aug=True,
        max_epochs=4, extra=KEEP_ONE + f"""
custom_imports = dict(imports=['mmdynamixer', 'mmdx_crash_hook'],
                      allow_failed_imports=False)
custom_hooks = [dict(type='EpochSeedHook'), dict(type='ModelCheckHook'),
                dict(type='StrictLoadHook'), dict(type='NonFiniteLossHook'),
                dict(type='KillDuringSaveHook', name={name!r},
                     point={point!r}, nth={nth})]
""")
    killed = run_tool(train, crash, '--work-dir', work, env=runs['env'],
                      check=False)
    assert killed.returncode == -9, killed.stderr[-3000:]
    # the moment of the kill: a complete checkpoint to resume from, and
    # always a best checkpoint once one was saved
    last = open(osp.join(work, 'last_checkpoint')).read()
    assert osp.basename(last) == 'epoch_2.pth' if name == 'epoch_3.pth' \
        else osp.basename(last).startswith('epoch_')
    load_checkpoint_file(last)  # complete
    best = glob.glob(osp.join(work, 'best_*.pth'))
    assert len(best) == 1
    load_checkpoint_file(best[0])
    if point == 'write':
        assert len(incomplete(work)) == 1
        assert not osp.exists(osp.join(work, 'epoch_3.pth')) or \
            name != 'epoch_3.pth'
    plain = write_tiny_imagenet_config(
        tmp / f'keep-{name}-{point}-{tool}.py', runs['data'],
        random_aug=True, max_epochs=4, extra=KEEP_ONE)
    resumed = run_tool(train, plain, '--work-dir', work, '--resume')
    assert not incomplete(work)
    if point == 'write':
        assert 'the temporary file of a save that was interrupted' in \
            resumed.stdout + resumed.stderr
    assert sorted(osp.basename(p) for p in glob.glob(
        osp.join(work, 'epoch_*.pth'))) == ['epoch_4.pth']
    assert_same_training_state(osp.join(runs['full'], 'epoch_4.pth'),
                               osp.join(work, 'epoch_4.pth'))
