# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""Class activation map (LayerCAM or Grad-CAM) of a DynaMixer classifier on
one image.

MMPretrain's ``tools/visualization/vis_cam.py`` (through pytorch-grad-cam)
expects ``(B, C, H, W)`` feature maps; DynaMixer's layers give channels-last
``(B, H, W, C)`` token grids. This tool takes the same arguments as
MMPretrain's (``img config checkpoint``, ``--target-layers``,
``--method``, ``--target-category``, ``--save-path``, ``--show``) and
computes the map for that layout itself
(:mod:`mmdynamixer.visualization.grad_cam`), with the last DynaMixer layer
as the default target and LayerCAM as the default method (Grad-CAM's
grid-mean channel weights lose the position in a model that mixes whole
rows and columns; see that module). Any image size the model takes; the
image is shown as the config's test pipeline feeds it.

Example:
    python tools/visualization/vis_cam.py data/digits/test/3/0023.png \\
        configs/dynamixer/dynamixer-tiny_1xb64_digits.py \\
        work_dirs/dynamixer-tiny_1xb64_digits/best_accuracy_top1_epoch_15.pth \\
        --save-path cam.png
"""
import argparse
import os.path as osp

from mmengine.config import DictAction

import mmdynamixer  # noqa: F401 registers DynaMixer
from mmdynamixer.utils.tool_utils import load_config
from mmdynamixer.visualization import (CAM_METHODS, cam_figure, cam_on_image,
                                       check_method, grad_cam,
                                       init_classifier, pipeline_image,
                                       save_or_show, target_layer,
                                       token_pixels)

METHOD_TITLES = dict(layercam='LayerCAM', gradcam='Grad-CAM')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('img', help='image file')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint of the config\'s model')
    parser.add_argument('--target-layers', default=None,
                        help='module name of the target layer, e.g. '
                        '"backbone.stages.1.1" (default: the last DynaMixer '
                        'layer)')
    parser.add_argument('--method', default='layercam',
                        help=f'{" or ".join(CAM_METHODS)} (default: '
                        'layercam)')
    parser.add_argument('--target-category', type=int, default=None,
                        help='class to explain (default: the predicted one)')
    parser.add_argument('--save-path', default=None,
                        help='PNG to write (default: IMG-cam.png in the '
                        'current dir)')
    parser.add_argument('--show', action='store_true',
                        help='show the figure in a window instead')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    method = check_method(args.method)
    cfg = load_config(args)
    model = init_classifier(cfg, args.checkpoint)
    name, layer = target_layer(model, args.target_layers)
    image, inputs = pipeline_image(cfg, model, args.img)
    cam, category, score = grad_cam(model, inputs, layer,
                                    args.target_category, method)
    up = cam_on_image(cam, image.shape[:2], token_pixels(model, name))
    up = up.numpy()
    classes = (getattr(model, '_dataset_meta', None) or {}).get('classes')
    label = classes[category] if classes else category
    title = METHOD_TITLES[method]
    fig = cam_figure(image, up, f'{osp.basename(args.img)}: class {label} '
                     f'({score:.1%}), {name}', title)
    out = args.save_path or \
        f'{osp.splitext(osp.basename(args.img))[0]}-cam.png'
    save_or_show(fig, out, args.show)
    if not args.show:
        print(f'Wrote {out}: {title} of class {label} ({score:.1%}) at '
              f'{name}')


if __name__ == '__main__':
    main()
