# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""Convert a reference-implementation DynaMixer checkpoint to mmdynamixer.

The source may be a raw state dict or one wrapped in ``state_dict`` /
``state_dict_ema`` (timm's training script) with or without DDP's
``module.`` prefix. The architecture is inferred from the tensor shapes and
the result is checked strictly against a model built with it.

Example:
    python tools/model_converters/dynamixer_to_mmpretrain.py \\
        dynamixer_s_official.pth dynamixer-s_in1k.pth --arch s
"""
import argparse
import os
import os.path as osp

import torch

from mmdynamixer.apis import convert_official_file


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='reference checkpoint')
    parser.add_argument('dst', help='output checkpoint (mmdynamixer keys)')
    parser.add_argument('--ema', action='store_true',
                        help='convert state_dict_ema instead of state_dict')
    parser.add_argument('--arch', help='require this published arch '
                        '(s, m, l), to catch a checkpoint of another model')
    args = parser.parse_args(argv)
    state, settings = convert_official_file(args.src, ema=args.ema,
                                            arch=args.arch)
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    torch.save({'state_dict': state,
                'meta': {'converted_from': osp.basename(args.src),
                         'settings': settings}}, args.dst)
    print(f'Converted {len(state)} tensors to {args.dst}: {settings}')


if __name__ == '__main__':
    main()
