from .dynamixer import (GENERATORS, MIXED_AXIS, BranchReweighting, DynaMixer,
                        DynaMixerBlock, DynaMixerLayer, DynaMixerOp,
                        keep_channel_matmuls)

__all__ = ['BranchReweighting', 'DynaMixer', 'DynaMixerBlock',
           'DynaMixerLayer', 'DynaMixerOp', 'GENERATORS', 'MIXED_AXIS',
           'keep_channel_matmuls']
