# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""The sections of the manual (``docs/en/``) that error messages point at,
in one place. Each is a page and a heading anchor (GitHub's and the built
docs' anchor of that heading); ``tests/test_docs.py`` checks that every one
of them exists. Imports nothing, so that the version guard can use it before
anything else is imported."""

DOCS = 'docs/en'


def doc(page: str, anchor: str) -> str:
    """``docs/en/<page>.md#<anchor>``."""
    return f'{DOCS}/{page}.md#{anchor}'


OWN_ENVIRONMENT = doc('get_started', 'use-in-your-own-environment')
BAD_IMAGES = doc('notes/what_happens_when', 'bad-images')
# data set type: the section on preparing it
PREPARE_DATA = {
    'ImageNet': doc('user_guides/prepare_data', 'imagenet'),
    'CIFAR10': doc('user_guides/prepare_data', 'cifar-10-and-cifar-100'),
    'CIFAR100': doc('user_guides/prepare_data', 'cifar-10-and-cifar-100'),
    'CustomDataset': doc('user_guides/prepare_data', 'digits'),
    'CocoDataset': doc('user_guides/prepare_data', 'coco-and-ade20k'),
    'ADE20KDataset': doc('user_guides/prepare_data', 'coco-and-ade20k'),
}

__all__ = ['BAD_IMAGES', 'DOCS', 'OWN_ENVIRONMENT', 'PREPARE_DATA', 'doc']
