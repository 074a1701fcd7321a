"""Preemption: a signal makes the run save a checkpoint of the iteration it
stopped after and exit with the preempted status; `--resume` continues the
same epoch from the next unseen batch, with the same random numbers, and
ends with the weights of the uninterrupted run, bit for bit."""
import os
import os.path as osp
import signal
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmdynamixer.utils import load_checkpoint_file
from mmdx_testing import (REPO, free_port, make_imagenet,
                          write_tiny_imagenet_config)

TESTS = osp.join(REPO, 'tests')

PREEMPTED = 128 + 15  # what a shell reports for a process ended by SIGTERM
ITERS_PER_EPOCH = 4  # 16 training images, batch 4


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return make_imagenet(str(tmp_path_factory.mktemp('imagenet')),
                         num_classes=4, train_per_class=4, val_per_class=1)


class SignalAt(Hook):
    """Sends ``sig`` to this process after training iteration ``at``
    (1-based), as a scheduler would, between two iterations."""
    priority = 'HIGHEST'

    def __init__(self, at, sig=signal.SIGTERM, times=1):
        self.at, self.sig, self.times = at, sig, times

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if runner.iter + 1 == self.at:
            for _ in range(self.times):
                os.kill(os.getpid(), self.sig)


def runner_of(data, tmp_path, name, max_epochs=3, **cfg_changes):
    config = write_tiny_imagenet_config(tmp_path / f'{name}.py', data,
                                        random_aug=True,
                                        max_epochs=max_epochs)
    cfg = Config.fromfile(config)
    cfg.work_dir = str(tmp_path / name)
    cfg.merge_from_dict(cfg_changes)
    return Runner.from_cfg(cfg)


def weights(runner):
    return {k: v.clone() for k, v in runner.model.state_dict().items()}


def test_the_configs_declare_the_hook_and_the_sampler(data, tmp_path):
    runner = runner_of(data, tmp_path, 'declared')
    assert any(type(h).__name__ == 'PreemptionHook' for h in runner.hooks)
    assert runner.cfg.train_dataloader.sampler.type == 'ResumableSampler'


@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGUSR1])
def test_signal_mid_epoch_then_resume_equals_uninterrupted(data, tmp_path,
                                                           sig):
    reference = runner_of(data, tmp_path, 'reference')
    reference.train()
    expected = weights(reference)

    stop = ITERS_PER_EPOCH + 2  # the second batch of the second epoch
    preempted = runner_of(data, tmp_path, 'run')
    preempted.register_hook(SignalAt(stop, sig))
    with pytest.raises(SystemExit) as exit_:
        preempted.train()
    assert exit_.value.code == PREEMPTED
    work = tmp_path / 'run'
    saved = str(work / f'iter_{stop}.pth')
    assert open(work / 'last_checkpoint').read() == saved
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored
    checkpoint = torch.load(saved, weights_only=False)
    assert checkpoint['meta']['iter'] == stop
    assert checkpoint['meta']['epoch'] == 1  # inside the second epoch
    assert checkpoint['preemption']['batches_done'] == 2

    resumed = runner_of(data, tmp_path, 'run', resume=True)
    resumed.train()
    assert resumed.iter == 3 * ITERS_PER_EPOCH
    for key, value in weights(resumed).items():
        assert torch.equal(value, expected[key]), key


def test_without_the_resumable_sampler_the_epoch_starts_again(data, tmp_path,
                                                              caplog):
    stop = ITERS_PER_EPOCH + 2
    preempted = runner_of(data, tmp_path, 'run')
    preempted.register_hook(SignalAt(stop))
    with pytest.raises(SystemExit):
        preempted.train()
    resumed = runner_of(
        data, tmp_path, 'run', resume=True,
        train_dataloader=dict(sampler=dict(type='DefaultSampler')))
    resumed.train()
    log = open(resumed.logger.log_file).read()
    assert 'DefaultSampler cannot start an epoch in its middle' in log


def test_a_second_signal_during_the_save_does_not_tear_it(data, tmp_path):
    stop = ITERS_PER_EPOCH + 1
    preempted = runner_of(data, tmp_path, 'run')
    preempted.register_hook(SignalAt(stop, times=3))
    with pytest.raises(SystemExit):
        preempted.train()
    saved = tmp_path / 'run' / f'iter_{stop}.pth'
    torch.load(saved, weights_only=False)  # complete
    assert not [f for f in os.listdir(tmp_path / 'run')
                if f.endswith('.incomplete')]


