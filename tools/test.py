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

from mmengine.config import Config
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import mmdynamixer  # noqa: F401 registers DynaMixer, safe loading
from mmdynamixer.utils import load_checkpoint_file
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
        '--amp', action='store_true', help='test with mixed precision')
    add_common_args(parser)
    args = parser.parse_args(argv)
    set_local_rank(args)
    return args


def merge_args(cfg, args):
    cfg.load_from = args.checkpoint
    cfg.resume = False
    if args.amp:
        cfg.test_cfg = cfg.get('test_cfg') or dict()
        cfg.test_cfg['fp16'] = True
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
    shutdown_distributed()
    print('Test metrics: ' + json.dumps(
        {k: round(float(v), 4) if isinstance(v, numbers.Number) else str(v)
         for k, v in metrics.items()}))
    return metrics


if __name__ == '__main__':
    main()
