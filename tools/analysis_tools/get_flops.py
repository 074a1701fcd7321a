# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""Count the parameters and FLOPs of the model of a config.

FLOPs are counted by ``mmengine.analysis`` over the whole classifier
(backbone and head), as the published numbers are (the
authors' reference implementation counted the same way).

Example:
    python tools/analysis_tools/get_flops.py \\
        configs/dynamixer/dynamixer-s_8xb256_in1k.py
"""
import argparse

import torch
from mmengine.analysis import get_model_complexity_info
from mmengine.config import DictAction
from mmengine.registry import init_default_scope

import mmdynamixer  # noqa: F401 registers DynaMixer
from mmdynamixer.utils.tool_utils import backbone_input_size, load_config


def complexity(cfg, shape):
    from mmpretrain.registry import MODELS
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    model = MODELS.build(cfg.model).eval()
    with torch.no_grad():
        info = get_model_complexity_info(
            model, inputs=(torch.zeros(1, *shape), ), show_table=False,
            show_arch=False)
    return model, info


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config file')
    parser.add_argument('--shape', type=int, nargs='+', default=None,
                        help='input size (H W); default: the backbone img_size')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(argv)
    cfg = load_config(args)
    if args.shape:
        hw = args.shape * 2 if len(args.shape) == 1 else args.shape
    else:
        hw = backbone_input_size(cfg)
    model, info = complexity(cfg, (3, *hw))
    params = sum(p.numel() for p in model.parameters())
    print('=' * 40)
    print(f'Input shape: (3, {hw[0]}, {hw[1]})')
    print(f'Flops: {info["flops_str"]} ({info["flops"]:,})')
    print(f'Params: {params:,} ({info["params_str"]})')
    print('=' * 40)


if __name__ == '__main__':
    main()
