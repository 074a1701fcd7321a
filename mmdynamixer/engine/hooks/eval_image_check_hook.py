# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
import time

from mmengine.dist import get_dist_info
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmpretrain.registry import HOOKS

from ...datasets.image_integrity import (PATH_KEYS, BadImageError,
                                         image_file_problem)


@HOOKS.register_module()
class EvalImageCheckHook(Hook):
    """Check the image files of the validation and test sets before the
    first evaluation reads them: a missing, empty or truncated file stops
    the run naming the file and its index.

    A truncated JPEG otherwise decodes silently into a half-grey image and
    the score is that of other images. The training set is checked by
    :class:`~mmdynamixer.datasets.ImageIntegrityDataset`, which wraps it in
    the configs (and can skip bad training images); the evaluation sets
    stay unwrapped, at ``val_dataloader.dataset`` and
    ``test_dataloader.dataset``, where MMPretrain's, MMDetection's and
    MMSegmentation's inferencers read their pipelines, so this hook checks
    them instead. Each set is checked once per run; each rank checks its
    share of the files (end markers only: a few bytes per file). Sets that
    hold their images in memory (CIFAR) have no files to check.

    Examples:
        >>> custom_hooks = [dict(type='mmpretrain.EvalImageCheckHook')]
    """
    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._checked = set()

    def before_val_epoch(self, runner) -> None:
        self._check(runner.val_dataloader.dataset, 'val')

    def before_test_epoch(self, runner) -> None:
        self._check(runner.test_dataloader.dataset, 'test')

    def _check(self, dataset, split: str) -> None:
        if id(dataset) in self._checked:
            return
        self._checked.add(id(dataset))
        name = type(dataset).__name__
        if not hasattr(dataset, 'get_data_info'):
            print_log(f'EvalImageCheckHook: the {split} set ({name}) has no '
                      'get_data_info(); its image files were not checked.',
                      logger='current', level=30)
            return
        rank, world_size = get_dist_info()
        start, files = time.perf_counter(), 0
        for idx in range(rank, len(dataset), world_size):
            info = dataset.get_data_info(idx)
            for key in PATH_KEYS:
                path = info.get(key)
                if not isinstance(path, str):
                    continue
                files += 1
                problem = image_file_problem(path)
                if problem:
                    raise BadImageError(
                        f'Bad image at index {idx} of the {split} set '
                        f'({name}, {len(dataset)} samples): {path}: '
                        f'{problem}. Replace or remove the file (an '
                        'evaluation set is never skipped over: its score '
                        'would be that of other images).')
        print_log(f'EvalImageCheckHook: {files} image files of the {split} '
                  f'set checked on this rank in '
                  f'{time.perf_counter() - start:.1f} s.', logger='current')
