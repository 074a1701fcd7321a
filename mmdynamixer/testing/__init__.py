"""Helpers for testing and benchmarking mmdynamixer (not needed to train or
run a model)."""
from .baseline import (BaselineBlock, BaselineDynaMixer, BaselineLayer,
                       BaselineOp)
from .saved_tensors import saved_tensor_bytes

__all__ = ['BaselineBlock', 'BaselineDynaMixer', 'BaselineLayer',
           'BaselineOp', 'saved_tensor_bytes']
