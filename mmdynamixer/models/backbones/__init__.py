from .dynamixer import DynaMixer, DynaMixerBlock, DynaMixerLayer

__all__ = ['DynaMixer', 'DynaMixerBlock', 'DynaMixerLayer']
