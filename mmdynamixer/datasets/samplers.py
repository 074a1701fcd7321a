# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""A sampler that can start an epoch where a preempted run stopped."""
import itertools
from typing import Iterator, Optional

from mmengine.dataset import DefaultSampler
from mmpretrain.registry import DATA_SAMPLERS


@DATA_SAMPLERS.register_module()
class ResumableSampler(DefaultSampler):
    """MMEngine's :class:`~mmengine.dataset.DefaultSampler` (same arguments,
    same order of samples in every epoch) that can start one epoch at a
    given position of its order.

    :class:`~mmdynamixer.engine.hooks.PreemptionHook` saves the position of
    the epoch in a checkpoint taken inside it and calls :meth:`resume_at`
    when a run resumes from it, so that the run continues with the next
    unseen batch of the same permutation, as the uninterrupted run did.
    Other epochs are those of ``DefaultSampler``.

    Examples:
        >>> train_dataloader = dict(
        ...     sampler=dict(type='mmpretrain.ResumableSampler', shuffle=True),
        ...     ...)
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._start: Optional[tuple] = None  # (epoch, samples to skip)

    def resume_at(self, epoch: int, samples: int) -> None:
        """Start epoch ``epoch`` after the first ``samples`` of this rank's
        order."""
        if not 0 <= samples <= super().__len__():
            raise ValueError(
                f'Cannot resume epoch {epoch} after {samples} samples: this '
                f'rank has {super().__len__()} in an epoch.')
        self._start = (epoch, samples)

    def _skipped(self) -> int:
        return self._start[1] if self._start and \
            self._start[0] == self.epoch else 0

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        if self._start and self._start[0] != epoch:
            self._start = None  # the resumed epoch is over

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(super().__iter__(), self._skipped(), None)

    def __len__(self) -> int:
        return super().__len__() - self._skipped()


__all__ = ['ResumableSampler']
