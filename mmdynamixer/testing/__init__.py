"""Helpers for testing and benchmarking mmdynamixer (not needed to train or
run a model)."""
from .reference import (ReferenceBlock, ReferenceDynaMixer, ReferenceLayer,
                        ReferenceOp)
from .memory import retained_bytes, saved_for_backward

__all__ = ['ReferenceBlock', 'ReferenceDynaMixer', 'ReferenceLayer',
           'ReferenceOp', 'retained_bytes', 'saved_for_backward']
