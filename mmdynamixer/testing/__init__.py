"""Helpers for testing and benchmarking mmdynamixer (not needed to train or
run a model)."""
from .reference import (ReferenceBlock, ReferenceDynaMixer, ReferenceLayer,
                        ReferenceOp)
from .saved_tensors import saved_tensor_bytes

__all__ = ['ReferenceBlock', 'ReferenceDynaMixer', 'ReferenceLayer',
           'ReferenceOp', 'saved_tensor_bytes']
