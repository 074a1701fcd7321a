from .dynamixer_head import DynaMixerClsHead

__all__ = ['DynaMixerClsHead']
