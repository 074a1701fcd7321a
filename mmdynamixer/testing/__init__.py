"""Helpers for testing and benchmarking mmdynamixer (not needed to train or
run a model)."""
from .baseline import (BaselineBlock, BaselineDynaMixer, BaselineLayer,
                       BaselineOp)

__all__ = ['BaselineBlock', 'BaselineDynaMixer', 'BaselineLayer',
           'BaselineOp']
