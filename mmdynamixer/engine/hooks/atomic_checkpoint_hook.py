# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""Checkpoints that a crash cannot tear."""
import glob
import os
import os.path as osp

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook
from mmpretrain.registry import HOOKS

from ...utils.fileio import INCOMPLETE, atomic_write


class AtomicLocalBackend(LocalBackend):
    """MMEngine's local file backend, with :func:`atomic_write` for
    ``put`` (what ``Runner.save_checkpoint`` writes a checkpoint with)."""

    def put(self, obj: bytes, filepath) -> None:
        atomic_write(str(filepath), obj)


register_backend('atomic_local', AtomicLocalBackend, force=True)


class _DeferredRemovals:
    """A file backend that records removals instead of doing them."""

    def __init__(self, backend):
        self._backend = backend
        self.paths = []

    def remove(self, path):
        self.paths.append(path)

    rmtree = remove

    def __getattr__(self, name):
        return getattr(self._backend, name)

    def flush(self, keep=()):
        for path in self.paths:
            if path in keep:
                continue
            if self._backend.isfile(path):
                self._backend.remove(path)
            elif self._backend.isdir(path):
                self._backend.rmtree(path)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """MMEngine's :class:`~mmengine.hooks.CheckpointHook` whose saves a
    crash cannot tear; same arguments.

    MMEngine writes a checkpoint in place, rewrites ``last_checkpoint`` in
    place, removes the oldest kept checkpoint before writing the new one and
    the previous best before writing the new best, so a run killed during a
    save can be left with a torn checkpoint, an empty ``last_checkpoint``,
    or no checkpoint (or no best) at all. Here:

    - a checkpoint is written to a temporary file, synced and renamed into
      place (local paths; another storage backend is used as given);
    - ``last_checkpoint`` is replaced the same way, and only after the
      checkpoint it names is complete;
    - old checkpoints (``max_keep_ckpts``) and the previous best are removed
      only after the new one is complete, so one always exists.

    A run killed at any moment resumes with ``--resume`` from the last
    complete checkpoint; temporary files of an interrupted save are removed
    when training starts again.
    """

    def __init__(self, *args, out_dir=None, backend_args=None,
                 file_client_args=None, **kwargs):
        if backend_args is None and file_client_args is None and (
                out_dir is None or '://' not in str(out_dir)):
            backend_args = dict(backend='atomic_local')
        super().__init__(*args, out_dir=out_dir, backend_args=backend_args,
                         file_client_args=file_client_args, **kwargs)

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if not is_main_process():
            return
        for folder in {runner.work_dir, str(self.out_dir)}:
            for tmp in glob.glob(osp.join(folder, f'.*{INCOMPLETE}')):
                os.remove(tmp)
                runner.logger.warning(
                    f'Removed {tmp}, the temporary file of a save that was '
                    'interrupted; the checkpoints beside it are complete.')

    def _save_checkpoint_with_step(self, runner, step, meta):
        # MMEngine's, with its steps reordered: save, point
        # `last_checkpoint` at the save, and only then remove what is old.
        outdated = None
        if self.max_keep_ckpts > 0 and not (
                self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))
        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir,
                                                     ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            ckpt_filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if not is_main_process():
            return
        atomic_write(osp.join(runner.work_dir, 'last_checkpoint'),
                     str(self.last_ckpt).encode())
        if outdated is not None:
            path = self.file_backend.join_path(
                self.out_dir, self.filename_tmpl.format(outdated))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):
                self.file_backend.rmtree(path)

    def _save_best_checkpoint(self, runner, metrics) -> None:
        # MMEngine removes the previous best before saving the new one:
        # defer the removal until the new best is complete.
        if not self.save_best:
            return
        backend = self.file_backend
        self.file_backend = deferred = _DeferredRemovals(backend)
        try:
            super()._save_best_checkpoint(runner, metrics)
        finally:
            self.file_backend = backend
        keep = {getattr(self, 'best_ckpt_path', None),
                *getattr(self, 'best_ckpt_path_dict', {}).values()}
        deferred.flush(keep=keep)
