# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""Evaluate a checkpoint with an MMEngine config (MMPretrain, MMDetection or
MMSegmentation: the config's ``default_scope`` decides).

Checkpoints are loaded with ``weights_only=True``; ``import mmdynamixer``
allow-lists the plain-data types that MMEngine checkpoints hold.
"""
import argparse
import json
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import mmdynamixer  # noqa: F401 registers DynaMixer, allow-lists checkpoints
from mmdynamixer.utils import load_checkpoint_file


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Evaluate a checkpoint')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save logs and results')
    parser.add_argument('--out', help='dump the predictions to a pickle file')
    parser.add_argument(
        '--amp', action='store_true', help='test with mixed precision')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, as key=value pairs')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def merge_args(cfg, args):
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    cfg.launcher = args.launcher
    cfg.load_from = args.checkpoint
    cfg.resume = False
    if args.amp:
        cfg.test_cfg = cfg.get('test_cfg') or dict()
        cfg.test_cfg['fp16'] = True
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    loader = cfg.get('test_dataloader')
    if loader and loader.get('num_workers', 0) == 0:
        loader['persistent_workers'] = False
    if args.out:
        cfg.test_evaluator = list(cfg.test_evaluator) if isinstance(
            cfg.test_evaluator, (list, tuple)) else [cfg.test_evaluator]
        cfg.test_evaluator.append(
            dict(type='DumpResults', out_file_path=args.out))
    return cfg


def main(argv=None):
    args = parse_args(argv)
    # Fail early, with a clear message, on a missing or corrupted file.
    load_checkpoint_file(args.checkpoint)
    cfg = merge_args(Config.fromfile(args.config), args)
    runner = RUNNERS.build(cfg) if 'runner_type' in cfg else \
        Runner.from_cfg(cfg)
    metrics = runner.test()
    print('Test metrics: ' + json.dumps(
        {k: round(float(v), 4) if isinstance(v, (int, float)) else str(v)
         for k, v in metrics.items()}))
    return metrics


if __name__ == '__main__':
    main()
