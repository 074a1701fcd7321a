# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""Missing data and bad image files: a clear error naming the path (and the
sample's index), or, when asked for, bad training images skipped and
counted. The configs declare it around each data set, so that every tool
that builds their data sets (ours, MMPretrain's, MMDetection's,
MMSegmentation's, ``mim``) checks the same."""
import os.path as osp

import torch.utils.data as data
from mmengine.logging import print_log
from mmpretrain.registry import DATASETS
from PIL import Image

from ..doc_links import BAD_IMAGES
from .data_paths import check_data_paths

# the paths of a sample's files, as MMPretrain, MMDetection and
# MMSegmentation data sets name them
PATH_KEYS = ('img_path', 'seg_map_path')


class BadImageError(OSError):
    """An image file that is missing, empty, truncated or undecodable."""


class TooManyBadImagesError(RuntimeError):
    """More bad images than ``max_bad_fraction`` allows."""


def _decodes(path: str) -> bool:
    try:
        with Image.open(path) as image:
            image.load()  # raises on a truncated file
        return True
    except Exception:  # noqa: BLE001 PIL raises many kinds here
        return False


def image_file_problem(path: str):
    """What is wrong with the image file at ``path``, or None.

    Cheap: JPEG and PNG files are checked for their end marker (a truncated
    JPEG otherwise decodes silently, with OpenCV, into a half-grey image);
    only a file without one is decoded in full, since some cameras append
    data after it.
    """
    if not osp.isfile(path):
        return 'missing file'
    size = osp.getsize(path)
    if size == 0:
        return 'empty file'
    with open(path, 'rb') as f:
        head = f.read(8)
        f.seek(max(0, size - 16))
        tail = f.read().rstrip(b'\0')
    if head[:2] == b'\xff\xd8':
        ends = tail.endswith(b'\xff\xd9')
        kind = 'truncated JPEG (no end-of-image marker)'
    elif head == b'\x89PNG\r\n\x1a\n':
        ends = b'IEND' in tail
        kind = 'truncated PNG (no IEND chunk)'
    else:
        return None  # other formats: the decoder's own errors tell
    if ends or _decodes(path):
        return None
    return kind


def _is_decode_failure(err: Exception) -> bool:
    """An error of an image loader that means the file could not be read
    (as opposed to a bug elsewhere in the pipeline)."""
    if isinstance(err, OSError):
        return True
    if isinstance(err, AssertionError) and 'failed to load image' in str(err):
        return True  # mmcv's LoadImageFromFile when decoding gives None
    return type(err).__module__ == 'cv2' and type(err).__name__ == 'error'


@DATASETS.register_module()
class ImageIntegrityDataset:
    """A data set whose missing paths and bad image files stop the run
    clearly, or whose bad training images are skipped when asked for.

    Without it, a missing data root fails deep in a library without saying
    how to prepare the data, a truncated JPEG decodes silently into a
    half-grey image, and an unreadable file fails deep in the pipeline
    without saying which sample it was. The configs of this package wrap
    each data set in it (as MMEngine's ``RepeatDataset`` or
    ``ClassBalancedDataset`` wrap theirs); a config of your own gets the
    same checks by doing so::

        train_dataloader = dict(
            dataset=dict(type='mmpretrain.ImageIntegrityDataset',
                         dataset=dict(type='CustomDataset', ...)))

    Args:
        dataset (dict | Dataset): The data set (config or object). A config
            has its paths (``data_root``, ``ann_file``, ``data_prefix``)
            checked before it is built. Its ``get_data_info(idx)`` names the
            files (``img_path``, and ``seg_map_path`` for segmentation).
        prepare (str, optional): The command that prepares the data, for
            the message when a path is missing (by default the section of
            the manual on the data set's type).
        skip_bad (bool): False: the first bad image stops the run with
            :class:`BadImageError` naming the file and its index. True:
            a bad image is logged and the next sample is used instead
            (training sets only: skipping evaluation images would change the
            metric). Defaults to False.
        max_bad_fraction (float): With ``skip_bad``, stop with
            :class:`TooManyBadImagesError` once more than this fraction of
            the data set was bad. Each dataloader worker counts its own
            share. Defaults to 0.001.

    Examples:
        >>> from mmdynamixer.datasets import ImageIntegrityDataset
        >>> ImageIntegrityDataset(dict(type='CustomDataset',
        ...                            data_root='no/such/folder'))
        Traceback (most recent call last):
        ...
        FileNotFoundError: CustomDataset data not found: no/such/folder ...
    """

    def __init__(self, dataset, skip_bad: bool = False,
                 max_bad_fraction: float = 0.001, prepare: str = None,
                 **others):
        if others:
            raise TypeError(
                f'ImageIntegrityDataset got {sorted(others)}, which belong to '
                'the data set it wraps: set them one level down, at '
                f'`*_dataloader.dataset.dataset.{sorted(others)[0]}` (e.g. '
                '`--cfg-options train_dataloader.dataset.dataset.data_root='
                'DIR`).')
        if isinstance(dataset, dict):
            check_data_paths(dataset, 'dataset.dataset', prepare)
            dataset = DATASETS.build(dataset)
        self.dataset = dataset
        if not 0 <= max_bad_fraction < 1:
            raise ValueError(f'max_bad_fraction={max_bad_fraction} must be '
                             'in [0, 1).')
        if skip_bad and getattr(self.dataset, 'test_mode', False):
            raise ValueError(
                'skip_bad=True applies to training data only: skipping an '
                'evaluation image would change the metric. Fix or remove '
                'the bad files instead.')
        self.skip_bad = skip_bad
        self.max_bad_fraction = max_bad_fraction
        self.bad = set()  # indices found bad (each logged and counted once)

    # the wrapped data set as the runner, samplers and evaluators see it
    @property
    def metainfo(self):
        return self.dataset.metainfo

    def full_init(self):
        if hasattr(self.dataset, 'full_init'):
            self.dataset.full_init()

    def get_data_info(self, idx: int) -> dict:
        return self.dataset.get_data_info(idx)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name):
        if name == 'dataset' or name.startswith('__'):
            raise AttributeError(name)  # while unpickling in a worker
        return getattr(self.dataset, name)

    def _bad_image(self, idx: int, path: str, problem: str):
        return BadImageError(
            f'Bad image at index {idx} of {type(self.dataset).__name__} '
            f'({len(self)} samples): {path}: {problem}. Replace or remove '
            'the file, or skip bad training images with `--cfg-options '
            f'train_dataloader.dataset.skip_bad=True` (see {BAD_IMAGES}).')

    def _checked(self, idx: int):
        info = self.dataset.get_data_info(idx)
        paths = [info[k] for k in PATH_KEYS if isinstance(info.get(k), str)]
        for path in paths:
            problem = image_file_problem(path)
            if problem:
                raise self._bad_image(idx, path, problem)
        try:
            return self.dataset[idx]
        except Exception as err:  # noqa: BLE001 re-raised unless a bad file
            if paths and _is_decode_failure(err):
                raise self._bad_image(idx, ', '.join(paths),
                                      f'{type(err).__name__}: {err}') from err
            raise

    def _allowed_bad(self) -> float:
        worker = data.get_worker_info()
        share = len(self) / (worker.num_workers if worker else 1)
        return self.max_bad_fraction * share

    def __getitem__(self, idx: int):
        for _ in range(len(self)):
            try:
                return self._checked(idx)
            except BadImageError as err:
                if not self.skip_bad:
                    raise
                if idx not in self.bad:
                    self.bad.add(idx)
                    print_log(f'Skipped ({len(self.bad)} so far'
                              f'{self._where()}): '
                              f'{err.args[0].split(". Replace")[0]}.',
                              logger='current', level=30)
                if len(self.bad) > self._allowed_bad():
                    raise TooManyBadImagesError(
                        f'{len(self.bad)} bad images{self._where()} exceed '
                        f'max_bad_fraction={self.max_bad_fraction} of '
                        f'{len(self)} samples; the data set looks broken. '
                        'Fix it, or raise max_bad_fraction (`--cfg-options '
                        'train_dataloader.dataset.max_bad_fraction=F`).'
                    ) from err
                idx = (idx + 1) % len(self)
        raise TooManyBadImagesError('Every image of the data set is bad.')

    @staticmethod
    def _where() -> str:
        worker = data.get_worker_info()
        return f' in dataloader worker {worker.id}' if worker else ''


__all__ = ['BadImageError', 'ImageIntegrityDataset', 'TooManyBadImagesError',
           'image_file_problem']
