# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""Benchmarks of DynaMixer. Ratios are always against a baseline measured in
the same run, on the same machine; nothing here is a test.

``sliding``: time and peak memory per image of DynaMixer-S inference in the
fixed and the sliding-window mode at 224 x 224, and of the sliding mode at
512 x 512 and 800 x 1333, with the ratios that matter: sliding / fixed at
224, and the cost per pixel at each size against the fixed model at 224.
The cases are timed in turn within each round, and each ratio is the median
of its per-round ratios, so that the machine's slow spells cancel out.

Example:
    python tools/analysis_tools/benchmark.py sliding --threads 2
"""
import argparse
import json
import multiprocessing as mp
import os
import statistics
import time

import torch


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


def peak_inference_memory(model_kwargs, shape, batch, threads,
                          device='cpu'):
    """Peak memory of the first forward (no grad) of a fresh DynaMixer, in a
    fresh process: later passes reuse memory the allocator kept."""
    torch.set_num_threads(threads)
    import mmdynamixer  # noqa: F401
    from mmdynamixer.models import DynaMixer
    model = DynaMixer(**model_kwargs).eval().to(device)
    x = torch.randn(batch, 3, *shape, device=device)
    cuda = str(device).startswith('cuda')
    with torch.no_grad():
        base = _rss_bytes()
        reset = _reset_peak_rss()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        model(x)
        _sync(device)
    if cuda:
        return torch.cuda.max_memory_allocated() / batch / 2**20
    return (_rss_bytes('VmHWM') - base) / batch / 2**20 if reset \
        else float('nan')


def _run_isolated(fn, *args):
    """Run ``fn`` in a fresh process, so that memory peaks do not mix."""
    ctx = mp.get_context('spawn')
    with ctx.Pool(1) as pool:
        return pool.apply(fn, args)


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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='benchmark', required=True)
    sliding = sub.add_parser('sliding', help='fixed vs sliding-window mode')
    for p in (sliding, ):
        p.add_argument('--batch', type=int, default=8,
                       help='batch at 224 x 224 (larger sizes use 1)')
        p.add_argument('--threads', type=int,
                       default=min(2, os.cpu_count() or 1))
        p.add_argument('--device', default='cpu')
        p.add_argument('--warmup', type=int, default=1)
        p.add_argument('--repeats', type=int, default=7,
                       help='interleaved timing rounds')
        p.add_argument('--json', help='also write the results to this file')
    args = parser.parse_args(argv)
    result = bench_sliding(args)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=2)


if __name__ == '__main__':
    main()
