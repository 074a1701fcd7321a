# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""Benchmark the training and inference of a model: throughput, step time,
activation memory, peak memory, parameters and FLOPs.

The model is built from an MMPretrain config (``config``), or from a
DynaMixer arch (``--arch s|m|l``: an ``ImageClassifier`` with the
``DynaMixer`` backbone and a 1000-class ``DynaMixerClsHead``);
``--cfg-options`` changes it as in MMPretrain's tools, e.g. the backbone's
activation checkpointing (``model.backbone.selective_cp=False``,
``model.backbone.with_cp=True``) or the sliding-window mode at another input
size (``--img-size 512 --cfg-options model.backbone.sliding_window=True``).
The model runs on random inputs (``model(x)``, MMPretrain's ``'tensor'``
mode; no data preprocessor).

Measured (``--bench train|inference|both``):

- throughput (images/s) and step time: the median of ``--repeats`` timed
  steps after ``--warmup`` steps. A training step is forward,
  cross-entropy on random labels, backward and an AdamW step; an inference
  step a forward without autograd, in eval mode;
- activation memory (MiB per image): what the forward of a training step
  keeps for backward, everything the forward allocated and still holds when
  it returns (CPU: :func:`mmdynamixer.testing.retained_bytes`, which also
  counts the caches of activation checkpointing; CUDA: the growth of
  ``torch.cuda.memory_allocated()``);
- peak memory (MiB) of a step after two warm-up steps (where
  ``torch.compile`` compiles and AdamW creates its state), in a fresh
  process, above what that process held before the model was built: model,
  gradients, optimizer state, batch, activations and what the allocator
  keeps (CPU: the resident set's high-water mark, VmHWM, reset before the
  step, or NaN where the kernel does not allow the reset; CUDA:
  ``torch.cuda.max_memory_allocated()``);
- parameters, and with ``--flops`` the FLOPs per image as
  ``tools/analysis_tools/get_flops.py`` counts them
  (``mmengine.analysis.get_model_complexity_info``: one multiply-add is one
  FLOP).

``--results-file`` writes the results as CSV (``.csv``, one row) or JSON
(``.json``). The functions that measure are shared with
``tools/analysis_tools/checkpointing_study.py``.

Examples:
    python tools/analysis_tools/benchmark.py \\
        configs/dynamixer/dynamixer-s_8xb256_in1k.py --batch-size 8 --flops
    python tools/analysis_tools/benchmark.py --arch s --bench train \\
        --cfg-options model.backbone.selective_cp=False
    python tools/analysis_tools/benchmark.py --arch m --device cuda \\
        --amp --batch-size 128 --compile --results-file m.csv
    python tools/analysis_tools/benchmark.py --arch s --amp   # bf16 on a CPU
    python tools/analysis_tools/benchmark.py --arch s --bench inference \\
        --img-size 800 1333 --batch-size 1 \\
        --cfg-options model.backbone.sliding_window=True
