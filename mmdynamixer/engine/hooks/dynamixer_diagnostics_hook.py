# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
from collections import defaultdict
from typing import Optional

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS

from ...models.backbones import DynaMixer


@HOOKS.register_module()
class DynaMixerDiagnosticsHook(Hook):
    """Log what the DynaMixer token mixing is doing, every ``interval`` iters.

    For each stage ``i`` of every :class:`DynaMixer` in the model, it logs to
    the runner's message hub (hence the text log, ``scalars.json`` and any
    visualisation backend such as TensorBoard):

    - ``dynamixer/stage{i}_entropy_h`` / ``_entropy_w``: the mean entropy (in
      nats, between 0 and ``log N``) of the generated mixing weights of the
      column (``h``) and row (``w``) ops, over output tokens, segments,
      sequences (and sliding windows), samples and layers. ``log N`` means uniform mixing, 0 means
      each token copies one input. A shared row/column op logs ``_entropy_hw``.
    - ``dynamixer/stage{i}_weight_h`` / ``_weight_w`` / ``_weight_c``: the mean
      reweighting weight of each branch (they sum to 1).

    Forward hooks are attached to the ops only for the training iterations
    that log, and removed right after, so other iterations run the model
    untouched. On a logging iteration the mixing weights are recomputed from
    the op inputs under ``no_grad`` (no extra forward pass of the model).

    Args:
        interval (int): Log every ``interval`` training iterations; match
            the ``LoggerHook`` interval so every log line has fresh values.
            Defaults to 100.
    """
    # Before LoggerHook (BELOW_NORMAL), which reads the message hub.
    priority = 'NORMAL'

    def __init__(self, interval: int = 100):
        if interval <= 0:
            raise ValueError(f'interval must be positive, got {interval}')
        self.interval = interval
        self._handles = []
        self._sums = defaultdict(float)
        self._counts = defaultdict(int)

    @staticmethod
    def dynamixers(runner):
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        return [m for m in model.modules() if isinstance(m, DynaMixer)]

    def before_run(self, runner) -> None:
        if not self.dynamixers(runner):
            raise ValueError('DynaMixerDiagnosticsHook needs a model with a '
                             'DynaMixer backbone; remove it from custom_hooks '
                             'for other models.')

    def _add(self, key: str, value: float):
        self._sums[key] += value
        self._counts[key] += 1

    def _entropy_hook(self, key: str):
        def hook(op, inputs, output):
            with torch.no_grad():
                # the op's own inputs: (x, window stride)
                weights = op.mixing_matrices(*inputs).float()
                entropy = -(weights * weights.clamp_min(1e-30).log()).sum(-1)
                self._add(key, entropy.mean().item())
        return hook

    def _reweight_hook(self, prefix: str, branches):
        def hook(module, inputs, output):
            with torch.no_grad():
                B = output.shape[0]
                weights = output.float().view(B, -1, len(branches))
                weights = weights.softmax(-1).mean(dim=(0, 1))
                for branch, value in zip(branches, weights.tolist()):
                    self._add(f'{prefix}_weight_{branch}', value)
        return hook

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch: Optional[dict] = None) -> None:
        if not self.every_n_train_iters(runner, self.interval):
            return
        for backbone in self.dynamixers(runner):
            for i, stage in enumerate(backbone.stages):
                prefix = f'dynamixer/stage{i}'
                for layer in stage:
                    block = layer.mixer
                    ops = {}
                    if hasattr(block, 'mix_h'):
                        ops['hw' if block.share_hw else 'h'] = block.mix_h
                    if hasattr(block, 'mix_w'):
                        ops['w'] = block.mix_w
                    for name, op in ops.items():
                        self._handles.append(op.register_forward_hook(
                            self._entropy_hook(f'{prefix}_entropy_{name}')))
                    if block.reweight is not None:
                        self._handles.append(
                            block.reweight.register_forward_hook(
                                self._reweight_hook(prefix, block.branches)))

    def after_train_iter(self, runner, batch_idx: int,
                         data_batch: Optional[dict] = None,
                         outputs: Optional[dict] = None) -> None:
        if not self._handles:
            return
        self._remove_handles()
        for key, total in self._sums.items():
            runner.message_hub.update_scalar(f'train/{key}',
                                             total / self._counts[key])
        self._sums.clear()
        self._counts.clear()

    def _remove_handles(self):
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def after_run(self, runner) -> None:
        self._remove_handles()  # e.g. after an exception mid-iteration

