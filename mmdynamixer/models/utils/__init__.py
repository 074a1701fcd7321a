from .dynamixer_op import (GENERATORS, DynaMixerOp, float32_under_autocast,
                           softmax_fp32)
from .pretrained import check_state_dict, load_pretrained_strict

__all__ = ['DynaMixerOp', 'GENERATORS', 'check_state_dict',
           'float32_under_autocast', 'load_pretrained_strict', 'softmax_fp32']
