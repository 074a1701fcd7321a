# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""The embedded dense data set: scenes composed of scikit-learn's handwritten
digit scans, for detection and segmentation with no download.

Each scene is a dark canvas of one of several sizes (all larger than the
Quick start's 32 px input, some not multiples of any backbone stride) with
a few digits at several scales, some touching, some cut by the border, on a
noisy background with stray strokes. A scene of the train, val or test
split uses only digits of the Quick start's split of the same name
(:func:`~.digits.load_digit_splits`), so no test digit was seen in
pretraining.

Layout under ``root`` (the stock layouts of MMDetection's ``CocoDataset``
and MMSegmentation's ``BaseSegDataset``)::

    images/{train,val,test}/00000.png        grey scans, 0 background
    annotations/instances_{train,val,test}.json   COCO: boxes, RLE masks
    seg/{train,val,test}/00000.png           labels: 0 background, d + 1

A digit cut so much by the border that less than :data:`MIN_VISIBLE` of it
is left is marked ``iscrowd=1`` (ignored by COCO training and evaluation);
its pixels still carry its class in the label maps.
"""
import json
import os
import os.path as osp

import numpy as np

from .digits import SPLITS, load_digit_splits

# canvas (height, width): all above 32 px; 70, 90 and 58 are multiples of
# neither 4, 7 nor 8
CANVAS_SIZES = ((64, 64), (72, 96), (90, 70), (96, 96), (58, 84))
DIGIT_SIDES = (14, 34)  # the side of a pasted digit, in px (inclusive)
MIN_VISIBLE = 0.6
NUM_SCENES = dict(train=600, val=100, test=200)
CLASSES = tuple(str(d) for d in range(10))


def _paste(canvas, owner, glyph, top, left, index):
    """Paste ``glyph`` (its top-left at ``(top, left)``, possibly outside)
    onto ``canvas`` by maximum; ``owner`` records which glyph is the
    brightest at each pixel (``index``). Returns the visible fraction."""
    h, w = canvas.shape
    gh, gw = glyph.shape
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + gh, h), min(left + gw, w)
    if y1 <= y0 or x1 <= x0:
        return 0.
    part = glyph[y0 - top:y1 - top, x0 - left:x1 - left]
    region = canvas[y0:y1, x0:x1]
    mine = part > region
    region[mine] = part[mine]
    owner[y0:y1, x0:x1][mine & (part > 0)] = index
    ink = (glyph > 0).sum()
    return float((part > 0).sum()) / max(int(ink), 1)


def make_scene(rng, digits: list):
    """One scene from ``digits`` (a list of ``(image, label)`` 8x8 scans):
    ``(image, label_map, instances)``, each instance a dict with
    ``label``, ``mask`` (bool, visible pixels) and ``crowd``."""
    import cv2

    h, w = CANVAS_SIZES[rng.integers(len(CANVAS_SIZES))]
    canvas = np.zeros((h, w), np.float32)
    owner = np.full((h, w), -1, np.int32)
    placed, boxes = [], []
    n_full = int(rng.integers(2, 6))
    n_cut = int(rng.integers(0, 3))
    for k in range(n_full + n_cut):
        image, label = digits[int(rng.integers(len(digits)))]
        side = int(rng.integers(DIGIT_SIDES[0], DIGIT_SIDES[1] + 1))
        glyph = cv2.resize(image.astype(np.float32), (side, side),
                           interpolation=cv2.INTER_LINEAR)
        glyph[glyph < 40] = 0  # the scans' faint halo is background
        for _ in range(50):
            if k < n_full:  # inside, overlapping others by little at most
                top = int(rng.integers(0, h - side + 1))
                left = int(rng.integers(0, w - side + 1))
                box = (top, left, top + side, left + side)
                if all(_overlap(box, b) < 0.15 for b in boxes):
                    break
            else:  # cut by a border
                top = int(rng.integers(-side // 2, h - side // 2))
                left = int(rng.integers(-side // 2, w - side // 2))
                box = (top, left, top + side, left + side)
                if not (0 <= top and top + side <= h and 0 <= left and
                        left + side <= w):
                    break
        boxes.append(box)
        visible = _paste(canvas, owner, glyph, top, left, len(placed))
        placed.append((label, visible))
    for _ in range(int(rng.integers(1, 4))):  # stray strokes
        p = rng.integers(0, [w, h], size=(2, 2))
        cv2.line(canvas, tuple(map(int, p[0])), tuple(map(int, p[1])),
                 float(rng.integers(60, 200)), int(rng.integers(1, 3)))
    # background: a gentle gradient and noise
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    slope = rng.uniform(-0.3, 0.3, size=2)
    image = canvas + 20 + slope[0] * yy + slope[1] * xx + \
        rng.normal(0, 12, size=(h, w))
    image = np.clip(np.round(image), 0, 255).astype(np.uint8)

    label_map = np.zeros((h, w), np.uint8)
    instances = []
    for index, (label, visible) in enumerate(placed):
        mask = owner == index
        if not mask.any():
            continue
        label_map[mask] = label + 1
        instances.append(dict(label=int(label), mask=mask,
                              crowd=visible < MIN_VISIBLE))
    return image, label_map, instances


def _overlap(a, b):
    """Intersection over the smaller of two boxes ``(y0, x0, y1, x1)``."""
    dy = min(a[2], b[2]) - max(a[0], b[0])
    dx = min(a[3], b[3]) - max(a[1], b[1])
    if dy <= 0 or dx <= 0:
        return 0.
    return dy * dx / min((a[2] - a[0]) * (a[3] - a[1]),
                         (b[2] - b[0]) * (b[3] - b[1]))


def _coco_annotation(instance, image_id, ann_id):
    from pycocotools import mask as mask_util

    mask = instance['mask']
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle['counts'] = rle['counts'].decode('ascii')
    return dict(id=ann_id, image_id=image_id,
                category_id=instance['label'] + 1,
                bbox=[x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1],
                area=int(mask.sum()), iscrowd=int(instance['crowd']),
                segmentation=rle)


def prepare_digit_scenes(root: str, seed: int = 0, num_scenes=None,
                         digit_seed: int = 0) -> dict:
    """Write the digit scenes under ``root`` (layout in the module's
    docstring) and return the number of scenes per split.

    Args:
        root (str): The folder to write (created; files rewritten).
        seed (int): The seed of the scenes. Defaults to 0.
        num_scenes (dict, optional): Scenes per split. Defaults to
            :data:`NUM_SCENES`.
        digit_seed (int): The seed of the digits' split; 0, the Quick
            start's, keeps its test digits out of every training scene.
    """
    import cv2
    try:
        import pycocotools  # noqa: F401 the masks' RLE encoding
    except ImportError as err:
        raise ImportError(
            'prepare_digit_scenes needs pycocotools for the COCO masks '
            '(MMDetection installs it): `pip install ".[det]"` from the '
            'clone, or `pip install pycocotools`.') from err

    num_scenes = dict(NUM_SCENES, **(num_scenes or {}))
    images, labels, split_of = load_digit_splits(seed=digit_seed)
    categories = [dict(id=d + 1, name=name) for d, name in enumerate(CLASSES)]
    for s, split in enumerate(SPLITS):
        digits = [(images[i], labels[i])
                  for i in np.flatnonzero(split_of == split)]
        for sub in ('images', 'seg'):
            os.makedirs(osp.join(root, sub, split), exist_ok=True)
        os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
        coco = dict(images=[], annotations=[], categories=categories)
        for n in range(num_scenes[split]):
            rng = np.random.default_rng([seed, s, n])
            image, label_map, instances = make_scene(rng, digits)
            name = f'{n:05d}.png'
            for sub, array in (('images', image), ('seg', label_map)):
                path = osp.join(root, sub, split, name)
                if not cv2.imwrite(path, array):
                    raise OSError(f'Could not write {path}')
            coco['images'].append(dict(id=n, file_name=name,
                                       height=image.shape[0],
                                       width=image.shape[1]))
            for instance in instances:
                coco['annotations'].append(_coco_annotation(
                    instance, n, len(coco['annotations']) + 1))
        with open(osp.join(root, 'annotations', f'instances_{split}.json'),
                  'w') as f:
            json.dump(coco, f)
    return {split: num_scenes[split] for split in SPLITS}


__all__ = ['CANVAS_SIZES', 'CLASSES', 'NUM_SCENES', 'make_scene',
           'prepare_digit_scenes']
