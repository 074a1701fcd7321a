# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""bf16 autocast against float32 for the DynaMixer classifiers, measured in
the same run: training and inference throughput and the peak memory of a
step, with the device's bf16 capability printed.

For each arch (``--archs``, S, M and L by default), in a fresh process of
its own, the classifier (``ImageClassifier``: the DynaMixer backbone and a
1000-class ``DynaMixerClsHead``) runs in float32 and under
``torch.autocast(device, dtype=torch.bfloat16)`` (with ``--compile`` also
both under ``torch.compile``), the precisions timed in turn in every round
(interleaved). A training step is forward, cross-entropy, backward and an
AdamW step. Each row of a reduced precision gets its ratios to float32 of
the same run: throughput (median of the per-round ratios; above 1 is
faster) and peak memory (each measured in a fresh process).

Examples:
    python tools/analysis_tools/precision_study.py --threads 2 --batch 8
    python tools/analysis_tools/precision_study.py --archs s --compile \\
        --json bf16.json
"""
import argparse
import json
import statistics

import torch
from benchmark import (arch_model, build_model, in_fresh_process,
                       machine_info, machine_line, make_inference_step,
                       make_train_step, peak_memory_mib, throughput_ratio,
                       time_steps)

PRECISIONS = {'float32': None, 'bf16': torch.bfloat16}


def modes_of(compile_):
    modes = [(name, False) for name in PRECISIONS]
    if compile_:
        modes += [(name, True) for name in PRECISIONS]
    return modes


def label(mode):
    name, compiled = mode
    return f'compile+{name}' if compiled else name


def build(arch, device, compiled, seed=0):
    torch.manual_seed(seed)
    return build_model(arch_model(arch), 'mmpretrain', device, compiled)


def time_arch(arch, options):
    """Step times of each mode, per bench, in interleaved rounds. Run it
    :func:`in_fresh_process`."""
    if options['threads']:
        torch.set_num_threads(options['threads'])
    device, batch = options['device'], options['batch']
    modes = options['modes']
    models = {mode: build(arch, device, mode[1]) for mode in modes}
    torch.manual_seed(0)
    x = torch.randn(batch, 3, 224, 224, device=device)
    times = {}
    for bench, make in (('infer', make_inference_step),
                        ('train', make_train_step)):
        steps = [make(models[m], x, device, PRECISIONS[m[0]])
                 for m in modes]
        times[bench] = time_steps(steps, options['repeats'],
                                  options['warmup'])
    return times


def study_arch(arch, options):
    modes, batch = options['modes'], options['batch']
    times = in_fresh_process(options['device'], time_arch, arch, options)
    peaks = {(bench, mode): in_fresh_process(
        options['device'], peak_memory_mib, build,
        (arch, options['device'], mode[1]), bench,
        (batch, 3, 224, 224), options['device'], PRECISIONS[mode[0]],
        options['threads'])
        for bench in ('infer', 'train') for mode in modes}
    rows = []
    for i, mode in enumerate(modes):
        row = dict(arch=arch, mode=label(mode))
        for bench in ('infer', 'train'):
            seconds = statistics.median(times[bench][i])
            row[f'{bench}_samples_per_sec'] = batch / seconds
            row[f'{bench}_peak_mib'] = peaks[bench, mode]
            row[f'{bench}_round_times_s'] = times[bench][i]
        rows.append(row)
    for i, mode in enumerate(modes):
        if mode[0] == 'float32':
            continue
        base = modes.index(('float32', mode[1]))
        ratio = dict(arch=arch, mode=f'{label(mode)}/{label(modes[base])}')
        for bench in ('infer', 'train'):
            ratio[f'{bench}_throughput_ratio'] = throughput_ratio(
                times[bench][base], times[bench][i])
            ratio[f'{bench}_peak_ratio'] = \
                peaks[bench, mode] / peaks[bench, modes[base]]
        rows.append(ratio)
    return rows


def print_rows(rows):
    for r in rows:
        if '/' in r['mode']:
            print(f'{r["arch"]:5} {r["mode"]:30} '
                  f'{r["infer_throughput_ratio"]:11.3f}x '
                  f'{r["train_throughput_ratio"]:11.3f}x '
                  f'{r["infer_peak_ratio"]:12.3f}x '
                  f'{r["train_peak_ratio"]:12.3f}x')
        else:
            print(f'{r["arch"]:5} {r["mode"]:30} '
                  f'{r["infer_samples_per_sec"]:12.2f} '
                  f'{r["train_samples_per_sec"]:12.2f} '
                  f'{r["infer_peak_mib"]:13.1f} '
                  f'{r["train_peak_mib"]:13.1f}')
    print(flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0].replace('\n', ' '),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__[__doc__.index('Examples:'):])
    parser.add_argument('--archs', nargs='+', default=['s', 'm', 'l'],
                        choices=['s', 'm', 'l'])
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--threads', type=int, default=None,
                        help="torch's intra-op threads (default: torch's)")
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--compile', action='store_true',
                        help='also both precisions under torch.compile')
    parser.add_argument('--warmup', type=int, default=1,
                        help='untimed steps of each mode first (default: 1)')
    parser.add_argument('--repeats', type=int, default=5,
                        help='interleaved timing rounds (default: 5)')
    parser.add_argument('--json', help='also write the results to this file')
    args = parser.parse_args(argv)
    options = dict(device=args.device, batch=args.batch,
                   threads=args.threads, warmup=args.warmup,
                   repeats=args.repeats, modes=modes_of(args.compile))
    if args.threads:
        torch.set_num_threads(args.threads)
    info = machine_info(args.device)
    print(f'DynaMixer precision study: {machine_line(info)}; batch '
          f'{args.batch} at 224x224; inference and training steps timed in '
          f'{args.repeats} interleaved rounds after {args.warmup} warm-up '
          'step(s); peak memory of a step in a fresh process')
    print(f'{"arch":5} {"mode":30} {"infer img/s":>12} {"train img/s":>12} '
          f'{"infer peak MiB":>13} {"train peak MiB":>13}', flush=True)
    rows = []
    for arch in args.archs:
        arch_rows = study_arch(arch, options)
        print_rows(arch_rows)
        rows += arch_rows
    print('ratio rows (mode/float32 of the same run): inference and '
          'training throughput (above 1 is faster), inference and training '
          'peak memory')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(**info, batch=args.batch, repeats=args.repeats,
                           warmup=args.warmup, rows=rows), f, indent=2)


if __name__ == '__main__':
    main()
