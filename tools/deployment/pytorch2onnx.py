# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""Export the classifier of a config (and checkpoint) to ONNX, and check the
ONNX model against PyTorch with onnxruntime.

The graph takes ``input`` (N, 3, H, W), normalised as in the config's data
preprocessor, and returns the class scores ``scores`` (N, classes), before
the softmax. The batch size is dynamic; the image size is the backbone's
``img_size`` (the fixed-size model accepts nothing else).

It uses PyTorch's TorchScript-based exporter (``dynamo=False``): the
torch.export-based one needs ``onnxscript``, which the stack does not
install.

Example:
    python tools/deployment/pytorch2onnx.py \\
        configs/dynamixer/dynamixer-s_8xb256_in1k.py \\
        --checkpoint dynamixer-s.pth --output-file dynamixer-s.onnx --verify
"""
import argparse
import os.path as osp
import warnings

import numpy as np
import torch
import torch.nn as nn
from mmengine.config import DictAction
from mmengine.registry import init_default_scope

import mmdynamixer  # noqa: F401 registers DynaMixer
from mmdynamixer.utils import load_pretrained
from mmdynamixer.utils.tool_utils import backbone_input_size, load_config
from mmdynamixer.utils.torch_features import onnx_export_kwargs


class ScoresOnly(nn.Module):
    """An mmpretrain classifier as a plain ``images -> scores`` module."""

    def __init__(self, classifier):
        super().__init__()
        self.classifier = classifier

    def forward(self, x):
        return self.classifier(x, mode='tensor')


def build_classifier(cfg, checkpoint=None):
    from mmpretrain.registry import MODELS
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    model = MODELS.build(cfg.model)
    if checkpoint:  # read safely, and it must fit exactly
        load_pretrained(model, dict(checkpoint=checkpoint))
    else:
        warnings.warn('No --checkpoint: exporting randomly initialised '
                      'weights.')
    return ScoresOnly(model).eval()


def export(model, path, shape, batch_size=1, opset=17):
    x = torch.randn(batch_size, 3, *shape)
    with warnings.catch_warnings():
        # the tracer notes the input-size check it freezes: the graph is
        # built for this image size, as the fixed-size model is
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        warnings.simplefilter('ignore', DeprecationWarning)
        torch.onnx.export(model, (x, ), path, **onnx_export_kwargs(),
                          input_names=['input'], output_names=['scores'],
                          dynamic_axes={'input': {0: 'batch'},
                                        'scores': {0: 'batch'}},
                          opset_version=opset)


def verify(model, path, shape, batch_size=2, seed=0):
    """Max absolute difference of the ONNX model's scores from PyTorch's on
    a random batch (a different batch size than the export's)."""
    import onnxruntime as ort
    x = torch.randn(batch_size, 3, *shape,
                    generator=torch.Generator().manual_seed(seed))
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    scores = session.run(None, {'input': x.numpy()})[0]
    with torch.no_grad():
        expected = model(x).numpy()
    return float(np.abs(scores - expected).max())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config file')
    parser.add_argument('--checkpoint', help='checkpoint to export')
    parser.add_argument('--output-file', default=None,
                        help='default: <config name>.onnx')
    parser.add_argument('--opset', type=int, default=17)
    parser.add_argument('--verify', action='store_true',
                        help='compare with PyTorch in onnxruntime')
    parser.add_argument('--tolerance', type=float, default=1e-4,
                        help='largest accepted difference with --verify')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(argv)
    cfg = load_config(args)
    output = args.output_file or \
        osp.splitext(osp.basename(args.config))[0] + '.onnx'
    model = build_classifier(cfg, args.checkpoint)
    shape = backbone_input_size(cfg)
    export(model, output, shape, opset=args.opset)
    print(f'Exported {args.config} to {output} (input N x 3 x {shape[0]} x '
          f'{shape[1]}, dynamic N).')
    if args.verify:
        diff = verify(model, output, shape)
        print(f'onnxruntime vs PyTorch: max abs difference {diff:.3g} '
              f'(tolerance {args.tolerance:g})')
        if not diff <= args.tolerance:
            raise SystemExit(f'The ONNX model differs from PyTorch by {diff:.3g}'
                             f' > {args.tolerance:g}.')


if __name__ == '__main__':
    main()
