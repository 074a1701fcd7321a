# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
import os.path as osp
from collections import defaultdict
from typing import Optional, Sequence

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS

from ...models.backbones import DynaMixer
from ...visualization import (layer_mixing, mixing_figure, pipeline_image)


@HOOKS.register_module()
class DynaMixerDiagnosticsHook(Hook):
    """Log what the DynaMixer token mixing is doing, every ``interval`` iters.

    For each stage ``i`` of every :class:`DynaMixer` in the model, it logs to
    the runner's message hub (hence the text log, ``scalars.json`` and any
    visualisation backend such as TensorBoard):

    - ``dynamixer/stage{i}_entropy_h`` / ``_entropy_w``: the mean entropy (in
      nats, between 0 and ``log N``) of the generated mixing weights of the
      column (``h``) and row (``w``) ops, over output tokens, segments,
      sequences (and sliding windows), samples and layers. ``log N`` means
      uniform mixing, 0 means each token copies one input. A shared row/column op logs ``_entropy_hw``.
    - ``dynamixer/stage{i}_weight_h`` / ``_weight_w`` / ``_weight_c``: the mean
      reweighting weight of each branch (they sum to 1).

    Forward hooks are attached to the ops only for the training iterations
    that log, and removed right after, so other iterations run the model
    untouched. On a logging iteration the mixing weights are recomputed from
    the op inputs under ``no_grad`` (no extra forward pass of the model).
    Where a layer is recomputed in the backward pass (``selective_cp``,
    ``with_cp``), its hooks run again on the same inputs: the same values
    count twice, and the means do not change.

    With ``probe_images``, every ``image_interval`` iterations it also draws
    the mixing of fixed probe images (as ``tools/visualization/
    vis_mixing.py`` does: the column and row weights of ``probe_tokens``,
    the full matrices, the branch weights) at layer ``probe_layer`` and
    sends each picture to the runner's visualizer as
    ``dynamixer_mixing_<image name>`` (``vis_image/`` of
    ``LocalVisBackend``, TensorBoard's images, ...). The probes run in eval
    mode, outside the training step, with the config's test pipeline.

    Args:
        interval (int): Log every ``interval`` training iterations; match
            the ``LoggerHook`` interval so every log line has fresh values.
            Defaults to 100.
        probe_images (Sequence[str]): Image files to draw the mixing of.
            Defaults to none.
        image_interval (int): Draw them every ``image_interval`` training
            iterations (and after the last). Defaults to 1000.
        probe_layer (tuple): ``(stage, layer)`` to draw. Defaults to
            ``(0, -1)``, the last layer of the first stage.
        probe_tokens (Sequence[tuple], optional): ``(row, col)`` tokens to
            draw; defaults to the centre of the token grid.
    """
    # Before LoggerHook (BELOW_NORMAL), which reads the message hub.
    priority = 'NORMAL'

    def __init__(self, interval: int = 100,
                 probe_images: Sequence[str] = (),
                 image_interval: int = 1000,
                 probe_layer: tuple = (0, -1),
                 probe_tokens: Optional[Sequence[tuple]] = None):
        if interval <= 0:
            raise ValueError(f'interval must be positive, got {interval}')
        if image_interval <= 0:
            raise ValueError(
                f'image_interval must be positive, got {image_interval}')
        self.interval = interval
        self.probe_images = list(probe_images)
        self.image_interval = image_interval
        self.probe_layer = tuple(probe_layer)
        self.probe_tokens = [tuple(t) for t in probe_tokens] \
            if probe_tokens else None
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
        missing = [p for p in self.probe_images if not osp.isfile(p)]
        if missing:
            raise FileNotFoundError(
                f'DynaMixerDiagnosticsHook: probe_images not found: '
                f'{missing}. Give existing image files, or remove '
                'probe_images.')

    def _add(self, key: str, value: float):
        self._sums[key] += value
        self._counts[key] += 1

    def _entropy_hook(self, key: str):
        def hook(op, inputs, output):
            with torch.no_grad():
                # the op's own inputs: (x, axis, window stride)
                weights = op.mixing_matrices(*inputs).float()
                entropy = -(weights * weights.clamp_min(1e-30).log()).sum(-1)
                self._add(key, entropy.mean().item())
        return hook

    def _reweight_hook(self, prefix: str, branches):
        def hook(module, inputs, output):
            # the block's branch weights (B, C, K), summing to 1 over K
            weights = output.detach().float().mean(dim=(0, 1))
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
                    ops = {}  # a shared op is hooked once, as 'hw'
                    for branch, op, _, _ in block.token_mixers():
                        name = 'hw' if block.share_hw else branch
                        ops[name] = op
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
        if self.probe_images and (
                self.every_n_train_iters(runner, self.image_interval) or
                self.is_last_train_iter(runner)):
            self.draw_probes(runner)
        if not self._handles:
            return
        self._remove_handles()
        for key, total in self._sums.items():
            runner.message_hub.update_scalar(f'train/{key}',
                                             total / self._counts[key])
        self._sums.clear()
        self._counts.clear()

    def draw_probes(self, runner) -> None:
        """Send the mixing pictures of the probe images to the visualizer."""
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        was_training = model.training
        model.eval()
        try:
            for path in self.probe_images:
                image, inputs = pipeline_image(runner.cfg, model, path)
                mixing = layer_mixing(model, inputs, *self.probe_layer)
                H, W = mixing.grid
                tokens = self.probe_tokens or [(H // 2, W // 2)]
                stage, layer = self.probe_layer
                fig = mixing_figure(
                    image, mixing, tokens, title=f'{osp.basename(path)}: '
                    f'stage {stage}, layer {layer}, iteration '
                    f'{runner.iter + 1}')
                runner.visualizer.add_image(
                    f'dynamixer_mixing_{osp.splitext(osp.basename(path))[0]}',
                    figure_rgb(fig), step=runner.iter + 1)
        finally:
            model.train(was_training)

    def _remove_handles(self):
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def after_run(self, runner) -> None:
        self._remove_handles()  # e.g. after an exception mid-iteration


def figure_rgb(fig) -> np.ndarray:
    """A matplotlib figure as an RGB ``uint8`` array (closed afterwards)."""
    import matplotlib.pyplot as plt
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return rgb
