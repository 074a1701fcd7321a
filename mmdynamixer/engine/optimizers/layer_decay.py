# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""Layer-wise learning-rate decay for detectors and segmenters too."""
from mmpretrain.engine.optimizers import \
    LearningRateDecayOptimWrapperConstructor
from mmpretrain.registry import OPTIM_WRAPPER_CONSTRUCTORS


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class BackboneLayerDecayOptimWrapperConstructor(
        LearningRateDecayOptimWrapperConstructor):
    """MMPretrain's layer-wise learning-rate decay, for any model whose
    backbone has ``get_layer_depth``: classifiers, and MMDetection and
    MMSegmentation models, which do not have the method themselves.

    A parameter at depth ``d`` of ``n`` (the backbone's
    ``get_layer_depth(name, 'backbone.')``) trains with
    ``lr * layer_decay_rate ** (n - d - 1)``: the stem with the smallest
    rate, each deeper layer with a larger one, and everything outside the
    backbone (neck, heads) with ``lr`` itself. ``paramwise_cfg`` takes the
    same keys as MMPretrain's ``LearningRateDecayOptimWrapperConstructor``.

    Examples:
        In an MMDetection or MMSegmentation config:

        >>> optim_wrapper = dict(
        ...     type='OptimWrapper',
        ...     optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
        ...     constructor='mmpretrain.'
        ...     'BackboneLayerDecayOptimWrapperConstructor',
        ...     paramwise_cfg=dict(layer_decay_rate=0.9))
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg=None):
        super().__init__(optim_wrapper_cfg, paramwise_cfg)
        rate = self.paramwise_cfg.get('layer_decay_rate', 1.0)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) \
                or not 0 < rate <= 1:
            raise ValueError(
                f'paramwise_cfg.layer_decay_rate={rate!r} must be a number '
                'in (0, 1]: 1 trains every layer with the same learning '
                'rate, smaller values train earlier layers slower (0.65 to '
                '0.9 are usual).')

    def add_params(self, params, module, prefix='', get_layer_depth=None,
                   **kwargs) -> None:
        if get_layer_depth is None and not prefix and (
                hasattr(module, 'backbone') or
                not hasattr(module, 'get_layer_depth')):
            get_layer_depth = self.backbone_layer_depth(module)
        super().add_params(params, module, prefix, get_layer_depth,
                           **kwargs)

    @staticmethod
    def backbone_layer_depth(model):
        """``name -> (depth, num_depths)`` from ``model.backbone``."""
        backbone = getattr(model, 'backbone', None)
        if not hasattr(backbone, 'get_layer_depth'):
            raise TypeError(
                f'Layer-wise learning-rate decay needs a model with a '
                f'backbone that has get_layer_depth; {type(model).__name__} '
                f'has the backbone {type(backbone).__name__}. Use a '
                'backbone that has it (DynaMixer, ConvNeXt, ViT, ...), or '
                'remove the constructor and layer_decay_rate from '
                'optim_wrapper.')

        def depth(name: str):
            return backbone.get_layer_depth(name, 'backbone.')

        return depth
