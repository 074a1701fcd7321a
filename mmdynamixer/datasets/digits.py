# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""The embedded default data set: scikit-learn's handwritten digits.

scikit-learn ships 1,797 real 8x8 scans of handwritten digits (UCI ML
hand-written digits, 10 classes), so they need no download. This writes them
as PNG files in MMPretrain's ``CustomDataset`` folder layout
(``<split>/<class>/<index>.png``), split by a fixed seed and stratified by
class into train / val / test.
"""
import os
import os.path as osp

import numpy as np

SPLITS = ('train', 'val', 'test')


def load_digit_splits(val_fraction: float = 0.1, test_fraction: float = 0.2,
                      seed: int = 0):
    """``(images, labels, split_of)``: scikit-learn's digits as ``uint8``
    8x8 images (0-255), their labels, and the split of each (``'train'``,
    ``'val'`` or ``'test'``), stratified by class with a fixed seed. The
    one source of the Quick start's splits (:func:`prepare_digits`) and of
    the digit scenes' (:mod:`.digit_scenes`)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255. / 16.)).astype(np.uint8)
    labels = digits.target
    rng = np.random.default_rng(seed)
    split_of = np.empty(len(labels), dtype=object)
    for cls in np.unique(labels):  # stratified: same class mix everywhere
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n_test = int(round(len(idx) * test_fraction))
        n_val = int(round(len(idx) * val_fraction))
        split_of[idx[:n_test]] = 'test'
        split_of[idx[n_test:n_test + n_val]] = 'val'
        split_of[idx[n_test + n_val:]] = 'train'
    return images, labels, split_of


def prepare_digits(root: str, val_fraction: float = 0.1,
                   test_fraction: float = 0.2, seed: int = 0) -> dict:
    """Write the digits to ``root`` and return the image count per split.

    Safe to re-run: files are rewritten identically, and a re-run with
    another seed removes each image's copy from the split it left, so that
    no image is ever in two splits.
    """
    import cv2

    images, labels, split_of = load_digit_splits(val_fraction, test_fraction,
                                                 seed)
    counts = dict.fromkeys(SPLITS, 0)
    for i, (image, label, split) in enumerate(zip(images, labels, split_of)):
        folder = osp.join(root, split, str(label))
        os.makedirs(folder, exist_ok=True)
        if not cv2.imwrite(osp.join(folder, f'{i:04d}.png'), image):
            raise OSError(f'Could not write images to {folder}')
        for other in SPLITS:  # from an earlier run with another seed
            stale = osp.join(root, other, str(label), f'{i:04d}.png')
            if other != split and osp.exists(stale):
                os.remove(stale)
        counts[split] += 1
    return counts
