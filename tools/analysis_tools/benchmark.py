# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""Benchmarks of DynaMixer. Ratios are always against a baseline measured in
the same run, on the same machine; nothing here is a test.

``speed``: for DynaMixer-S, M and L at 224 x 224, the baseline, our
backbone without selective recomputation (``plain``), in its default mode,
with ``with_cp`` and under ``torch.compile`` (same weights, same classifier
end): the bytes per image a training step keeps for backward (counted with
``saved_tensors_hooks``: independent of the allocator and the device),
training-step throughput (forward, backward, AdamW step), inference
throughput and peak memory, with the ratios; and the achieved FLOP rate as a
fraction of a large matmul measured in the same run (on CUDA, in autocast:
the model FLOP utilisation).

``sliding``: time and peak memory per image of DynaMixer-S inference in the
fixed and the sliding-window mode at 224 x 224, and of the sliding mode at
512 x 512 and 800 x 1333, with the ratios that matter: sliding / fixed at
224, and the cost per pixel at each size against the fixed model at 224.
The cases are timed in turn within each round, and each ratio is the median
of its per-round ratios, so that the machine's slow spells cancel out.

The baseline is :class:`mmdynamixer.testing.BaselineDynaMixer`: DynaMixer
as a direct transcription of the paper's op, block and network, tested to
compute what our backbone computes (tests/test_tools/
test_benchmark_baseline.py). Models are built by name; this tool holds no
model code.

Examples:
    python tools/analysis_tools/benchmark.py speed --threads 2 --batch 8
    python tools/analysis_tools/benchmark.py speed --device cuda --batch 64
    python tools/analysis_tools/benchmark.py sliding --threads 2
"""
import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import torch
import torch.nn as nn
import torch.nn.functional as F


def _rss_bytes(field='VmRSS'):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1]) * 1024
    return 0


def _reset_peak_rss():
    """Reset the kernel's peak-RSS mark (VmHWM) so that it measures what
    follows; False where the kernel does not allow it."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def _sync(device):
    if str(device).startswith('cuda'):
        torch.cuda.synchronize()


def peak_mb(device, run, since=None):
    """Peak memory (MB) while ``run()`` runs, above ``since`` (bytes;
    default: what is in use when it starts): CPU resident memory (VmHWM
    over VmRSS), CUDA ``max_memory_allocated`` over ``memory_allocated``;
    NaN where the kernel cannot reset VmHWM."""
    cuda = str(device).startswith('cuda')
    if cuda:
        torch.cuda.synchronize()
        start = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        start = _rss_bytes()
        if not _reset_peak_rss():
            return float('nan')
    start = start if since is None else since
    run()
    _sync(device)
    peak = torch.cuda.max_memory_allocated() if cuda else _rss_bytes('VmHWM')
    return (peak - start) / 2**20


def peak_inference_memory(model_kwargs, shape, batch, threads,
                          device='cpu'):
    """Peak memory per image of the first forward (no grad) of a fresh
    DynaMixer, in a fresh process: later passes reuse memory the allocator
    kept."""
    torch.set_num_threads(threads)
    import mmdynamixer  # noqa: F401
    from mmdynamixer.models import DynaMixer
    model = DynaMixer(**model_kwargs).eval().to(device)
    x = torch.randn(batch, 3, *shape, device=device)
    with torch.no_grad():
        return peak_mb(device, lambda: model(x)) / batch


def _run_isolated(fn, *args):
    """Run ``fn`` in a fresh process, so that memory peaks do not mix and
    nothing one model leaves behind (allocator caches, compiled graphs)
    weighs on the next: one forked from a server that has only imported
    torch and mmdynamixer (a clean allocator, without paying for the
    imports each time). Its workers are not daemons, so ``fn`` may run
    isolated steps of its own."""
    ctx = mp.get_context('forkserver')
    ctx.set_forkserver_preload(['torch', 'mmdynamixer'])
    with ProcessPoolExecutor(1, mp_context=ctx) as pool:
        return pool.submit(fn, *args).result()


def interleaved_times(cases, rounds, warmup):
    """Median seconds per image of each case, timing the cases in turn in
    every round, so that a slow spell of the machine hits them all alike.

    Args:
        cases (list): ``(fn, batch)`` pairs; ``fn()`` runs one step.
    """
    for fn, _ in cases:
        for _ in range(warmup):
            fn()
    times = [[] for _ in cases]
    for _ in range(rounds):
        for (fn, batch), record in zip(cases, times):
            start = time.perf_counter()
            fn()
            record.append((time.perf_counter() - start) / batch)
    return times


