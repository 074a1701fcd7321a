# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
import os.path as osp
import random
import signal
from typing import Optional, Sequence

import numpy as np
import torch
from mmengine.dist import (all_gather_object, all_reduce, barrier,
                           get_rank, get_world_size, is_main_process)
from mmengine.hooks import CheckpointHook, Hook
from mmengine.runner import EpochBasedTrainLoop
from mmpretrain.registry import HOOKS

from ...datasets.samplers import ResumableSampler
from ...utils.fileio import atomic_write

#: The exit status of a preempted run: 128 + SIGTERM, what a shell, Slurm
#: and torchrun report for a process ended by SIGTERM.
PREEMPTED = 128 + signal.SIGTERM


class Preempted(SystemExit):
    """Raised by :class:`PreemptionHook` on every rank at once, after the
    save: the run stops with status ``code``, and a tool may still close
    its process group (all ranks are stopping, none is left waiting)."""


class PreemptedResumeError(RuntimeError):
    """A checkpoint taken inside an epoch cannot continue in this run."""


def rng_states() -> dict:
    states = dict(python=random.getstate(), numpy=np.random.get_state(),
                  torch=torch.get_rng_state())
    if torch.cuda.is_available():
        states['cuda'] = torch.cuda.get_rng_state_all()
    return states


