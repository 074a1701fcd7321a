"""tools/dist_train.sh and tools/dist_test.sh: 2 processes on the CPU (gloo)
give the results of 1 process with the same global batch."""
import argparse
import glob
import json
import os
import os.path as osp

import pytest
import torch

from mmdynamixer.utils import load_checkpoint_file
from mmdx_testing import (REPO, free_port, make_imagenet, run_tool,
                          write_tiny_imagenet_config)

CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', '*', '*.py')))


def last_checkpoint(work_dir):
    return sorted(glob.glob(osp.join(work_dir, 'epoch_*.pth')))[-1]


# SGD, not the configs' AdamW: Adam divides each gradient by its own running
# scale, so it would hide gradients that are off by a constant factor (2
# processes summing instead of averaging), and it turns float32 rounding of
# near-zero gradients into differences of up to the learning rate. With SGD
# the results differ only by float32 rounding (~1e-7 relative per step).
SGD = "optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9))"


# tests/mmdx_exit_threads.py: each rank prints the threads it still runs
# that Python did not start, as the interpreter exits (read from /proc)
EXIT_THREADS = ("custom_imports = dict(imports=['mmdynamixer', "
                "'mmdx_exit_threads'], allow_failed_imports=False)")


def dist_env():
    """The launchers' environment: a free port, and tests/ on the path for
    ``mmdx_exit_threads`` (no empty entry, which would mean the cwd)."""
    path = [osp.join(REPO, 'tests'), os.environ.get('PYTHONPATH')]
    return dict(PORT=str(free_port()),
                PYTHONPATH=os.pathsep.join(p for p in path if p))


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """1 process with batch 4 and 2 with batch 2 each (the same global
    batch), trained with tools/train.py and tools/dist_train.sh, then tested
    with tools/test.py and tools/dist_test.sh."""
    tmp = tmp_path_factory.mktemp('dist')
    data = make_imagenet(str(tmp / 'imagenet'), num_classes=4,
                         train_per_class=4, val_per_class=2)
    one = write_tiny_imagenet_config(tmp / 'one.py', data, batch_size=4,
                                     extra=SGD)
    two = write_tiny_imagenet_config(tmp / 'two.py', data, batch_size=2,
                                     extra=SGD + '\n' + EXIT_THREADS)
    run_tool('tools/train.py', one, '--work-dir', str(tmp / 'w1'))
    train2 = run_tool('tools/dist_train.sh', two, '2', '--work-dir',
                      str(tmp / 'w2'), env=dist_env()).stdout
    ckpt1, ckpt2 = last_checkpoint(tmp / 'w1'), last_checkpoint(tmp / 'w2')
    test1 = run_tool('tools/test.py', one, ckpt1, '--work-dir',
                     str(tmp / 't1')).stdout
    test2 = run_tool('tools/dist_test.sh', two, ckpt2, '2', '--work-dir',
                     str(tmp / 't2'), env=dist_env()).stdout
    return argparse.Namespace(work1=tmp / 'w1', ckpt1=ckpt1, ckpt2=ckpt2,
                              train2=train2, test1=test1, test2=test2)


def test_two_processes_train_as_one_process(runs):
    # what our tools change for a CPU run, each change printed
    for change in ('No GPU: env_cfg.dist_cfg.backend nccl -> gloo',
                   'No GPU: model_wrapper_cfg.device_ids -> None',
                   'No GPU: opening the gloo process group here'):
        assert change in runs.train2, runs.train2[-3000:]

    assert osp.basename(runs.ckpt1) == osp.basename(runs.ckpt2) == \
        'epoch_2.pth'
    s0 = load_checkpoint_file(osp.join(runs.work1, 'epoch_1.pth'))[
        'state_dict']
    s1 = load_checkpoint_file(runs.ckpt1)['state_dict']
    s2 = load_checkpoint_file(runs.ckpt2)['state_dict']
    assert s1.keys() == s2.keys()
    moved = 0
    for k in s1:  # 8 SGD steps of float32 rounding: ~1e-6 of the weights
        torch.testing.assert_close(s1[k], s2[k], rtol=1e-5, atol=1e-6)
        moved += int(not torch.allclose(s1[k], s0[k], rtol=1e-3, atol=1e-4))
    assert moved > len(s1) // 2  # the second epoch really moved them


