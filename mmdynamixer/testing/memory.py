# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""How much memory a forward pass keeps for backward.

Counted by the allocator, as PyTorch's profiler reports it
(``torch.profiler.profile(profile_memory=True)``): the bytes allocated
during ``run()`` and not freed by its end. That includes everything a
training step keeps until backward, wherever it is kept: tensors saved by
autograd, and the caches of activation checkpointing (which
``torch.autograd.graph.saved_tensors_hooks`` does not see), plus the
result of ``run()`` itself.
"""
from typing import Callable

from torch.profiler import ProfilerActivity, profile


def retained_bytes(run: Callable):
    """Bytes that ``run()`` allocated and still holds when it returns
    (CPU tensors).

    Returns:
        tuple: ``(bytes, result of run())``.
    """
    with profile(activities=[ProfilerActivity.CPU],
                 profile_memory=True) as prof:
        result = run()
    return sum(event.self_cpu_memory_usage for event in prof.events()), result
