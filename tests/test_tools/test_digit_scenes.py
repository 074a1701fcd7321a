"""The digit scenes: deterministic by seed, in the stock COCO and
MMSegmentation layouts that MMDetection's CocoDataset and MMSegmentation's
BaseSegDataset read, with the Quick start's digit splits kept apart."""
import json
import os.path as osp

import cv2
import numpy as np
import pytest

from mmdynamixer.datasets.digit_scenes import (CANVAS_SIZES, make_scene,
                                               prepare_digit_scenes)
from mmdynamixer.datasets.digits import load_digit_splits
from mmdx_testing import run_tool

SMALL = dict(train=12, val=4, test=6)


@pytest.fixture(scope='module')
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp('scenes')
    assert prepare_digit_scenes(str(root), num_scenes=SMALL) == SMALL
    return root


def test_same_seed_same_files_other_seed_other_scenes(scenes, tmp_path):
    prepare_digit_scenes(str(tmp_path / 'again'), num_scenes=SMALL)
    prepare_digit_scenes(str(tmp_path / 'other'), seed=1, num_scenes=SMALL)
    for split, n in SMALL.items():
        for i in range(n):
            name = osp.join('images', split, f'{i:05d}.png')
            assert (scenes / name).read_bytes() == \
                (tmp_path / 'again' / name).read_bytes()
    assert (scenes / 'images/train/00000.png').read_bytes() != \
        (tmp_path / 'other' / 'images/train/00000.png').read_bytes()


def test_label_maps_and_coco_masks_agree(scenes):
    from pycocotools import mask as mask_util
    for split, n in SMALL.items():
        coco = json.load(open(scenes / 'annotations' /
                              f'instances_{split}.json'))
        assert [c['name'] for c in coco['categories']] == \
            [str(d) for d in range(10)]
        assert len(coco['images']) == n
        for image in coco['images']:
            assert (image['height'], image['width']) in CANVAS_SIZES
            labels = cv2.imread(str(scenes / 'seg' / split /
                                    image['file_name']), 0)
            assert labels.shape == (image['height'], image['width'])
            rebuilt = np.zeros_like(labels)
            for ann in coco['annotations']:
                if ann['image_id'] != image['id']:
                    continue
                mask = mask_util.decode(ann['segmentation']).astype(bool)
                x, y, w, h = ann['bbox']
                ys, xs = np.nonzero(mask)
                assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == \
                    (x, y, x + w, y + h)
                assert ann['area'] == mask.sum()
                assert not rebuilt[mask].any()  # instances do not overlap
                rebuilt[mask] = ann['category_id']
            assert np.array_equal(rebuilt, labels)


def test_scenes_use_only_the_digits_of_their_split():
    """Every pasted scan comes from the list of its split: a scene made
    from the test digits alone holds nothing else (the generator is given
    only those), and the three lists are the Quick start's, disjoint."""
    images, labels, split_of = load_digit_splits()
    assert set(split_of) == {'train', 'val', 'test'}
    quick = {s: {i for i in range(len(labels)) if split_of[i] == s}
             for s in ('train', 'val', 'test')}
    assert not (quick['train'] & quick['test'])
    # one class only in the list: every instance has that class
    only_sevens = [(images[i], 7) for i in sorted(quick['test'])
                   if labels[i] == 7]
    _, label_map, instances = make_scene(np.random.default_rng(0),
                                         only_sevens)
    assert instances and {i['label'] for i in instances} == {7}
    assert set(np.unique(label_map)) <= {0, 8}


def test_the_tool_writes_the_scenes(tmp_path):
    out = run_tool('tools/dataset_converters/prepare_digit_scenes.py',
                   str(tmp_path / 'scenes'), '--seed', '3').stdout
    assert out.startswith('Wrote 900 digit scenes to ')
    assert osp.isfile(tmp_path / 'scenes' / 'annotations' /
                      'instances_test.json')
