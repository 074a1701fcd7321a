# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""What the tools share: arguments, config loading and setup."""
import argparse
import importlib
import os
import os.path as osp

import torch
from mmengine.config import Config, DictAction

from ..datasets import check_data_paths, wrap_datasets


def add_common_args(parser: argparse.ArgumentParser):
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, as key=value pairs '
        '(e.g. train_dataloader.batch_size=32)')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def load_config(args) -> Config:
    """``args.config`` with ``args.cfg_options`` merged in."""
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    return cfg


def backbone_input_size(cfg) -> tuple:
    """``(H, W)`` the config's backbone is built for (its ``img_size``)."""
    size = cfg.model.backbone.get('img_size', 224)
    return (size, size) if isinstance(size, int) else tuple(size)


def set_local_rank(args):
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)


def setup_cfg(cfg, args, dataloaders):
    """Work dir, launcher and ``--cfg-options``, then what every run of the
    tools gets whatever the config says: a clear error for missing data,
    checked images (``image_check``), strict checkpoint loading and
    checkpoints that a crash cannot tear."""
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)

    for name in dataloaders:
        loader = cfg.get(name)
        # persistent workers need at least one worker process
        if loader and loader.get('num_workers', 0) == 0:
            loader['persistent_workers'] = False
    if cfg.get('default_scope'):
        # the library the config runs in comes first: importing it checks
        # its version (mmdynamixer's guard) before anything about the data
        importlib.import_module(cfg.default_scope)
    check_data_paths(cfg, dataloaders)
    wrap_datasets(cfg, dataloaders, cfg.get('image_check'))
    add_safety_hooks(cfg)

    if args.launcher != 'none' and not torch.cuda.is_available():
        env_cfg = cfg.setdefault('env_cfg', {})
        dist_cfg = env_cfg.setdefault('dist_cfg', {})
        if dist_cfg.get('backend', 'nccl') == 'nccl':
            print('No GPU: distributed run on the gloo backend.')
            dist_cfg['backend'] = 'gloo'
        # DDP of a CPU module takes no device ids (MMEngine passes the rank).
        wrapper_cfg = cfg.get('model_wrapper_cfg') or dict(
            type='MMDistributedDataParallel', broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
        wrapper_cfg['device_ids'] = None
        cfg.model_wrapper_cfg = wrapper_cfg
    return cfg


def add_safety_hooks(cfg):
    """Strict loading for ``load_from``/``--resume``/testing, a stop at a
    non-finite loss, and atomic checkpoint saves, in every run of the
    tools, whatever the config says."""
    hooks = list(cfg.get('custom_hooks') or [])
    for name in ('StrictLoadHook', 'NonFiniteLossHook'):
        if not any(name == (str(h.get('type', '')) if isinstance(h, dict)
                            else type(h).__name__).split('.')[-1]
                   for h in hooks):
            hooks.append(dict(type=f'mmpretrain.{name}'))
    cfg.custom_hooks = hooks
    checkpoint = (cfg.get('default_hooks') or {}).get('checkpoint')
    if isinstance(checkpoint, dict) and checkpoint.get('type') in (
            'CheckpointHook', 'mmengine.CheckpointHook'):
        checkpoint['type'] = 'mmpretrain.AtomicCheckpointHook'


def init_cpu_distributed(cfg, args):
    """Open the process group of a ``--launcher pytorch`` run without GPUs.

    MMEngine 0.10's PyTorch launcher calls ``torch.cuda.set_device`` before
    opening the group, which fails on a machine without GPUs; the Runner
    skips its own initialisation when a group is already open.
    """
    if args.launcher != 'pytorch' or torch.cuda.is_available():
        return
    import torch.distributed as dist
    if not dist.is_initialized():
        dist.init_process_group(backend=cfg.env_cfg.dist_cfg.backend)


def shutdown_distributed():
    """Close the process group before exit: one destroyed at interpreter
    shutdown can abort ("terminate called without an active exception")."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
