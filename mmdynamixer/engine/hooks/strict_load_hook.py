# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS

from ...utils.checkpoint import (check_state_dict, checkpoint_to_load,
                                 extract_state_dict)


@HOOKS.register_module()
class StrictLoadHook(Hook):
    """Refuse a ``load_from``, ``--resume`` or ``tools/test.py`` checkpoint
    that does not fit the whole model, before anything is loaded.

    MMEngine's runner loads these non-strictly and only logs what did not
    fit, so a wrong checkpoint trains or evaluates a partly random model.
    This hook checks the checkpoint's state dict against every key of the
    model (MMEngine calls ``after_load_checkpoint`` before loading) and
    raises :class:`~mmdynamixer.utils.CheckpointMismatchError` listing the
    missing, unexpected and mis-shaped keys. ``MMDYNAMIXER_PARTIAL_LOAD=1``
    (or running the runner within ``mmdynamixer.allow_partial_load()``)
    lets the load go on and logs what stays random.
    """
    priority = 'VERY_HIGH'

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        # the file the runner is loading (a Runner built without a config
        # has no public record of it)
        source = checkpoint_to_load(runner.cfg) or \
            'the checkpoint being loaded'
        hints = []
        state_dict = extract_state_dict(checkpoint, ('state_dict', ))
        if hasattr(model, 'backbone') and any(
                k.startswith('backbone.') for k in state_dict):
            hints.append(
                'To initialise only the backbone from a classifier '
                "checkpoint, set model.backbone.init_cfg=dict(type="
                "'Pretrained', checkpoint=CKPT, prefix='backbone.') instead "
                'of load_from.')
        # no `fresh` keys here: resuming or testing, every key must be there
        check_state_dict(model, state_dict, source, hints=hints,
                         logger=runner.logger.instance_name)