def test_two_processes_test_as_one_process(runs):
    m1 = json.loads(runs.test1.split('Test metrics: ')[-1].splitlines()[0])
    m2 = json.loads(runs.test2.split('Test metrics: ')[-1].splitlines()[0])
    assert m1 == m2


@pytest.mark.skipif(not osp.isdir('/proc/self/task'),
                    reason='reads the threads of each rank from /proc (Linux)')
def test_ranks_end_the_process_group_before_python_exits(runs):
    """Both tools close the process group, and so end gloo's threads,
    before Python's shutdown: left to it, their teardown can abort a rank
    that has finished ("terminate called without an active exception"),
    which torchrun reports as a failed job."""
    for out in (runs.train2, runs.test2):
        assert out.count('native threads at exit: []') == 2, \
            [line for line in out.splitlines() if 'at exit' in line]


def test_scripts_explain_their_usage():
    for script, n in (('tools/dist_train.sh', 2), ('tools/dist_test.sh', 3),
                      ('tools/slurm_train.sh', 4)):
        proc = run_tool(script, check=False)
        assert proc.returncode == 2 and 'usage:' in proc.stderr


def test_slurm_train_composes_srun(tmp_path):
    """With a stand-in `srun` that prints its arguments (there is no Slurm
    here), the script asks for the right allocation and launcher."""
    fake = tmp_path / 'bin' / 'srun'
    fake.parent.mkdir()
    fake.write_text('#!/usr/bin/env bash\necho "srun $*"\n')
    fake.chmod(0o755)
    out = run_tool('tools/slurm_train.sh', 'gpu', 'job', 'cfg.py', 'wd',
                   '--amp', env=dict(PATH=f'{fake.parent}:{os.environ["PATH"]}',
                                     GPUS='16')).stdout
    assert '-p gpu --job-name=job --gres=gpu:8 --ntasks=16' in out
    assert 'tools/train.py cfg.py --work-dir=wd --launcher=slurm --amp' in out


def flat(tree, prefix=''):
    """``{dotted.key: leaf}`` of a nested dict."""
    if not isinstance(tree, dict):
        return {prefix[:-1]: tree}
    out = {}
    for key, value in tree.items():
        out.update(flat(value, f'{prefix}{key}.'))
    return out


@pytest.mark.parametrize('config', CONFIGS, ids=osp.basename)
def test_our_tools_change_only_what_they_print(config, capsys):
    """What our tools do to a config, compared key by key with the config
    as written: the work dir and launcher (as MMPretrain's tools set them),
    and, for a distributed run without a GPU, exactly the changes they
    print; nothing else."""
    from mmengine.config import Config

    from mmdynamixer.utils.tool_utils import setup_cfg
    for launcher in ('none', 'pytorch'):
        cfg = Config.fromfile(config)
        before = flat(cfg.to_dict())
        args = argparse.Namespace(config=config, work_dir='w',
                                  launcher=launcher, cfg_options=None)
        capsys.readouterr()
        after = flat(setup_cfg(cfg, args).to_dict())
        printed = capsys.readouterr().out
        changed = {k for k in before.keys() | after.keys()
                   if before.get(k, '<unset>') != after.get(k, '<unset>')}
        expected = {'work_dir', 'launcher'}
        if launcher == 'pytorch' and not torch.cuda.is_available():
            if before.get('env_cfg.dist_cfg.backend') == 'nccl':
                expected.add('env_cfg.dist_cfg.backend')
                assert 'env_cfg.dist_cfg.backend nccl -> gloo' in printed
            wrapper = {k for k in changed
                       if k.startswith('model_wrapper_cfg.')}
            assert 'model_wrapper_cfg.device_ids' in wrapper
            assert 'model_wrapper_cfg.device_ids -> None' in printed
            expected |= wrapper
        else:
            assert printed == ''
        assert changed == expected, changed ^ expected
