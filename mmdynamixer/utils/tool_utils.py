# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""What the tools share: arguments, config loading and setup."""
import argparse
import gc
import os
import os.path as osp

import torch
from mmengine.config import Config, DictAction


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


def setup_cfg(cfg, args):
    """Work dir, launcher and ``--cfg-options``, as MMPretrain's own tools
    set them; then, only on a machine without a GPU, what a distributed
    run there needs, each change printed. Nothing else of the config is
    changed: its hooks, data set checks and dataloader settings are its
    own (``configs/_base_/default_runtime.py``)."""
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.launcher != 'none' and not torch.cuda.is_available():
        use_cpu_distributed(cfg)
    return cfg


def use_cpu_distributed(cfg):
    """What a distributed run needs on CPUs: the gloo backend (NCCL needs
    GPUs) and DDP without device ids (MMEngine passes the GPU of the rank).
    Each change is printed."""
    dist_cfg = cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
    if dist_cfg.get('backend', 'nccl') == 'nccl':
        print('No GPU: env_cfg.dist_cfg.backend nccl -> gloo (NCCL needs '
              'GPUs).')
        dist_cfg['backend'] = 'gloo'
    wrapper_cfg = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    if wrapper_cfg.get('device_ids', 'unset') is not None:
        print('No GPU: model_wrapper_cfg.device_ids -> None (DDP of a CPU '
              'model takes no device ids; MMEngine would pass the rank\'s '
              'GPU).')
        wrapper_cfg['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper_cfg


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
        print(f'No GPU: opening the {cfg.env_cfg.dist_cfg.backend} process '
              "group here (MMEngine's launcher would ask for a GPU first).")
        dist.init_process_group(backend=cfg.env_cfg.dist_cfg.backend)


def shutdown_distributed():
    """Close the process group, and end its threads, before the interpreter
    exits.

    ``destroy_process_group`` only forgets the group: its gloo threads run
    on while anything refers to it, and a runner's DDP wrapper does, from
    reference cycles that only the cyclic collector frees. Left alive into
    interpreter shutdown, their teardown can abort a rank that finished its
    work ("terminate called without an active exception", a failed job for
    torchrun). The caller drops its runner first (``del runner``); collecting
    its cycles here makes ``destroy_process_group`` release the last
    reference, which joins the threads now, while Python is whole.
    """
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()
