# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""How much of a class activation map falls on the object, over a folder of
labelled images: the map's mean per foreground pixel over its mean per
background pixel, for the images the model classifies right.

Foreground is where the image is brighter than a threshold (light objects
on a dark background, like scikit-learn's digits). A ratio above 1 means
the map weighs the object more than its surroundings; a map that ignores
where the object is gives about 1.
"""
import glob
import os.path as osp
from typing import Dict, Sequence

import numpy as np

from .grad_cam import cam_on_image, grad_cam, token_pixels
from .model_input import pipeline_image

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp')


def labelled_images(root: str, classes: Sequence[str],
                    per_class: int) -> list:
    """``(path, class index)`` of the first ``per_class`` images (sorted by
    name) of each class folder ``root/<class>/`` (MMPretrain's
    CustomDataset layout); ``classes`` gives the model's class order."""
    if not osp.isdir(root):
        raise FileNotFoundError(
            f'Image folder not found: {root}. It should hold one folder of '
            'images per class (ROOT/<class>/*.png), e.g. data/digits/test '
            'after tools/dataset_converters/prepare_digits.py.')
    folders = sorted(d for d in glob.glob(osp.join(root, '*'))
                     if osp.isdir(d))
    unknown = [osp.basename(d) for d in folders
               if osp.basename(d) not in classes]
    if not folders or unknown:
        raise ValueError(
            f'{root} should hold one folder per class of the model, named '
            f'{", ".join(classes[:10])}{" ..." if len(classes) > 10 else ""}'
            f'; found {", ".join(unknown) if unknown else "no folders"}.')
    images = []
    for folder in folders:
        paths = sorted(p for p in glob.glob(osp.join(folder, '*'))
                       if p.lower().endswith(IMAGE_EXTENSIONS))
        label = list(classes).index(osp.basename(folder))
        images += [(p, label) for p in paths[:per_class]]
    if not images:
        raise ValueError(f'No images ({", ".join(IMAGE_EXTENSIONS)}) in the '
                         f'class folders of {root}.')
    return images


def foreground_ratio(cam: np.ndarray, image: np.ndarray,
                     threshold: float) -> float:
    """Mean of ``cam`` ``(h, w)`` on pixels of ``image`` ``(h, w, 3)``
    brighter than ``threshold`` over its mean on the others (NaN when the
    image has no foreground or no background)."""
    foreground = image.mean(-1) > threshold
    if foreground.all() or not foreground.any():
        return float('nan')
    return float(cam[foreground].mean() / max(cam[~foreground].mean(), 1e-6))


def cam_localization(cfg, model, images: Sequence[tuple], layer_name: str,
                     layer, methods: Sequence[str],
                     threshold: float) -> Dict[str, dict]:
    """For each method, ``dict(ratios, correct, total)``: the foreground
    ratio of each image of ``images`` (``(path, label)``) that the model
    classifies right, and the counts."""
    results = {m: dict(ratios=[], correct=0, total=len(images))
               for m in methods}
    pixels = token_pixels(model, layer_name)
    for path, label in images:
        image, inputs = pipeline_image(cfg, model, path)  # once per image
        for method in methods:
            cam, category, _ = grad_cam(model, inputs, layer, method=method)
            if category != label:
                continue
            results[method]['correct'] += 1
            up = cam_on_image(cam, image.shape[:2], pixels).numpy()
            ratio = foreground_ratio(up, image, threshold)
            if not np.isnan(ratio):
                results[method]['ratios'].append(ratio)
    return results
