# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper
from mmpretrain.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class CPUBf16OptimWrapper(OptimWrapper):
    """Mixed precision on the CPU: MMEngine's
    :class:`~mmengine.optim.OptimWrapper` whose forward passes run under
    ``torch.autocast('cpu', dtype=torch.bfloat16)``.

    MMEngine's ``AmpOptimWrapper`` needs a GPU. bf16 has float32's exponent
    range, so no loss scaling is needed: gradients, the optimizer and the
    weights stay float32, as with ``AmpOptimWrapper``. DynaMixer's mixing
    generators, softmaxes, residual stream and normalisations run in float32
    under autocast; its matmuls in bf16.
    ``tools/train.py`` puts it in place of ``AmpOptimWrapper`` on a CPU with
    bf16 instructions (:func:`mmdynamixer.utils.cpu_bf16.cpu_bf16_support`),
    and for any config with ``--amp`` there.

    Examples:
        >>> optim_wrapper = dict(type='CPUBf16OptimWrapper',
        ...                      optimizer=dict(type='AdamW', lr=1e-3))
    """

    @contextmanager
    def optim_context(self, model: torch.nn.Module):
        with super().optim_context(model), \
                torch.autocast('cpu', dtype=torch.bfloat16):
            yield


__all__ = ['CPUBf16OptimWrapper']