def bench_sliding(args):
    import mmdynamixer  # noqa: F401
    from mmdynamixer.models import DynaMixer
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    fixed = DynaMixer('s').eval().to(args.device)
    sliding = DynaMixer('s', sliding_window=True).eval().to(args.device)
    sliding.load_state_dict(fixed.state_dict())
    cases = [('fixed', fixed, (224, 224), args.batch),
             ('sliding', sliding, (224, 224), args.batch),
             ('sliding', sliding, (512, 512), 1),
             ('sliding', sliding, (800, 1333), 1)]

    def step(model, x):
        def run():
            with torch.no_grad():
                model(x)
            _sync(args.device)
        return run

    times = interleaved_times(
        [(step(m, torch.randn(b, 3, *hw, device=args.device)), b)
         for _, m, hw, b in cases], args.repeats, args.warmup)
    rows = []
    for (mode, _, hw, batch), record in zip(cases, times):
        kwargs = dict(arch='s', sliding_window=mode == 'sliding')
        pixels = hw[0] * hw[1]
        per_pixel = [t / pixels / (b / (224 * 224))
                     for t, b in zip(record, times[0])]
        rows.append(dict(
            mode=mode, size=f'{hw[0]}x{hw[1]}', batch=batch,
            ms_per_image=statistics.median(record) * 1e3,
            time_per_pixel_vs_fixed224=statistics.median(per_pixel),
            peak_mb_per_image=_run_isolated(peak_inference_memory, kwargs,
                                            hw, batch, args.threads,
                                            args.device)))
    base_mem = rows[0]['peak_mb_per_image'] / (224 * 224)
    for row in rows:
        h, w = (int(v) for v in row['size'].split('x'))
        row['memory_per_pixel_vs_fixed224'] = \
            row['peak_mb_per_image'] / (h * w) / base_mem
    print(f'DynaMixer-S inference on {args.device}, {args.threads} threads; '
          f'median of {args.repeats} interleaved rounds; ratios are medians '
          'of per-round ratios; memory: peak of a first forward')
    print(f'{"mode":8} {"size":>9} {"batch":>5} {"ms/img":>9} '
          f'{"peak MB/img":>12} {"time/px vs fixed224":>20} '
          f'{"mem/px vs fixed224":>19}')
    for r in rows:
        print(f'{r["mode"]:8} {r["size"]:>9} {r["batch"]:5d} '
              f'{r["ms_per_image"]:9.1f} {r["peak_mb_per_image"]:12.1f} '
              f'{r["time_per_pixel_vs_fixed224"]:20.3f} '
              f'{r["memory_per_pixel_vs_fixed224"]:19.3f}')
    sliding224 = rows[1]['time_per_pixel_vs_fixed224']
    large = rows[3]['time_per_pixel_vs_fixed224']
    print(f'sliding / fixed at 224: {sliding224:.3f}x time (target <= 1.1)')
    print(f'cost per pixel at 800x1333 / at 224 (fixed): {large:.3f}x '
          '(target <= 1.3)')
    return dict(benchmark='sliding', device=args.device,
                threads=args.threads, rows=rows,
                sliding_over_fixed_224=sliding224,
                per_pixel_800x1333_over_224=large)


# --- speed: ours against the baseline, S/M/L at 224 x 224 -------------------


class Classifier(nn.Module):
    """The network's end (LayerNorm, mean over tokens, Linear) on a backbone; the
    same for both implementations, so that only the backbones differ."""

    def __init__(self, backbone, dims, num_classes=1000):
        super().__init__()
        self.backbone = backbone
        self.norm = nn.LayerNorm(dims)
        self.fc = nn.Linear(dims, num_classes)

    def forward(self, x):
        x = self.backbone(x)[-1].flatten(2).transpose(1, 2)
        return self.fc(self.norm(x).mean(1))


