# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
import math
from typing import Optional

import torch
from mmengine.hooks import Hook
from mmengine.runner import find_latest_checkpoint
from mmpretrain.registry import HOOKS


class NonFiniteLossError(FloatingPointError):
    """A non-finite loss in full-precision training."""


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Stop full-precision training at a non-finite loss; count the steps
    that mixed precision skips.

    In float32, a NaN or infinite loss means the weights are already lost
    (the optimizer stepped with its gradients): the run stops at once, before
    any checkpoint of them is saved, with the iteration, every loss term and
    the last checkpoint, to resume from or to start a changed run from.

    Under AMP with a dynamic loss scale, an overflow is routine: the gradient
    scaler skips that step and halves the scale. Such steps are counted (a
    fall of the scale) and logged as ``train/amp_skipped_steps`` with
    ``train/loss_scale``; they are not fatal.
    """
    # Before CheckpointHook (VERY_LOW) could save the broken weights.
    priority = 'VERY_HIGH'

    def __init__(self):
        self._scale = None

    @staticmethod
    def _scaler(runner):
        scaler = getattr(runner.optim_wrapper, 'loss_scaler', None)
        return scaler if scaler is not None and scaler.is_enabled() else None

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch: Optional[dict] = None) -> None:
        scaler = self._scaler(runner)
        self._scale = None if scaler is None else float(scaler.get_scale())

    def after_train_iter(self, runner, batch_idx: int,
                         data_batch: Optional[dict] = None,
                         outputs: Optional[dict] = None) -> None:
        if self._scale is not None:
            self.count_skipped_step(runner, self._scale,
                                    float(self._scaler(runner).get_scale()))
            return
        losses = {k: float(torch.as_tensor(v).detach().float().sum())
                  for k, v in (outputs or {}).items() if 'loss' in k}
        if all(math.isfinite(v) for v in losses.values()):
            return
        last = runner.message_hub.get_info('last_ckpt') or \
            find_latest_checkpoint(runner.work_dir)
        terms = ', '.join(f'{k}={v:g}' for k, v in losses.items())
        if last:
            # --resume restores the optimizer and the schedule that led
            # here; a new run from the weights takes the config's
            after = (f'The last complete checkpoint is {last}: resume from '
                     f'it with `--resume {last}`, or, to change the learning '
                     'rate or the schedule first, start from its weights '
                     f'with `--cfg-options load_from={last}`.')
        else:
            after = ('No checkpoint was saved yet: lower the learning rate '
                     'or check the data, and start again.')
        raise NonFiniteLossError(
            f'Non-finite loss at iteration {runner.iter + 1} (epoch '
            f'{runner.epoch + 1}): {terms}. Training stops before these '
            f'weights are saved. {after}')

    @staticmethod
    def skipped(scale_before: float, scale_after: float) -> bool:
        """A dynamic loss scaler lowers its scale exactly when it skips a
        step (and keeps or raises it otherwise)."""
        return scale_after < scale_before

    def count_skipped_step(self, runner, scale_before: float,
                           scale_after: float):
        skipped = runner.message_hub.get_info('amp_skipped_steps') or 0
        if self.skipped(scale_before, scale_after):
            skipped += 1
            runner.logger.warning(
                f'AMP skipped the step of iteration {runner.iter + 1} '
                '(non-finite gradients); loss scale '
                f'{scale_before:g} -> {scale_after:g}, {skipped} skipped '
                'so far.')
        runner.message_hub.update_info('amp_skipped_steps', skipped)
        runner.message_hub.update_scalar('train/amp_skipped_steps', skipped)
        runner.message_hub.update_scalar('train/loss_scale', scale_after)
