# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""How well class activation maps find the object: for each method, the
map's mean per foreground pixel over its mean per background pixel, over
the first images of each class folder that the model classifies right.

Foreground is where the image is brighter than ``--threshold`` (light
objects on a dark background, like the digits). The median ratio and the
share of images above 1 are printed per method: 1 means the map does not
know where the object is. The LayerCAM and Grad-CAM figures of the
visualisation guide (docs/en/useful_tools/visualization.md) on the Quick
start's model come from the example below.

Example:
    python tools/analysis_tools/cam_localization.py \\
        configs/dynamixer/dynamixer-tiny_1xb64_digits.py \\
        work_dirs/dynamixer-tiny_1xb64_digits/best_accuracy_top1_epoch_15.pth \\
        data/digits/test
"""
import argparse

import numpy as np
from mmengine.config import DictAction

import mmdynamixer  # noqa: F401 registers DynaMixer
from mmdynamixer.utils.tool_utils import load_config
from mmdynamixer.visualization import (CAM_METHODS, cam_localization,
                                       check_method, init_classifier,
                                       labelled_images, target_layer)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint of the config\'s model')
    parser.add_argument('image_root', help='folder of class folders of '
                        'images (ROOT/<class>/*.png)')
    parser.add_argument('--per-class', type=int, default=5,
                        help='images per class, the first by name '
                        '(default: 5)')
    parser.add_argument('--methods', nargs='+', default=list(CAM_METHODS),
                        help=f'among {", ".join(CAM_METHODS)} (default: '
                        'both)')
    parser.add_argument('--target-layers', default=None,
                        help='DynaMixer layer, e.g. "backbone.stages.1.1" '
                        '(default: the last one)')
    parser.add_argument('--threshold', type=float, default=96,
                        help='foreground: mean pixel value above this '
                        '(default: 96, of 255)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    methods = [check_method(m) for m in args.methods]
    if args.per_class < 1:
        raise ValueError(f'--per-class must be at least 1, got '
                         f'{args.per_class}.')
    cfg = load_config(args)
    model = init_classifier(cfg, args.checkpoint)
    name, layer = target_layer(model, args.target_layers)
    classes = (getattr(model, '_dataset_meta', None) or {}).get('classes')
    if not classes:
        classes = [str(i) for i in range(model.head.num_classes)]
    images = labelled_images(args.image_root, classes, args.per_class)
    results = cam_localization(cfg, model, images, name, layer, methods,
                               args.threshold)
    print(f'Class activation maps at {name} on {args.image_root} (first '
          f'{args.per_class} images per class; foreground: pixels brighter '
          f'than {args.threshold:g}); mean per foreground pixel / mean per '
          'background pixel, over the images classified right:')
    for method, r in results.items():
        ratios = np.array(r['ratios'])
        above = int((ratios > 1).sum())
        median = float(np.median(ratios)) if len(ratios) else float('nan')
        print(f'{method}: {r["correct"]} of {r["total"]} classified right; '
              f'median {median:.2f}x, above 1 on {above} of {len(ratios)} '
              f'({above / max(len(ratios), 1):.0%})')


if __name__ == '__main__':
    main()
