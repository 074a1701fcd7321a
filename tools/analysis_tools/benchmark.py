# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""Benchmarks of DynaMixer. Ratios are always against a baseline measured in
the same run, on the same machine; nothing here is a test.

``sliding``: time and peak memory per image of DynaMixer-S inference in the
fixed and the sliding-window mode at 224 x 224, and of the sliding mode at
512 x 512 and 800 x 1333, with the ratios that matter: sliding / fixed at
224, and the cost per pixel at each size against the fixed model at 224.
The cases are timed in turn within each round, and each ratio is the median
of its per-round ratios, so that the machine's slow spells cancel out.

The module also holds the baseline of the speed benchmark: DynaMixer as a
direct transcription of SPEC sections 1-3 (``BaselineDynaMixer``), tested to
compute what our backbone computes (tests/test_tools/
test_benchmark_baseline.py).

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


import torch.nn as nn  # noqa: E402


# --- The baseline: SPEC sections 1-3 transcribed in standard PyTorch --------
# A Linear for compress and for generate, reshape and permute into segments,
# softmax, one matmul per op, separate row and column ops with their own
# permutes, the reweighting MLP. Module names match DynaMixer's, so both
# load the same state dict.


class BaselineOp(nn.Module):

    def __init__(self, dim, tokens, segments, reduced):
        super().__init__()
        self.tokens, self.segments, self.reduced = tokens, segments, reduced
        self.compress = nn.Linear(dim, segments * reduced)
        self.generate = nn.Linear(tokens * reduced, tokens * tokens)
        self.out = nn.Linear(dim, dim)

    def forward(self, x):  # (B, N, D)
        B, N, D = x.shape
        S, d = self.segments, self.reduced
        r = self.compress(x).reshape(B, N, S, d).permute(0, 2, 1, 3)
        g = self.generate(r.reshape(B, S, N * d)).reshape(B, S, N, N)
        a = g.softmax(dim=2)  # over the input token i of G[i, j]
        xs = x.reshape(B, N, S, D // S).permute(0, 2, 1, 3)  # (B, S, N, c)
        y = torch.matmul(a.transpose(2, 3), xs)  # (B, S, N_out, c)
        return self.out(y.permute(0, 2, 1, 3).reshape(B, N, D))


class BaselineBlock(nn.Module):

    def __init__(self, dim, grid, segments, reduced):
        super().__init__()
        self.mix_h = BaselineOp(dim, grid[0], segments, reduced)
        self.mix_w = BaselineOp(dim, grid[1], segments, reduced)
        self.mlp_c = nn.Linear(dim, dim, bias=False)
        self.reweight = nn.Sequential()
        self.reweight.add_module('fc1', nn.Linear(dim, dim // 4))
        self.reweight.add_module('act', nn.GELU())
        self.reweight.add_module('fc2', nn.Linear(dim // 4, dim * 3))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):  # (B, H, W, C)
        B, H, W, C = x.shape
        h = self.mix_h(x.permute(0, 2, 1, 3).reshape(B * W, H, C))
        h = h.reshape(B, W, H, C).permute(0, 2, 1, 3)
        w = self.mix_w(x.reshape(B * H, W, C)).reshape(B, H, W, C)
        c = self.mlp_c(x)
        a = (h + w + c).permute(0, 3, 1, 2).flatten(2).mean(2)
        a = self.reweight(a).reshape(B, C, 3).permute(2, 0, 1).softmax(dim=0)
        a = a[:, :, None, None, :]
        return self.proj(h * a[0] + w * a[1] + c * a[2])


class BaselineLayer(nn.Module):

    def __init__(self, dim, grid, segments, reduced, mlp_ratio=3.):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.mixer = BaselineBlock(dim, grid, segments, reduced)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential()
        self.mlp.add_module('fc1', nn.Linear(dim, int(dim * mlp_ratio)))
        self.mlp.add_module('act', nn.GELU())
        self.mlp.add_module('fc2', nn.Linear(int(dim * mlp_ratio), dim))

    def forward(self, x):
        x = x + self.mixer(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class BaselineDynaMixer(nn.Module):
    """The published network (no drop path: the benchmark's runs are
    deterministic), returning the last stage as (B, C, H, W)."""

    def __init__(self, arch, img_size=224, patch_size=7):
        super().__init__()
        from mmdynamixer.models import DynaMixer
        arch = DynaMixer.parse_arch(arch)
        grids = DynaMixer.token_grids((img_size, img_size), patch_size,
                                      len(arch['embed_dims']))
        self.downsample_layers = nn.ModuleList()
        self.stages = nn.ModuleList()
        for i, dim in enumerate(arch['embed_dims']):
            self.downsample_layers.append(
                nn.Conv2d(3, dim, patch_size, patch_size) if i == 0 else
                nn.Conv2d(arch['embed_dims'][i - 1], dim, 2, 2))
            self.stages.append(nn.Sequential(*[
                BaselineLayer(dim, grids[i], arch['num_segments'][i],
                              arch['reduced_dims'][i])
                for _ in range(arch['depths'][i])]))

    def forward(self, x):
        for down, stage in zip(self.downsample_layers, self.stages):
            x = stage(down(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return (x, )


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
