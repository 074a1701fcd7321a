# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""Parameters, FLOPs and CPU inference time of detection and segmentation
configs, each beside the ResNet-50 model of the stock config it is based on,
measured by the same code in the same run.

The input sizes are those that detection and segmentation papers count
FLOPs at: 1280 x 800 (W x H) for COCO detectors, 512 x 512 for ADE20K
segmenters. FLOPs are counted by ``mmengine.analysis`` (one fused
multiply-add = one FLOP, as fvcore, MMDetection and MMSegmentation count)
over the model's ``mode='tensor'`` forward: backbone, neck and heads,
without post-processing (NMS, resizing). A two-stage detector runs its RoI
heads on the RPN's proposals (up to 1000, and the mask head on the first
100), so its figure depends on the input: the tool feeds a fixed image from
a seeded generator into a model initialised from a fixed seed, so that a
rerun counts exactly the same. Time is the median of ``--repeat`` forward
passes of that image, on this machine's CPU threads; compare the ratio to
the ResNet-50 row, not the milliseconds across machines.

Example:
    python tools/analysis_tools/dense_complexity.py \\
        configs/dynamixer_detection/*.py configs/dynamixer_segmentation/*.py
"""
import argparse
import ast
import statistics
import time

import torch
import torch.nn as nn
from mmengine.analysis import get_model_complexity_info
from mmengine.config import Config
from mmengine.hub import get_config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import MODELS, init_default_scope

import mmdynamixer  # noqa: F401 registers DynaMixer

# (H, W) of the inputs that published tables count FLOPs at
INPUT_SIZES = {'mmdet': (800, 1280), 'mmseg': (512, 512)}
SEED = 0


def stock_base(path: str) -> str:
    """The ``_base_`` config that ``path`` swaps its backbone into."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                getattr(t, 'id', None) == '_base_' for t in node.targets):
            base = ast.literal_eval(node.value)
            return base if isinstance(base, str) else base[0]
    raise ValueError(f'{path} has no _base_ config to compare against.')


class TensorMode(nn.Module):
    """``model(inputs, data_samples, mode='tensor')`` as ``forward(x)``, the
    form that FLOP counters trace."""

    def __init__(self, model, data_samples):
        super().__init__()
        self.model = model
        self.data_samples = data_samples

    def forward(self, inputs):
        return self.model(inputs, self.data_samples, mode='tensor')


def data_samples(scope: str, hw: tuple):
    meta = dict(img_shape=hw, ori_shape=hw, pad_shape=hw,
                batch_input_shape=hw, scale_factor=(1., 1.))
    if scope == 'mmdet':
        from mmdet.structures import DetDataSample
        return [DetDataSample(metainfo=meta)]
    from mmseg.structures import SegDataSample
    return [SegDataSample(metainfo=meta)]


def build_model(cfg: Config):
    """The config's model with the weights of a fixed seed (nothing is
    loaded: only shapes and FLOPs matter here), in eval mode."""
    init_default_scope(cfg.default_scope)
    cfg.model.pop('pretrained', None)
    if 'init_cfg' in cfg.model.backbone:
        cfg.model.backbone.init_cfg = None
    torch.manual_seed(SEED)
    model = MODELS.build(cfg.model)
    return revert_sync_batchnorm(model).eval()


def measure(path: str, repeat: int, hw: tuple = None,
            cfg_options: dict = None) -> dict:
    """Parameters, FLOPs and CPU time of the model of the config ``path``
    (with ``cfg_options`` merged in) at the input size ``hw`` (H, W; by
    default :data:`INPUT_SIZES` of its library)."""
    cfg = get_config(path) if '::' in path else Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    scope = cfg.default_scope
    if scope not in INPUT_SIZES:
        raise ValueError(f'{path}: default_scope {scope!r} is not one of '
                         f'{sorted(INPUT_SIZES)} (detection or segmentation).')
    hw = hw or INPUT_SIZES[scope]
    model = build_model(cfg)
    generator = torch.Generator().manual_seed(SEED)
    image = torch.rand(1, 3, *hw, generator=generator) * 255
    inputs = model.data_preprocessor({
        'inputs': [image[0]],
        'data_samples': data_samples(scope, hw)})['inputs']
    traced = TensorMode(model, data_samples(scope, tuple(inputs.shape[-2:])))
    with torch.no_grad():
        flops = get_model_complexity_info(
            traced, inputs=(inputs, ), show_table=False,
            show_arch=False)['flops']
        times = []
        if repeat:
            traced(inputs)  # warm-up
        for _ in range(repeat):
            start = time.perf_counter()
            traced(inputs)
            times.append(time.perf_counter() - start)
    return dict(
        config=path, model=type(model).__name__,
        backbone=type(model.backbone).__name__,
        params_backbone=sum(p.numel() for p in model.backbone.parameters()),
        params=sum(p.numel() for p in model.parameters()),
        flops=flops, input=f'{hw[1]}x{hw[0]}',
        ms=1000 * statistics.median(times) if times else None)


def markdown(rows) -> str:
    lines = ['| config | backbone | params: backbone / model (M) | FLOPs (G) '
             '| input (W x H) | CPU ms / image | time / R-50 |',
             '|---|---|---|---|---|---|---|']
    for ours, stock in rows:
        timed = ours['ms'] is not None
        for row, ratio in ((ours, ours['ms'] / stock['ms'] if timed else 0),
                           (stock, 1.)):
            time_cells = f"{row['ms']:.0f} | {ratio:.2f}x" if timed else \
                '- | -'
            lines.append(
                f"| `{row['config']}` | {row['backbone']} | "
                f"{row['params_backbone'] / 1e6:.2f} / "
                f"{row['params'] / 1e6:.2f} | {row['flops'] / 1e9:.2f} | "
                f"{row['input']} | {time_cells} |")
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('configs', nargs='+',
                        help='detection or segmentation configs')
    parser.add_argument('--repeat', type=int, default=3,
                        help='timed forward passes per model (the median '
                        'is printed; 0: params and FLOPs only)')
    parser.add_argument('--threads', type=int, default=None,
                        help='CPU threads (default: torch\'s)')
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for path in args.configs:
        # the stock model right after ours, so both see the same machine
        rows.append((measure(path, args.repeat),
                     measure(stock_base(path), args.repeat)))
    print(f'torch {torch.__version__}, {torch.get_num_threads()} CPU '
          'threads')
    print(markdown(rows))


if __name__ == '__main__':
    main()