IMPLS = ('baseline', 'plain', 'ours', 'with_cp', 'compile')
IMPL_NOTES = {
    'baseline': 'mmdynamixer.testing.BaselineDynaMixer',
    'plain': 'DynaMixer(selective_cp=False)',
    'ours': 'DynaMixer() (selective_cp, the default)',
    'with_cp': 'DynaMixer(with_cp=True)',
    'compile': 'torch.compile(DynaMixer())',
}


def build_classifier(impl, arch, seed=0):
    """The model ``impl`` of :data:`IMPLS`, all with the same weights
    (seeded): the baseline, our backbone without and with selective
    recomputation (the default), with ``with_cp``, or compiled."""
    import mmdynamixer  # noqa: F401
    from mmdynamixer.models import DynaMixer
    from mmdynamixer.testing import BaselineDynaMixer
    torch.manual_seed(seed)
    ours = DynaMixer(arch)  # PyTorch's default init: speed does not care
    state = ours.state_dict()
    if impl == 'baseline':
        ours = BaselineDynaMixer(arch)
    elif impl == 'plain':
        ours = DynaMixer(arch, selective_cp=False)
    elif impl == 'with_cp':
        ours = DynaMixer(arch, with_cp=True)
    ours.load_state_dict(state)
    model = Classifier(ours, DynaMixer.parse_arch(arch)['embed_dims'][-1])
    return torch.compile(model) if impl == 'compile' else model


# the flags (selective_cp, with_cp) that make each of these from one model
MODES = {'plain': (False, False), 'ours': (True, False),
         'with_cp': (True, True)}


def set_mode(model, impl):
    """Switch our backbone in ``model`` to the mode of ``impl``."""
    if impl not in MODES:
        return
    selective, with_cp = MODES[impl]
    for module in model.modules():
        if hasattr(module, 'selective_cp'):
            module.selective_cp = selective
        if hasattr(module, 'with_cp'):
            module.with_cp = with_cp


def in_mode(model, impl, step):
    """``step`` run with ``model`` in the mode of ``impl``."""
    def run():
        set_mode(model, impl)
        step()
    return run


def saved_mib_per_image(model, batch, device, dtype):
    """MiB per image that a training step's forward keeps for backward
    (activations; the parameters are left out), counted where autograd
    saves them."""
    from mmdynamixer.testing import saved_tensor_bytes
    model.train()
    x = torch.randn(batch, 3, 224, 224, device=device)
    with torch.autocast(str(device).split(':')[0], dtype=dtype,
                        enabled=dtype is not None):
        saved, _ = saved_tensor_bytes(lambda: model(x),
                                      exclude=model.parameters())
    return saved / batch / 2**20


def amp_dtype(device, amp):
    """The autocast dtype: bf16 where CUDA supports it, else fp16; None
    (float32) on CPU or with ``--amp off``."""
    if amp == 'off' or not str(device).startswith('cuda'):
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() \
        else torch.float16