@HOOKS.register_module()
class PreemptionHook(Hook):
    """Save a checkpoint and stop when the cluster preempts the run; resume
    it exactly where it stopped.

    Slurm (and other schedulers) preempt a job by sending SIGTERM (or the
    signal of ``--signal``) to every task, waiting a grace period, then
    killing them. MMEngine handles no signal, so a preempted run loses
    everything since its last checkpoint. With this hook:

    - The signals (``signals``) only set a flag. At the next iteration
      boundary every rank learns of it through one small collective (a max
      over the ranks' flags, every iteration), so that all ranks stop after
      the same iteration and none is left waiting in a collective.
    - The run writes one checkpoint of that iteration,
      ``iter_<n>.pth`` beside the others, atomically (a temporary file,
      synced, renamed; then ``last_checkpoint``, as
      :class:`AtomicCheckpointHook` does), holding what an exact resume
      needs besides the model, optimizer and schedulers: the position in
      the epoch and every rank's random-generator states.
    - Every rank then exits with status :data:`PREEMPTED` (143, as for a
      process ended by SIGTERM), by raising :class:`Preempted` (a
      ``SystemExit``, on which tools/train.py closes its process group
      first). A second signal during the save only sets the flag again; a
      signal before the first iteration of the run saves nothing (there is
      nothing new to save) and exits the same way.

    ``--resume`` from that checkpoint continues the same epoch with the
    next unseen batch of the same permutation (with
    :class:`~mmdynamixer.datasets.ResumableSampler`) and the saved
    random-generator states, so the resumed run ends with the weights of
    the uninterrupted one, bit for bit on CPU (data loaders without
    workers; workers draw augmentations from generators of their own).
    Resuming such a checkpoint with another number of processes is refused,
    naming both numbers: the positions of the ranks' orders differ.

    Args:
        signals (Sequence[str]): Names of the signals that preempt.
            Defaults to ``('SIGTERM', 'SIGUSR1')``.
        exit_code (int): Exit status after the save. Defaults to
            :data:`PREEMPTED`.

    Examples:
        >>> custom_hooks = [dict(type='mmpretrain.PreemptionHook')]
        >>> train_dataloader = dict(
        ...     sampler=dict(type='mmpretrain.ResumableSampler', shuffle=True))
    """
    priority = 'LOW'  # before_train_epoch after EpochSeedHook's reseeding

    def __init__(self, signals: Sequence[str] = ('SIGTERM', 'SIGUSR1'),
                 exit_code: int = PREEMPTED):
        unknown = [s for s in signals if not hasattr(signal, str(s))]
        if unknown or not signals:
            raise ValueError(
                f'PreemptionHook: unknown signals {unknown or signals}; give '
                "names of the signal module, e.g. ('SIGTERM', 'SIGUSR1').")
        self.signals = [getattr(signal, s) for s in signals]
        self.exit_code = exit_code
        self.received: Optional[int] = None
        self._previous = {}
        self._iters_run = 0
        self._resume = None  # the position of a checkpoint taken mid-epoch
        self._restore_torch = None
        self._saving = None

    # ------------------------------------------------------------ signals
    def _on_signal(self, signum, frame) -> None:
        self.received = signum

    def before_run(self, runner) -> None:
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._on_signal)

    def after_run(self, runner) -> None:
        self._restore_handlers()

    def _restore_handlers(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _exit(self):
        self._restore_handlers()  # the runner's after_run will not come
        raise Preempted(self.exit_code)

    def _agreed(self) -> bool:
        """Whether any rank received a signal (the same answer on all)."""
        flag = torch.tensor([0 if self.received is None else 1])
        if get_world_size() > 1:
            all_reduce(flag, op='max')
        return bool(flag.item())

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        if self._restore_torch is not None:  # after the loader's own draws
            torch.set_rng_state(self._restore_torch['torch'])
            if 'cuda' in self._restore_torch and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(self._restore_torch['cuda'])
            self._restore_torch = None
        if self._iters_run == 0 and self._agreed():
            runner.logger.warning(
                f'Preempted by {self._signal_name()} before the first '
                'iteration of this run: nothing new to save; exiting with '
                f'status {self.exit_code}.')
            self._exit()

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        self._iters_run += 1
        if not self._agreed():
            return
        path = self._save(runner)
        runner.logger.warning(
            f'Preempted by {self._signal_name()} at iteration '
            f'{runner.iter + 1} (epoch {runner.epoch + 1}): saved '
            f'{path}; continue with `--resume`. Exiting with status '
            f'{self.exit_code}.')
        self._exit()

    def _signal_name(self) -> str:
        if self.received is None:
            return 'a signal to another rank'
        return signal.Signals(self.received).name

    # --------------------------------------------------------------- save
    def _save(self, runner) -> str:
        # batches of this epoch done; the loop's length of an epoch is that
        # of a whole one (a resumed epoch's loader is shorter)
        # (an iteration-based loop skips what it has trained by itself)
        by_epoch = isinstance(runner.train_loop, EpochBasedTrainLoop)
        per_epoch = runner.max_iters // runner.max_epochs if by_epoch else 0
        self._saving = dict(
            epoch=runner.epoch, iter=runner.iter + 1,
            batches_done=runner.iter + 1 - runner.epoch * per_epoch
            if by_epoch else None,
            batch_size=runner.train_dataloader.batch_size,
            world_size=get_world_size(),
            rng=all_gather_object(rng_states()))
        out_dir = runner.work_dir
        backend_args = None
        for hook in runner.hooks:
            if isinstance(hook, CheckpointHook):
                out_dir = str(getattr(hook, 'out_dir', None) or out_dir)
                backend_args = hook.backend_args
        filename = f'iter_{runner.iter + 1}.pth'
        try:
            runner.save_checkpoint(out_dir, filename, by_epoch=False,
                                   backend_args=backend_args)
        finally:
            self._saving = None
        path = osp.join(out_dir, filename)
        if is_main_process():
            atomic_write(osp.join(runner.work_dir, 'last_checkpoint'),
                         path.encode())
        barrier()  # every rank waits for the complete save before exiting
        return path

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self._saving is not None:
            checkpoint['preemption'] = self._saving

    # ------------------------------------------------------------- resume
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('preemption')
        if state is None:
            return
        if state['world_size'] != get_world_size():
            raise PreemptedResumeError(
                f'The checkpoint was taken inside epoch {state["epoch"] + 1} '
                f'by {state["world_size"]} processes, and this run has '
                f'{get_world_size()}: its position in the epoch is one of '
                f'{state["world_size"]} ranks\' orders. Resume it with '
                f'{state["world_size"]} processes, or resume from a '
                'checkpoint taken at the end of an epoch (`--resume '
                'epoch_<n>.pth`).')
        self._resume = state

    def before_train_epoch(self, runner) -> None:
        state, self._resume = self._resume, None
        if state is None or state['batches_done'] is None or \
                state['epoch'] != runner.epoch:
            return
        sampler = runner.train_dataloader.sampler
        if isinstance(sampler, ResumableSampler):
            sampler.resume_at(runner.epoch,
                              state['batches_done'] * state['batch_size'])
        else:
            runner.logger.warning(
                f'{type(sampler).__name__} cannot start an epoch in its '
                f'middle: epoch {runner.epoch + 1} is seen again from its '
                'beginning (set train_dataloader.sampler.type to '
                "'mmpretrain.ResumableSampler' to continue where the run "
                'stopped).')
            return
        states = state['rng'][get_rank()]
        random.setstate(states['python'])
        np.random.set_state(states['numpy'])
        self._restore_torch = states
        runner.logger.info(
            f'Resuming epoch {runner.epoch + 1} after its first '
            f'{state["batches_done"]} batches, with the random-generator '
            'states of the preempted run.')


__all__ = ['PREEMPTED', 'Preempted', 'PreemptedResumeError', 'PreemptionHook']