"""
import argparse
import contextlib
import csv
import json
import logging
import math
import multiprocessing as mp
import os.path as osp
import platform
import statistics
import time
from concurrent.futures import ProcessPoolExecutor

import torch
import torch.nn.functional as F
from mmengine.config import Config, DictAction

BENCHES = {'inference': ('infer', ), 'train': ('train', ),
           'both': ('infer', 'train')}


# --- the machine ------------------------------------------------------------


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux)."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device) -> dict:
    """What the numbers depend on: torch, the device (CPU model and threads,
    or GPU name)."""
    device = torch.device(device)
    info = dict(torch=torch.__version__, device=str(device),
                threads=torch.get_num_threads())
    if device.type == 'cuda':
        info['device_name'] = torch.cuda.get_device_name(device)
    else:
        from mmdynamixer.utils.cpu_bf16 import cpu_bf16_support
        info['device_name'] = cpu_model()
        info['cpu_bf16'] = cpu_bf16_support()[1]
    return info


def machine_line(info: dict) -> str:
    threads = info['threads']
    where = info['device_name'] if info['device'].startswith('cuda') else \
        f'{info["device_name"]}, {threads} thread{"s" * (threads != 1)}; ' \
        f'bf16: {info["cpu_bf16"]}'
    return f'torch {info["torch"]} on {info["device"]} ({where})'


def amp_dtype(device, amp):
    """The autocast dtype of ``--amp``: on CUDA bf16 where supported, else
    fp16 (``auto``), or as named; on a CPU bf16 (CPU autocast's only
    reduced precision). None (float32) without ``--amp``."""
    if amp is None:
        return None
    if torch.device(device).type != 'cuda':
        if amp == 'fp16':
            raise ValueError('--amp fp16 needs CUDA; on a CPU, autocast '
                             'runs in bf16 (--amp or --amp bf16).')
        return torch.bfloat16
    if amp == 'auto':
        return torch.bfloat16 if torch.cuda.is_bf16_supported() \
            else torch.float16
    return dict(bf16=torch.bfloat16, fp16=torch.float16)[amp]


def precision_name(dtype) -> str:
    return 'float32' if dtype is None else \
        str(dtype).replace('torch.', '') + ' autocast'


def autocast(device, dtype):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


def sync(device):
    if torch.device(device).type == 'cuda':
        torch.cuda.synchronize(device)


# --- steps and what they take -----------------------------------------------


def training_loss(out, labels=None):
    """Cross-entropy of ``(B, num_classes)`` logits on ``labels``; for any
    other output (a backbone's feature maps), the sum of the outputs'
    means."""
    if isinstance(out, torch.Tensor) and out.dim() == 2 and \
            labels is not None:
        return F.cross_entropy(out.float(), labels)
    tensors = [out] if isinstance(out, torch.Tensor) else list(out)
    return sum(t.float().mean() for t in tensors)


def make_train_step(model, x, device, dtype=None, lr=1e-4):
    """A closure that runs one training step of ``model`` on ``x``: forward
    (in training mode, in autocast with ``dtype``), cross-entropy on random
    labels (drawn at the first step, then fixed), backward, AdamW step. It
    creates its own AdamW."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    labels = None

    def step():
        nonlocal labels
        model.train()
        with autocast(device, dtype):
            out = model(x)
            if labels is None and isinstance(out, torch.Tensor) and \
                    out.dim() == 2:
                labels = torch.randint(0, out.shape[1], (x.shape[0], ),
                                       device=x.device)
            loss = training_loss(out, labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync(device)

    return step


def make_inference_step(model, x, device, dtype=None):
    """A closure that runs ``model`` on ``x`` in eval mode, without
    autograd."""

    def step():
        model.eval()
        with torch.no_grad(), autocast(device, dtype):
            model(x)
        sync(device)

    return step


def time_steps(steps, repeats, warmup):
    """Seconds of each step in each of ``repeats`` rounds, after ``warmup``
    untimed runs of each. Several steps are timed in turn within every
    round (interleaved), so that a slow spell of the machine hits them
    alike; ratios of their per-round times cancel it.

    Returns:
        list[list[float]]: per step, its time in each round.
    """
    for step in steps:
        for _ in range(warmup):
            step()
    times = [[] for _ in steps]
    for _ in range(repeats):
        for step, record in zip(steps, times):
            start = time.perf_counter()
            step()
            record.append(time.perf_counter() - start)
    return times


def throughput_ratio(base_times, times) -> float:
    """How much faster a step timed ``times`` runs than one timed
    ``base_times`` in the same interleaved rounds (:func:`time_steps`): the
    median of the per-round ratios, so that the machine's slow spells
    cancel; above 1 is faster."""
    return statistics.median(b / t for b, t in zip(base_times, times))


def activation_bytes(model, x, device, dtype=None):
    """Bytes that the forward of a training step keeps until backward:
    everything it allocated and still holds when it returns (the output
    included). CPU: :func:`mmdynamixer.testing.retained_bytes` (the
    profiler's count: tensors saved by autograd and the caches of
    activation checkpointing alike); CUDA: the growth of
    ``torch.cuda.memory_allocated()``."""
    model.train()
    if torch.device(device).type == 'cuda':
        sync(device)
        before = torch.cuda.memory_allocated(device)
        with autocast(device, dtype):
            out = model(x)
        sync(device)
        kept = torch.cuda.memory_allocated(device) - before
    else:
        from mmdynamixer.testing import retained_bytes
        with autocast(device, dtype):
            kept, out = retained_bytes(lambda: model(x))
    del out  # and with it the graph
    return kept


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model, shape) -> int:
    """FLOPs of one image of ``shape`` (C, H, W) through ``model``, as
    ``tools/analysis_tools/get_flops.py`` counts them."""
    from mmengine.analysis import get_model_complexity_info
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)  # the counter's notes on skipped ops
    training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            info = get_model_complexity_info(
                model, inputs=(torch.zeros(1, *shape, device=device), ),
                show_table=False, show_arch=False)
    finally:
        logger.setLevel(level)
        model.train(training)
    return info['flops']


