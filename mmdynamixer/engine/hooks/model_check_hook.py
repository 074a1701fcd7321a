# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from ...models.model_check import check_model


@HOOKS.register_module()
class ModelCheckHook(Hook):
    """Check, before a run trains or evaluates anything, that the parts of a
    model with a DynaMixer backbone fit together (:func:`~mmdynamixer.
    models.check_model`): a classifier head of the backbone's width; a neck
    or head with the backbone's output channels; anchors, RoI extractors
    and segmentation heads at the backbone's real strides.

    Each part is built alone and cannot see the others, and a mismatch
    fails late or never (anchors of the wrong stride train a detector that
    is silently worse). The runner calls ``before_run`` once the model and
    the data loaders are built, whichever tool started it.
    """
    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        check_model(runner.model)