class SignalBeforeTraining(Hook):
    def before_train(self, runner):
        os.kill(os.getpid(), signal.SIGTERM)


def test_a_signal_before_the_first_iteration_saves_nothing(data, tmp_path):
    preempted = runner_of(data, tmp_path, 'run')
    preempted.register_hook(SignalBeforeTraining())
    with pytest.raises(SystemExit) as exit_:
        preempted.train()
    assert exit_.value.code == PREEMPTED
    assert not [f for f in os.listdir(tmp_path / 'run')
                if f.endswith('.pth')]
    assert not osp.exists(tmp_path / 'run' / 'last_checkpoint')


# --------------------------------------------- through the real launchers

def launch(*args, env=None, cwd=REPO):
    """Start a launcher in a process group of its own (as a scheduler's job
    step), so that a signal to the group reaches the launcher and every
    rank and nothing else."""
    full_env = dict(os.environ, PYTHON=sys.executable,
                    PYTHONPATH=os.pathsep.join([REPO, TESTS]))
    full_env.update(env or {})
    return subprocess.Popen(['bash', *args], cwd=cwd, env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def finished(proc, timeout=600):
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def final_weights(work_dir):
    path = open(osp.join(work_dir, 'last_checkpoint')).read().strip()
    return load_checkpoint_file(path)['state_dict']


@pytest.fixture(scope='module')
def two_process_reference(data, tmp_path_factory):
    """The uninterrupted 2-process run (2 x batch 2: 4 iterations an
    epoch, 3 epochs) and its config writer."""
    tmp = tmp_path_factory.mktemp('dist')

    def config(name, extra=''):
        return write_tiny_imagenet_config(
            tmp / f'{name}.py', data, random_aug=True, batch_size=2,
            max_epochs=3, extra=extra)

    work = tmp / 'reference'
    code, out = finished(launch('tools/dist_train.sh', config('reference'),
                                '2', '--work-dir', str(work),
                                env=dict(PORT=str(free_port()))))
    assert code == 0, out[-4000:]
    return tmp, config, final_weights(work)


def test_sigterm_to_every_process_then_resume_two_processes(
        two_process_reference):
    tmp, config, expected = two_process_reference
    stop = ITERS_PER_EPOCH + 2  # inside the second epoch
    signalled = config('signalled', extra=(
        "custom_imports = dict(imports=['mmdynamixer', 'mmdx_signal_hook', "
        "'mmdx_exit_threads'], allow_failed_imports=False)\n"
        f"custom_hooks.append(dict(type='SignalProcessGroupAt', at={stop}))"))
    work = tmp / 'run'
    code, out = finished(launch('tools/dist_train.sh', signalled, '2',
                                '--work-dir', str(work),
                                env=dict(PORT=str(free_port()))))
    assert code != 0, out[-4000:]
    assert 'Preempted by SIGTERM at iteration' in out, out[-4000:]
    # the stopping ranks close the process group, as a finished run does
    # (tests/mmdx_exit_threads.py; test_distributed.py)
    assert out.count('native threads at exit: []') == 2, out[-4000:]
    saved = str(work / f'iter_{stop}.pth')
    assert open(work / 'last_checkpoint').read() == saved
    state = load_checkpoint_file(saved)
    assert state['meta']['epoch'] == 1 and state['meta']['iter'] == stop
    assert len(state['preemption']['rng']) == 2  # both ranks' generators

    code, out = finished(launch('tools/dist_train.sh', config('reference'),
                                '2', '--work-dir', str(work),
                                env=dict(PORT=str(free_port()), RESUME='1')))
    assert code == 0, out[-4000:]
    assert 'Resuming epoch 2 after its first 2 batches' in out, out[-4000:]
    resumed = final_weights(work)
    for key, value in expected.items():
        assert torch.equal(value, resumed[key]), key

    # the same checkpoint with another number of processes is refused
    code, out = finished(launch('tools/dist_train.sh', config('reference'),
                                '1', '--work-dir', str(tmp / 'other'),
                                '--resume', saved,
                                env=dict(PORT=str(free_port()))))
    assert code != 0
    assert ('taken inside epoch 2 by 2 processes, and this run has 1'
            in out), out[-4000:]


def test_two_nodes_equal_one_node_with_two_processes(two_process_reference):
    tmp, config, expected = two_process_reference
    port = str(free_port())
    nodes = [launch('tools/dist_train.sh', config('reference'), '1',
                    '--work-dir', str(tmp / 'nodes'),
                    # torchrun gives each of 2 processes on a node one
                    # thread, and a single process all; the same threads as
                    # the reference, so that float sums add up in the same
                    # order
                    env=dict(NNODES='2', NODE_RANK=str(rank), PORT=port,
                             MASTER_ADDR='127.0.0.1', OMP_NUM_THREADS='1'))
             for rank in (0, 1)]
    for node in nodes:
        code, out = finished(node)
        assert code == 0, out[-4000:]
    weights_ = final_weights(tmp / 'nodes')
    for key, value in expected.items():
        assert torch.equal(value, weights_[key]), key


# ----------------------------------------------------------------- parts

def test_the_resumable_sampler_continues_the_same_permutation():
    from mmengine.dataset import DefaultSampler

    from mmdynamixer.datasets import ResumableSampler
    dataset = list(range(23))
    plain = DefaultSampler(dataset, shuffle=True, seed=3)
    ours = ResumableSampler(dataset, shuffle=True, seed=3)
    for epoch in (0, 1):
        plain.set_epoch(epoch)
        ours.set_epoch(epoch)
        assert list(ours) == list(plain) and len(ours) == 23
    ours.resume_at(1, 10)
    assert list(ours) == list(plain)[10:] and len(ours) == 13
    ours.set_epoch(2)  # the next epoch is whole again
    plain.set_epoch(2)
    assert list(ours) == list(plain) and len(ours) == 23
    with pytest.raises(ValueError, match='after 24 samples: this rank has 23'):
        ours.resume_at(2, 24)


def test_unknown_signal_names_are_refused():
    from mmdynamixer.engine.hooks import PreemptionHook
    with pytest.raises(ValueError, match=r"unknown signals \['SIGNOPE'\]"):
        PreemptionHook(signals=('SIGTERM', 'SIGNOPE'))


def test_slurm_train_asks_for_the_signal_requeues_and_resumes(tmp_path):
    """With stand-ins for `srun` and `scontrol` (there is no Slurm here):
    srun is asked for SIGUSR1 before the time limit; tasks that exit
    preempted make the script requeue the job; a work dir with a
    last_checkpoint is resumed."""
    bin_ = tmp_path / 'bin'
    bin_.mkdir()
    (bin_ / 'srun').write_text(
        '#!/usr/bin/env bash\necho "srun $*"\nexit "${FAKE_STATUS:-0}"\n')
    (bin_ / 'scontrol').write_text(
        f'#!/usr/bin/env bash\necho "$*" >> {tmp_path}/scontrol.log\n')
    for tool in ('srun', 'scontrol'):
        (bin_ / tool).chmod(0o755)
    work = tmp_path / 'wd'
    env = dict(PATH=f'{bin_}:{os.environ["PATH"]}', SLURM_JOB_ID='4242')

    proc = subprocess.run(
        ['bash', 'tools/slurm_train.sh', 'gpu', 'job', 'cfg.py', str(work)],
        cwd=REPO, env=dict(os.environ, **env, FAKE_STATUS='143'),
        capture_output=True, text=True)
    assert proc.returncode == PREEMPTED
    assert '--signal=USR1@120' in proc.stdout
    assert '--resume' not in proc.stdout  # nothing to resume yet
    assert open(tmp_path / 'scontrol.log').read() == 'requeue 4242\n'

    work.mkdir()
    (work / 'last_checkpoint').write_text(str(work / 'iter_6.pth'))
    proc = subprocess.run(
        ['bash', 'tools/slurm_train.sh', 'gpu', 'job', 'cfg.py', str(work)],
        cwd=REPO, env=dict(os.environ, **env), capture_output=True,
        text=True)
    assert proc.returncode == 0
    assert f'--work-dir={work} --launcher=slurm --resume' in proc.stdout
    assert open(tmp_path / 'scontrol.log').read() == 'requeue 4242\n'
