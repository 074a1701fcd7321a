# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""Draw what a DynaMixer layer mixes on one image.

The image is shown as the config's test pipeline feeds it to the model.
For each token of ``--tokens``, the weights with which the layer's column op
and row op mix the other tokens into it are drawn over the image, one value
per token, with the token outlined; then the full mixing matrices of the
first token's column and row, and the layer's branch weights (h, w, c).
Weights are averaged over the op's segments, or of one with ``--segment``.
Works for fixed-size and sliding-window models (each output token's
weights are placed at its window's input positions).

Example:
    python tools/visualization/vis_mixing.py \\
        configs/dynamixer/dynamixer-tiny_1xb64_digits.py \\
        work_dirs/dynamixer-tiny_1xb64_digits/best_accuracy_top1_epoch_15.pth \\
        data/digits/test/3/0023.png --stage 0 --layer 0 --tokens 3,3 1,5
"""
import argparse
import os.path as osp

import torch
from mmengine.config import DictAction

import mmdynamixer  # noqa: F401 registers DynaMixer
from mmdynamixer.utils.tool_utils import load_config
from mmdynamixer.visualization import (check_tokens, init_classifier,
                                       layer_mixing, mixing_figure,
                                       pipeline_image, save_or_show)


def parse_token(text: str):
    try:
        r, c = (int(v) for v in text.split(','))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'a token is ROW,COL (e.g. 3,4), got {text!r}') from None
    return r, c


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint of the config\'s model')
    parser.add_argument('image', help='image file')
    parser.add_argument('--stage', type=int, default=0, help='stage index')
    parser.add_argument('--layer', type=int, default=0,
                        help='layer index within the stage')
    parser.add_argument('--tokens', type=parse_token, nargs='+',
                        default=None, help='ROW,COL of each token to draw '
                        '(default: the centre of the token grid)')
    parser.add_argument('--segment', type=int, default=None,
                        help='one segment of the ops (default: the mean '
                        'over segments)')
    parser.add_argument('--out-file', default=None,
                        help='PNG to write (default: '
                        'IMAGE-stageS-layerL-mixing.png in the current dir)')
    parser.add_argument('--show', action='store_true',
                        help='show the figure in a window instead')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args)
    model = init_classifier(cfg, args.checkpoint)
    image, inputs = pipeline_image(cfg, model, args.image)
    mixing = layer_mixing(model, inputs, args.stage, args.layer)
    H, W = mixing.grid
    tokens = check_tokens(args.tokens or [(H // 2, W // 2)], mixing.grid)
    segments = model.backbone.arch_settings['num_segments'][args.stage]
    if args.segment is not None and not 0 <= args.segment < segments:
        raise ValueError(f'--segment {args.segment} is out of range: the ops '
                         f'of stage {args.stage} have {segments} segments, '
                         f'valid are 0..{segments - 1}.')
    title = (f'{osp.basename(args.image)}: stage {args.stage}, layer '
             f'{args.layer}, {H}x{W} tokens')
    fig = mixing_figure(image, mixing, tokens, args.segment, title)
    out = args.out_file or (
        f'{osp.splitext(osp.basename(args.image))[0]}-stage{args.stage}-'
        f'layer{args.layer}-mixing.png')
    save_or_show(fig, out, args.show)
    if not args.show:
        print(f'Wrote {out}')


if __name__ == '__main__':
    with torch.no_grad():
        main()
