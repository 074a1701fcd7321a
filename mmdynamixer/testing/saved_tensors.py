# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""How many bytes a forward pass keeps for backward, counted where autograd
saves them (``torch.autograd.graph.saved_tensors_hooks``), so that the
figure depends on neither the allocator nor the device."""
from typing import Callable, Iterable

import torch


def saved_tensor_bytes(run: Callable, exclude: Iterable[torch.Tensor] = ()):
    """Bytes of the distinct storages that ``run()`` saves for backward,
    leaving out those of ``exclude`` (a model's parameters: they are kept
    anyway, not activations). A storage saved by several operations (a
    tensor and its views) counts once.

    Returns:
        tuple: ``(bytes, result of run())``.
    """
    skip = {t.untyped_storage().data_ptr() for t in exclude}
    sizes = {}

    def pack(t):
        storage = t.untyped_storage()
        key = storage.data_ptr()
        if key not in skip:
            sizes[key] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        result = run()
    return sum(sizes.values()), result