# --- peak memory, in a fresh process ----------------------------------------


def _rss_bytes(field='VmRSS'):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1]) * 1024
    raise OSError(f'no {field} in /proc/self/status')


def _reset_peak_rss():
    """Reset the kernel's resident high-water mark (VmHWM) to the current
    resident set; False where the kernel does not allow it."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def in_fresh_process(device, fn, *args):
    """``fn(*args)`` in a new process, so that memory peaks and what one
    model leaves behind (allocator caches, compiled graphs) do not mix.
    For a CPU ``device`` it is forked from this process: call it before
    this process computes anything (libgomp's threads do not survive a
    fork). For CUDA it is forked from a server that has imported torch and
    mmdynamixer (CUDA does not survive a fork)."""
    if torch.device(device).type == 'cuda':
        ctx = mp.get_context('forkserver')
        ctx.set_forkserver_preload(['torch', 'mmdynamixer'])
    else:
        ctx = mp.get_context('fork')
    with ProcessPoolExecutor(1, mp_context=ctx) as pool:
        return pool.submit(fn, *args).result()


def peak_memory_mib(build, build_args, bench, shape, device, dtype=None,
                    threads=None):
    """Peak memory (MiB) of one step (``bench``: ``'train'`` or
    ``'infer'``) after two warm-up steps, above what the process held
    before ``build(*build_args)`` built the model. Run it
    :func:`in_fresh_process`."""
    if threads:
        torch.set_num_threads(threads)
    cuda = torch.device(device).type == 'cuda'
    if cuda:
        torch.cuda.init()
        before = torch.cuda.memory_allocated(device)
    else:
        before = _rss_bytes()
    model = build(*build_args)
    x = torch.randn(*shape, device=device)
    make = make_train_step if bench == 'train' else make_inference_step
    step = make(model, x, device, dtype)
    for _ in range(2):
        step()
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    elif not _reset_peak_rss():
        return math.nan
    step()
    peak = torch.cuda.max_memory_allocated(device) if cuda else \
        _rss_bytes('VmHWM')
    return (peak - before) / 2**20


# --- the model -------------------------------------------------------------


def arch_model(arch: str, num_classes: int = 1000) -> dict:
    """The config dict of a DynaMixer classifier of ``arch``."""
    from mmdynamixer.models import DynaMixer
    dims = DynaMixer.parse_arch(arch)['embed_dims'][-1]
    return dict(
        type='ImageClassifier',
        backbone=dict(type='DynaMixer', arch=arch),
        head=dict(type='DynaMixerClsHead', num_classes=num_classes,
                  in_channels=dims))


def load_model_config(args) -> Config:
    """The config of ``args.config`` or ``args.arch``, with
    ``args.cfg_options`` merged in."""
    if args.config:
        cfg = Config.fromfile(args.config)
    else:
        cfg = Config(dict(model=arch_model(args.arch),
                          default_scope='mmpretrain'))
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    return cfg


def build_model(model_cfg: dict, scope: str, device='cpu',
                compile=False):
    """``MODELS.build(model_cfg)`` in ``scope`` (as MMPretrain's tools
    build it; no weights loaded), on ``device``, compiled with
    ``torch.compile`` if asked."""
    import mmdynamixer  # noqa: F401 registers DynaMixer
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope(scope)
    model = MODELS.build(model_cfg).to(device)
    return torch.compile(model) if compile else model


def input_size(cfg, img_size):
    """``(H, W)`` of the inputs: ``--img-size`` or the backbone's
    ``img_size``. A fixed-size DynaMixer takes only its own."""
    backbone = cfg.model.get('backbone') or {}
    own = backbone.get('img_size', 224)
    own = (own, own) if isinstance(own, int) else tuple(own)
    if not img_size:
        return own
    size = tuple(img_size) * 2 if len(img_size) == 1 else tuple(img_size)
    if str(backbone.get('type', '')).split('.')[-1] == 'DynaMixer' and \
            not backbone.get('sliding_window') and size != own:
        raise ValueError(
            f'The DynaMixer backbone is built for {own[0]}x{own[1]} inputs; '
            f'for {size[0]}x{size[1]} build it for that size '
            f'(--cfg-options model.backbone.img_size={size[0]}) or in its '
            'sliding-window mode (--cfg-options '
            'model.backbone.sliding_window=True).')
    return size


def model_name(args) -> str:
    if args.config:
        return osp.splitext(osp.basename(args.config))[0]
    return f'dynamixer-{args.arch}'


def options_text(cfg_options) -> str:
    return ' '.join(f'{k}={v}' for k, v in (cfg_options or {}).items())


# --- the tool --------------------------------------------------------------


def benchmark(args) -> dict:
    """The results of ``args`` (see :func:`parse_args`), in the order of
    the results file."""
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_model_config(args)
    scope = cfg.get('default_scope', 'mmpretrain')
    model_cfg = cfg.model.to_dict()
    device = args.device
    dtype = amp_dtype(device, args.amp)
    h, w = input_size(cfg, args.img_size)
    shape = (args.batch_size, 3, h, w)
    benches = BENCHES[args.bench]
    info = machine_info(device)
    print(f'{model_name(args)}: {machine_line(info)}, '
          f'{precision_name(dtype)}'
          f'{", torch.compile" if args.compile else ""}; batch '
          f'{args.batch_size} at {h}x{w}; medians of {args.repeats} steps '
          f'after {args.warmup} warm-up steps', flush=True)
    results = dict(model=model_name(args),
                   cfg_options=options_text(args.cfg_options),
                   **info, precision=precision_name(dtype),
                   compile=args.compile, batch_size=args.batch_size,
                   img_size=f'{h}x{w}')
    # first, while this process has computed nothing (it may fork)
    peaks = {}
    for bench in benches if args.peak_memory else ():
        peaks[bench] = in_fresh_process(
            device, peak_memory_mib, build_model,
            (model_cfg, scope, device, args.compile), bench, shape, device,
            dtype, args.threads)
    model = build_model(model_cfg, scope)
    results['param_count'] = count_params(model)
    if args.flops:
        results['flops'] = count_flops(model, shape[1:])
    model.to(device)
    if args.compile:
        model = torch.compile(model)
    torch.manual_seed(0)
    x = torch.randn(*shape, device=device)
    for bench in benches:
        make = make_train_step if bench == 'train' else make_inference_step
        [times] = time_steps([make(model, x, device, dtype)], args.repeats,
                             args.warmup)
        seconds = statistics.median(times)
        results[f'{bench}_samples_per_sec'] = args.batch_size / seconds
        results[f'{bench}_step_time_ms'] = seconds * 1e3
        if bench == 'train':
            results['train_activation_mib_per_image'] = activation_bytes(
                model, x, device, dtype) / args.batch_size / 2**20
        if args.peak_memory:
            results[f'{bench}_peak_mib'] = peaks[bench]
    return results


def write_results(path, results: dict):
    if path.endswith('.json'):
        with open(path, 'w') as f:
            json.dump(results, f, indent=2)
    else:
        with open(path, 'w', newline='') as f:
            writer = csv.DictWriter(f, fieldnames=list(results))
            writer.writeheader()
            writer.writerow(results)


def print_results(results: dict):
    width = max(len(k) for k in results)
    for key, value in results.items():
        if isinstance(value, float):
            value = f'{value:.4g}' if key.endswith('_per_image') else \
                f'{value:.2f}'
        elif isinstance(value, int) and not isinstance(value, bool):
            value = f'{value:,}'
        print(f'{key:{width}}  {value}')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=' '.join(__doc__.split('\n\n')[0].split()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__[__doc__.index('Examples:'):])
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument('config', nargs='?', help='MMPretrain config file')
    model.add_argument('--arch', choices=['s', 'm', 'l'],
                       help='a DynaMixer classifier (1000 classes) instead '
                       'of a config')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, as key=value pairs (e.g. '
        'model.backbone.selective_cp=False)')
    parser.add_argument('--bench', choices=list(BENCHES), default='both',
                        help='what to measure (default: both)')
    parser.add_argument('--batch-size', '-b', type=int, default=8,
                        help='(default: 8)')
    parser.add_argument('--img-size', type=int, nargs='+', metavar='N',
                        help='input size (N, or H W); default: the '
                        "backbone's img_size")
    parser.add_argument('--device', default=None,
                        help='default: cuda if available, else cpu')
    parser.add_argument('--threads', type=int, default=None,
                        help="torch's intra-op threads (default: torch's)")
    parser.add_argument('--amp', nargs='?', const='auto',
                        choices=['auto', 'bf16', 'fp16'],
                        help='autocast (alone: on CUDA bf16 where supported, '
                        'else fp16; on a CPU bf16)')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the model')
    parser.add_argument('--warmup', '--num-warm-iter', type=int, default=2,
                        help='untimed steps first (default: 2)')
    parser.add_argument('--repeats', '--num-bench-iter', type=int,
                        default=10, help='timed steps (default: 10)')
    parser.add_argument('--flops', action='store_true',
                        help="count the FLOPs (mmengine's counter; slow)")
    parser.add_argument('--peak-memory', action=argparse.BooleanOptionalAction,
                        default=True, help='measure the peak memory of a '
                        'step in a fresh process (default: on)')
    parser.add_argument('--results-file', default='',
                        help='write the results to this .csv or .json file')
    args = parser.parse_args(argv)
    if args.results_file and not args.results_file.endswith(
            ('.csv', '.json')):
        parser.error('--results-file must end with .csv or .json')
    if args.device is None:
        args.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    if args.amp == 'fp16' and torch.device(args.device).type != 'cuda':
        parser.error('--amp fp16 needs CUDA; on a CPU, autocast runs in bf16 '
                     '(--amp or --amp bf16)')
    if args.img_size and len(args.img_size) > 2:
        parser.error('--img-size takes N or H W')
    if args.repeats < 1 or args.warmup < 0 or args.batch_size < 1:
        parser.error('--repeats and --batch-size must be >= 1, --warmup '
                     '>= 0')
    try:
        input_size(load_model_config(args), args.img_size)
    except ValueError as e:
        parser.error(str(e))
    return args


def main(argv=None):
    args = parse_args(argv)
    results = benchmark(args)
    print_results(results)
    if args.results_file:
        write_results(args.results_file, results)


if __name__ == '__main__':
    main()
