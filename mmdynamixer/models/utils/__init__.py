from .dynamixer_op import (GENERATORS, DynaMixerOp, float32_under_autocast,
                           softmax_fp32)

__all__ = ['DynaMixerOp', 'GENERATORS', 'float32_under_autocast',
           'softmax_fp32']
