from .cpu_amp_optim_wrapper import CPUBf16OptimWrapper
from .layer_decay import BackboneLayerDecayOptimWrapperConstructor

__all__ = ['BackboneLayerDecayOptimWrapperConstructor', 'CPUBf16OptimWrapper']
