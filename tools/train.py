# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""Train a model from an MMEngine config (MMPretrain, MMDetection or
MMSegmentation: the config's ``default_scope`` decides)."""
import argparse

import torch
from mmengine.config import Config
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import mmdynamixer  # noqa: F401 registers DynaMixer, safe loading
from mmdynamixer.engine.hooks import Preempted
from mmdynamixer.utils import checkpoint_to_load, load_checkpoint_file
from mmdynamixer.utils.cpu_bf16 import cpu_bf16_support
from mmdynamixer.utils.tool_utils import (add_common_args,
                                          init_cpu_distributed,
                                          set_local_rank, setup_cfg,
                                          shutdown_distributed)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from the given checkpoint, or with no value (or "auto") '
        'from the latest checkpoint in the work dir')
    parser.add_argument(
        '--amp', action='store_true',
        help='mixed precision: AmpOptimWrapper on a GPU, bf16 autocast '
        '(CPUBf16OptimWrapper) on a CPU with bf16 instructions')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='do not evaluate checkpoints during training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate by the real batch size against '
        '`auto_scale_lr.base_batch_size`')
    parser.add_argument(
        '--no-pin-memory',
        action='store_true',
        help='do not pin memory in the dataloaders')
    parser.add_argument(
        '--no-persistent-workers',
        action='store_true',
        help='do not keep dataloader workers alive between epochs')
    add_common_args(parser)
    args = parser.parse_args(argv)
    set_local_rank(args)
    return args


# the settings only AmpOptimWrapper takes
AMP_ONLY_SETTINGS = ('loss_scale', 'dtype', 'use_fsdp')


def merge_args(cfg, args):
    """Apply the command-line switches to the config."""
    if args.amp:
        if cfg.optim_wrapper.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
            print('AMP is already enabled in the config.')
        else:
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg:
            raise ValueError('--auto-scale-lr needs `auto_scale_lr = dict('
                             'base_batch_size=...)` in the config.')
        cfg.auto_scale_lr.enable = True
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(name)
        if loader and args.no_pin_memory:
            loader['pin_memory'] = False
        if loader and args.no_persistent_workers:
            loader['persistent_workers'] = False
    cfg = setup_cfg(cfg, args)
    optim_wrapper = cfg.optim_wrapper
    if optim_wrapper.get('type', 'OptimWrapper') in ('OptimWrapper',
                                                     'mmengine.OptimWrapper'):
        # left by `optim_wrapper.type=OptimWrapper` on an AMP config
        for key in AMP_ONLY_SETTINGS:
            if optim_wrapper.pop(key, None) is not None:
                print(f'optim_wrapper is an OptimWrapper (float32): dropped '
                      f'its AMP setting {key!r}.')
    if optim_wrapper.get('type') == 'AmpOptimWrapper' and \
            not torch.cuda.is_available():
        amp_on_cpu(optim_wrapper, requested=args.amp)
    return cfg


def amp_on_cpu(optim_wrapper, requested: bool):
    """MMEngine's AmpOptimWrapper needs a GPU: on a CPU with bf16
    instructions, train in bf16 autocast (CPUBf16OptimWrapper); without
    them, in float32 (or stop, if --amp asked for mixed precision)."""
    supported, why = cpu_bf16_support()
    if not supported and requested:
        raise RuntimeError(
            f'--amp on a CPU trains in bf16, but {why}. Drop --amp to train '
            'in float32.')
    for key in AMP_ONLY_SETTINGS:
        optim_wrapper.pop(key, None)
    optim_wrapper.type = 'CPUBf16OptimWrapper' if supported else \
        'OptimWrapper'
    print('No GPU: optim_wrapper AmpOptimWrapper -> '
          + ('CPUBf16OptimWrapper: mixed precision in bf16 autocast on the '
             f'CPU ({why}).' if supported else
             f'OptimWrapper: float32, as {why}.'))


def check_resume_checkpoint(cfg):
    """Read the checkpoint to resume from before the runner touches the work
    dir, so that a corrupted one fails with a clear error and changes
    nothing."""
    path = checkpoint_to_load(cfg) if cfg.get('resume') else None
    if path:
        load_checkpoint_file(path)


def build_runner(argv=None):
    """The runner of the command line ``argv``, its model built."""
    args = parse_args(argv)
    cfg = merge_args(Config.fromfile(args.config), args)
    check_resume_checkpoint(cfg)
    init_cpu_distributed(cfg, args)
    return RUNNERS.build(cfg) if 'runner_type' in cfg else \
        Runner.from_cfg(cfg)


def main(argv=None):
    runner = build_runner(argv)
    try:
        runner.train()
        status = 0
    except Preempted as stop:  # every rank at once, after the save
        status = stop.code
    del runner  # it holds the process group: see shutdown_distributed
    shutdown_distributed()
    if status:
        raise SystemExit(status)


if __name__ == '__main__':
    main()
