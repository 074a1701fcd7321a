# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""How much memory a forward pass keeps for backward.

Counted by the allocator, as PyTorch's profiler reports it
(``torch.profiler.profile(profile_memory=True)``): the bytes allocated
during ``run()`` and not freed by its end. That includes everything a
training step keeps until backward, wherever it is kept: tensors saved by
autograd, and the caches of activation checkpointing (which
``torch.autograd.graph.saved_tensors_hooks`` does not see), plus the
result of ``run()`` itself.

And exactly, tensor by tensor, what autograd saves for backward as its
saved-tensor hooks see it (:func:`saved_for_backward`): deterministic on
every torch (the profiler's attribution of allocations varies by tens of KB
between runs of one model on torch 2.1), but blind to what activation
checkpointing keeps inside its own hooks, so a checkpointed region shows
as saving almost nothing.
"""
from typing import Callable

import torch
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


def saved_for_backward(run: Callable):
    """The tensors that autograd saves for backward during ``run()``, as
    ``torch.autograd.graph.saved_tensors_hooks`` sees them.

    Returns:
        tuple: ``(bytes, number of tensors)``; a tensor saved twice counts
        twice.
    """
    saved = []

    def pack(tensor):
        saved.append(tensor.numel() * tensor.element_size())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        run()
    return sum(saved), len(saved)