def make_steps(model, batch, device, dtype):
    """(train_step, inference_step) closures on a fixed random batch."""
    x = torch.randn(batch, 3, 224, 224, device=device)
    y = torch.randint(0, model.fc.out_features, (batch, ), device=device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    autocast = torch.autocast(str(device).split(':')[0], dtype=dtype,
                              enabled=dtype is not None)

    def train():
        model.train()
        with autocast:
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        _sync(device)

    def infer():
        model.eval()
        with torch.no_grad(), autocast:
            model(x)
        _sync(device)

    return train, infer


def peak_memory(impl, arch, mode, batch, threads, device, amp):
    """Peak memory (MB) of a training step (or inference) after two
    warm-up steps (where torch.compile compiles and AdamW creates its
    state), in a fresh process, above what the process held before the
    model was built: model, gradients, AdamW state, batch, activations and
    what the allocator keeps; the interpreter and libraries are not
    counted."""
    torch.set_num_threads(threads)
    import mmdynamixer  # noqa: F401
    cuda = str(device).startswith('cuda')
    before = torch.cuda.memory_allocated() if cuda else _rss_bytes()
    model = build_classifier(impl, arch).to(device)
    train, infer = make_steps(model, batch, device, amp_dtype(device, amp))
    step = train if mode == 'train' else infer
    for _ in range(2):
        step()
    return peak_mb(device, step, since=before)


def matmul_rate(device, dtype, size, repeats=3):
    """FLOP/s of a large square matmul (the machine's practical peak)."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    a @ b
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _sync(device)
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def model_flops(arch):
    """FLOPs per image at 224 as the published numbers count them
    (mmengine's counter: one multiply-add is one FLOP), of the 1000-class
    classifier; counted on the baseline, whose plain modules the counter
    knows (tests check that ours gives the same count)."""
    import logging

    from mmengine.analysis import get_model_complexity_info
    from mmengine.logging import MMLogger
    model = build_classifier('baseline', arch)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)  # the counter's notes on elementwise ops
    try:
        info = get_model_complexity_info(model, (3, 224, 224),
                                         show_table=False, show_arch=False)
    finally:
        logger.setLevel(level)
    return info['flops']


def bench_speed(args):
    torch.set_num_threads(args.threads)
    device = args.device
    dtype = amp_dtype(device, args.amp)
    precision = str(dtype).replace('torch.', '') + ' autocast' if dtype \
        else 'float32'
    rates = {'float32': matmul_rate(device, torch.float32, args.matmul_size)}
    if dtype is not None:
        rates[precision] = matmul_rate(device, dtype, args.matmul_size)
    print_speed_header(args, precision, rates)
    rows = []
    for arch in args.archs:
        # each arch in a fresh process: what the previous one leaves in
        # the allocator and in torch.compile's caches would otherwise add
        # up (S, M and L in one process outgrow 24 GB)
        arch_rows = _run_isolated(bench_arch, args, arch, dtype,
                                  rates[precision])
        print_speed_rows(arch_rows)
        rows += arch_rows
    print_speed_legend(precision)
    return dict(benchmark='speed', device=device, threads=args.threads,
                batch=args.batch, precision=precision, repeats=args.repeats,
                matmul_flop_rate=rates, rows=rows)


def bench_arch(args, arch, dtype, peak_rate):
    """The rows of one arch: each implementation, then the ratio rows."""
    torch.set_num_threads(args.threads)
    device = args.device
    impls = [i for i in IMPLS if i in args.impls]
    flops = model_flops(arch)
    # plain, ours and with_cp are one model in three modes (one copy of
    # the weights and AdamW state in memory, not three)
    shared = build_classifier('ours', arch).to(device)
    models = {impl: shared if impl in MODES else
              build_classifier(impl, arch).to(device) for impl in impls}
    built = {}
    steps = {}
    for impl, model in models.items():
        if id(model) not in built:
            built[id(model)] = make_steps(model, args.batch, device, dtype)
        steps[impl] = [in_mode(model, impl, step)
                       for step in built[id(model)]]
    cases = [(steps[impl][k], args.batch) for k in (0, 1) for impl in impls]
    times = interleaved_times(cases, args.repeats, args.warmup)
    rows, records = [], {}
    for i, impl in enumerate(impls):
        set_mode(models[impl], impl)
        row = dict(arch=arch, impl=impl, flops_per_image=flops,
                   saved_mib_per_image=saved_mib_per_image(
                       models[impl], args.batch, device, dtype))
        for k, mode in enumerate(('train', 'inference')):
            record = times[k * len(impls) + i]
            records[impl, mode] = record
            per_image = statistics.median(record)
            # forward = 2 x the published multiply-adds; a training step
            # is forward + backward = 3 forwards
            work = 2 * flops * (3 if mode == 'train' else 1)
            row[f'{mode}_images_per_s'] = 1 / per_image
            row[f'{mode}_fraction_of_matmul'] = work / per_image / peak_rate
            row[f'{mode}_peak_mb'] = _run_isolated(
                peak_memory, impl, arch, mode, args.batch, args.threads,
                device, args.amp)
        rows.append(row)
    return rows + ratio_rows(arch, impls, rows, records)


def ratio_rows(arch, impls, rows, records):
    """Each implementation against the baseline, and ours against
    ``plain`` (our backbone before selective recomputation): saved
    activations, peak memory and throughput. Time ratios are medians of
    per-round ratios, so that slow spells of the machine cancel out."""
    by_impl = {r['impl']: r for r in rows}
    out = []
    for ref in ('baseline', 'plain'):
        if ref not in by_impl:
            continue
        for impl in impls:
            if impl == ref or (ref == 'plain' and impl != 'ours'):
                continue
            row, base = by_impl[impl], by_impl[ref]
            ratio = dict(arch=arch, impl=f'{impl}/{ref}',
                         saved_ratio=row['saved_mib_per_image'] /
                         base['saved_mib_per_image'])
            for mode in ('train', 'inference'):
                ratio[f'{mode}_speedup'] = statistics.median(
                    b / o for b, o in zip(records[ref, mode],
                                          records[impl, mode]))
                ratio[f'{mode}_memory_ratio'] = row[f'{mode}_peak_mb'] / \
                    base[f'{mode}_peak_mb']
            out.append(ratio)
    return out


def print_speed_header(args, precision, rates):
    print(f'DynaMixer at 224x224 on {args.device} ({args.threads} threads), '
          f'{precision}, batch {args.batch}; medians of {args.repeats} '
          'interleaved rounds; peak memory of a step after warm-up, in a '
          'fresh process; each arch in a fresh process')
    for name, rate in rates.items():
        print(f'large {name} matmul ({args.matmul_size}^3): '
              f'{rate / 1e9:.1f} GFLOP/s')
    for impl in IMPLS:
        if impl in args.impls:
            print(f'  {impl:9} {IMPL_NOTES[impl]}')
    print(f'{"arch":4} {"impl":16} {"saved MiB/img":>13} {"train img/s":>11} '
          f'{"infer img/s":>11} {"train MB":>9} {"infer MB":>9} '
          f'{"train %mm":>9} {"infer %mm":>9}', flush=True)


def print_speed_rows(rows):
    for r in rows:
        if '/' not in r['impl']:
            print(f'{r["arch"]:4} {r["impl"]:16} '
                  f'{r["saved_mib_per_image"]:13.1f} '
                  f'{r["train_images_per_s"]:11.2f} '
                  f'{r["inference_images_per_s"]:11.2f} '
                  f'{r["train_peak_mb"]:9.0f} {r["inference_peak_mb"]:9.0f} '
                  f'{100 * r["train_fraction_of_matmul"]:9.1f} '
                  f'{100 * r["inference_fraction_of_matmul"]:9.1f}')
            continue
        print(f'{r["arch"]:4} {r["impl"]:16} {r["saved_ratio"]:12.3f}x '
              f'{r["train_speedup"]:10.3f}x {r["inference_speedup"]:10.3f}x '
              f'{r["train_memory_ratio"]:8.3f}x '
              f'{r["inference_memory_ratio"]:8.3f}x')
    sys.stdout.flush()  # each arch's rows as soon as they are measured


def print_speed_legend(precision):
    print('ratio rows: saved activations, throughput (higher is faster) and '
          'peak memory of the first implementation over the second')
    print('%mm: achieved FLOP rate (2 x published FLOPs per image forward, 3 '
          'forwards per training step) / the large matmul rate'
          + (' (model FLOP utilisation)' if 'autocast' in precision else ''))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='benchmark', required=True)
    speed = sub.add_parser('speed', help='ours vs the baseline, S/M/L')
    speed.add_argument('--archs', nargs='+', default=['s', 'm', 'l'])
    speed.add_argument('--impls', nargs='+', default=list(IMPLS),
                       choices=IMPLS, help='implementations to compare '
                       '(default: all)')
    speed.add_argument('--amp', choices=['auto', 'off'], default='auto',
                       help='auto: autocast (bf16 if supported) on CUDA')
    speed.add_argument('--matmul-size', type=int, default=None,
                       help='side of the reference matmul (default: 4096 '
                       'on CPU, 8192 on CUDA)')
    sliding = sub.add_parser('sliding', help='fixed vs sliding-window mode')
    for p in (speed, sliding):
        p.add_argument('--batch', type=int, default=8,
                       help='batch at 224 x 224 (sliding: larger sizes use '
                       '1)')
        p.add_argument('--threads', type=int,
                       default=min(2, os.cpu_count() or 1))
        p.add_argument('--device', default='cpu')
        p.add_argument('--warmup', type=int, default=1)
        p.add_argument('--repeats', type=int, default=7,
                       help='interleaved timing rounds')
        p.add_argument('--json', help='also write the results to this file')
    args = parser.parse_args(argv)
    if args.benchmark == 'speed':
        if args.matmul_size is None:
            args.matmul_size = 8192 if args.device.startswith('cuda') \
                else 4096
        result = bench_speed(args)
    else:
        result = bench_sliding(args)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=2)


if __name__ == '__main__':
    main()
