"""A hook for the preemption tests, imported by their configs
(``custom_imports``): after training iteration ``at`` (1-based), rank 0
sends ``SIGTERM`` to every process of its process group (the launcher and
all ranks), as Slurm signals every task of a job."""
import os
import signal

from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class SignalProcessGroupAt(Hook):
    priority = 'HIGHEST'

    def __init__(self, at: int):
        self.at = at

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if runner.iter + 1 == self.at and get_rank() == 0:
            os.killpg(os.getpgrp(), signal.SIGTERM)
