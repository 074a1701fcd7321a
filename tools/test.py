# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""Evaluate a checkpoint with an MMEngine config (MMPretrain, MMDetection or
MMSegmentation: the config's ``default_scope`` decides).

Checkpoints are read as untrusted input: ``import mmdynamixer`` makes
MMEngine read local files allowing only tensors and the plain-data types
MMEngine checkpoints hold, on every torch (``mmdynamixer.utils.safe_pickle``).
"""
import argparse
import json
import numbers

import torch
from mmengine.config import Config
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import mmdynamixer  # noqa: F401 registers DynaMixer, safe loading
from mmdynamixer.utils import load_checkpoint_file
from mmdynamixer.utils.cpu_bf16 import cpu_bf16_support
from mmdynamixer.utils.tool_utils import (add_common_args,
                                          init_cpu_distributed,
                                          set_local_rank, setup_cfg,
                                          shutdown_distributed)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Evaluate a checkpoint')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', help='dump the predictions to a pickle file')
    parser.add_argument(
        '--amp', action='store_true',
        help='mixed precision: fp16 autocast on a GPU, bf16 on a CPU with '
        'bf16 instructions')
    add_common_args(parser)
    args = parser.parse_args(argv)
    set_local_rank(args)
    return args


def merge_args(cfg, args):
    cfg.load_from = args.checkpoint
    cfg.resume = False
    if args.amp:
        if not torch.cuda.is_available():
            supported, why = cpu_bf16_support()
            if not supported:
                raise RuntimeError(
                    f'--amp on a CPU tests in bf16, but {why}. Drop --amp to '
                    'test in float32.')
            print(f'No GPU: --amp tests in bf16 autocast on the CPU ({why}).')
        cfg.test_cfg = cfg.get('test_cfg') or dict()
        cfg.test_cfg['fp16'] = True  # MMEngine's autocast: bf16 on a CPU
    if args.out:
        evaluators = cfg.test_evaluator
        evaluators = list(evaluators) if isinstance(
            evaluators, (list, tuple)) else [evaluators]
        cfg.test_evaluator = evaluators + [
            dict(type='DumpResults', out_file_path=args.out)]
    return setup_cfg(cfg, args)


def main(argv=None):
    args = parse_args(argv)
    # Fail early, with a clear message, on a missing or corrupted file.
    load_checkpoint_file(args.checkpoint)
    cfg = merge_args(Config.fromfile(args.config), args)
    init_cpu_distributed(cfg, args)
    runner = RUNNERS.build(cfg) if 'runner_type' in cfg else \
        Runner.from_cfg(cfg)
    metrics = runner.test()
    del runner  # it holds the process group: see shutdown_distributed
    shutdown_distributed()
    print('Test metrics: ' + json.dumps(
        {k: round(float(v), 4) if isinstance(v, numbers.Number) else str(v)
         for k, v in metrics.items()}))
    return metrics


if __name__ == '__main__':
    main()
