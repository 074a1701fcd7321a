# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""A missing data root or annotation file: one clear error when the data
set is built (by :class:`~.ImageIntegrityDataset`, whichever tool builds
it), naming the path, the config field and the section of the manual that
says how to prepare it."""
import os.path as osp

from ..doc_links import PREPARE_DATA

# dataset type: folders it needs under data_root (beside what the config names)
FOLDERS = {
    'CIFAR10': ('cifar-10-batches-py', ),
    'CIFAR100': ('cifar-100-python', ),
}


def _datasets(dataset: dict, where: str):
    """``(where, cfg)`` of a dataset config and of those it wraps."""
    yield where, dataset
    inner = dataset.get('dataset')
    if isinstance(inner, dict):
        yield from _datasets(inner, where + '.dataset')
    for i, inner in enumerate(dataset.get('datasets') or ()):
        if isinstance(inner, dict):
            yield from _datasets(inner, f'{where}.datasets.{i}')


def _paths(dataset: dict):
    """``(field, path)`` of the files and folders a dataset config names."""
    root = dataset.get('data_root') or ''
    if root:
        yield 'data_root', root
    ann_file = dataset.get('ann_file')
    if isinstance(ann_file, str) and ann_file:
        yield 'ann_file', osp.join(root, ann_file)
    prefix = dataset.get('data_prefix')
    prefixes = prefix.items() if isinstance(prefix, dict) else \
        [('', prefix)] if isinstance(prefix, str) else []
    for key, value in prefixes:
        if isinstance(value, str) and value and '://' not in value:
            yield f'data_prefix{"." + key if key else ""}', osp.join(
                root, value)
    kind = str(dataset.get('type', '')).split('.')[-1]
    for folder in FOLDERS.get(kind, ()):
        yield 'data_root', osp.join(root, folder)
    if kind == 'ImageNet' and dataset.get('split') and not prefix:
        yield 'split', osp.join(root, dataset['split'])  # its image folder


def check_data_paths(dataset: dict, where: str = 'dataset',
                     prepare: str = None) -> None:
    """Raise FileNotFoundError for the first missing path that the data set
    config ``dataset`` (or one it wraps) names; ``where`` is its place in
    the config, and ``prepare`` the command that prepares the data, for the
    message."""
    for place, inner in _datasets(dataset, where):
        kind = str(inner.get('type', '')).split('.')[-1]
        for field, path in _paths(inner):
            if '://' in path or osp.exists(path):
                continue
            section = PREPARE_DATA.get(kind)
            how = (f'Prepare it with `{prepare}`' if prepare else
                   f'Prepare it as {section} says' if section else
                   f'Prepare the {kind} data set as its library documents')
            raise FileNotFoundError(
                f'{kind} data not found: {path} does not exist ({field} of '
                f'the data set at *_dataloader.{place}). {how}, or point the '
                'config at your copy: `--cfg-options train_dataloader.'
                f'{place}.data_root=DIR val_dataloader.dataset.data_root=DIR '
                'test_dataloader.dataset.data_root=DIR` (the evaluation sets '
                'are not wrapped).')


__all__ = ['FOLDERS', 'check_data_paths']
