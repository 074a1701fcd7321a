# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
import random

import numpy as np
import torch
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class EpochSeedHook(Hook):
    """Reseed Python, NumPy and PyTorch at the start of every training epoch.

    MMEngine checkpoints do not hold random-number-generator states, and
    between saving a checkpoint and the next epoch the validation loop draws
    random numbers (each DataLoader iterator draws its base seed). So a run
    resumed with ``--resume`` would augment, mix and drop paths differently
    from an uninterrupted one. Seeding every epoch from ``(seed, epoch)``
    makes epoch ``e`` draw the same numbers whether or not the run was
    stopped before it: a resumed run ends with the same weights.

    The seed is the runner's (``randomness.seed``, restored from the
    checkpoint on resume; it already differs per rank when
    ``randomness.diff_rank_seed`` is set). With ``persistent_workers=True``,
    dataloader workers keep their own generators across epochs and a resumed
    run's new workers start afresh; use ``persistent_workers=False`` (or no
    workers) where bit-exact resumption matters.
    """
    priority = 'HIGHEST'

    def before_train_epoch(self, runner) -> None:
        seed = (runner.seed + runner.epoch) % 2**32
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
