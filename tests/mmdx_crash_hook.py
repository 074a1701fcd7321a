"""Test-only hooks that kill their own training process, as a crash or an
out-of-memory kill would: SIGKILL, no clean-up, no final checkpoint."""
import os
import os.path as osp
import signal

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


def _kill():
    os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class KillAtIterHook(Hook):

    def __init__(self, iteration: int):
        self.iteration = iteration

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if runner.iter == self.iteration:
            _kill()


@HOOKS.register_module()
class KillDuringSaveHook(Hook):
    """SIGKILL in the middle of saving the ``nth`` file whose name starts
    with ``name``, at ``point``:

    - ``'write'``: half of the temporary file is written (a kill while the
      bytes go to disk);
    - ``'rename'``: the file is complete and renamed into place, but
      ``last_checkpoint`` (or, for a best checkpoint, the removal of the
      previous best) is not updated yet.

    Every save of the package goes through ``os.replace`` of a temporary
    file; this wraps it.
    """

    def __init__(self, name: str, point: str = 'write', nth: int = 1):
        assert point in ('write', 'rename')
        self.name, self.point, self.nth = name, point, nth
        self.seen = 0

    def before_run(self, runner):
        replace = os.replace

        def killing_replace(src, dst, *args, **kwargs):
            if osp.basename(dst).startswith(self.name):
                self.seen += 1
                if self.seen == self.nth:
                    if self.point == 'write':
                        with open(src, 'r+b') as f:
                            f.truncate(os.path.getsize(src) // 2)
                        _kill()
                    replace(src, dst, *args, **kwargs)
                    _kill()
            return replace(src, dst, *args, **kwargs)

        os.replace = killing_replace
