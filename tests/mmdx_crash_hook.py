"""A test-only hook that kills its own training process, as a crash or an
out-of-memory kill would: SIGKILL, no clean-up, no final checkpoint."""
import os
import signal

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class KillAtIterHook(Hook):

    def __init__(self, iteration: int):
        self.iteration = iteration

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if runner.iter == self.iteration:
            os.kill(os.getpid(), signal.SIGKILL)
