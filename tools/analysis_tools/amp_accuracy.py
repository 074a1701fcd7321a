# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""Does mixed precision cost accuracy? A config trained in float32 and with
``--amp`` (bf16 autocast on a CPU with bf16 instructions, MMEngine's AMP on
a GPU), once per seed, each tested on the held-out test split.

For every seed, ``tools/train.py CONFIG --cfg-options randomness.seed=SEED``
runs twice, without and with ``--amp``, and ``tools/test.py`` evaluates the
best checkpoint of each run (``save_best``; the last one where the config
saves no best) in float32, as the Quick start does. A third row tests the
float32 run's checkpoint with ``--amp``: mixed-precision inference of a
float32 model.

Printed: the test metric of every run, its mean and standard deviation over
the seeds, and the mean of the per-seed differences to float32 with its
standard error (the seeds pair the runs: same initialisation, data order
and augmentation). Seed-to-seed spread on a small test split is large;
judge a difference against its standard error.

Example:
    python tools/analysis_tools/amp_accuracy.py \\
        configs/dynamixer/dynamixer-tiny_1xb64_digits.py --seeds 0 1 2 3 4
"""
import argparse
import json
import math
import os
import os.path as osp
import shutil
import statistics

from dense_transfer import REPO, run, test_metrics, trained_checkpoint

QUICK_START = 'configs/dynamixer/dynamixer-tiny_1xb64_digits.py'
ROWS = {
    'float32': 'trained and tested in float32',
    'amp': 'trained with --amp, tested in float32',
    'amp-test': 'trained in float32, tested with --amp',
}


def train_and_test(config, seed, metric, work_dir, options) -> dict:
    """The test metric of each row for one seed."""
    results, checkpoints = {}, {}
    for precision, amp in (('float32', []), ('amp', ['--amp'])):
        work = osp.join(work_dir, f'seed{seed}', precision)
        if osp.isdir(work):
            shutil.rmtree(work)
        os.makedirs(work)
        run(['tools/train.py', config, '--work-dir', work, *amp,
             '--cfg-options', f'randomness.seed={seed}', *options],
            osp.join(work, 'train.log'))
        checkpoints[precision] = trained_checkpoint(work)
    for row, precision, amp in (('float32', 'float32', []),
                                ('amp', 'amp', []),
                                ('amp-test', 'float32', ['--amp'])):
        work = osp.join(work_dir, f'seed{seed}', row)
        os.makedirs(work, exist_ok=True)
        log = osp.join(work, 'test.log')
        run(['tools/test.py', config, checkpoints[precision], '--work-dir',
             osp.join(work, 'test'), *amp,
             *(['--cfg-options', *options] if options else [])], log)
        results[row] = test_metrics(log)[metric]
    return results


def summary(results: dict) -> str:
    """The table: every run, mean and sd, and the paired difference of each
    row to float32 (mean +- standard error of the per-seed differences)."""
    seeds = list(results)
    lines = ['| row | ' + ' | '.join(f'seed {s}' for s in seeds) +
             ' | mean (sd) | minus float32: mean (s.e.) |',
             '|---' * (len(seeds) + 3) + '|']
    for row, name in ROWS.items():
        values = [results[s][row] for s in seeds]
        diffs = [results[s][row] - results[s]['float32'] for s in seeds]
        sd = se = ''  # spreads need two seeds
        if len(seeds) > 1:
            sd = f' ({statistics.stdev(values):.2f})'
            se = f' ({statistics.stdev(diffs) / math.sqrt(len(diffs)):.2f})'
        lines.append(
            f'| {name} | ' + ' | '.join(f'{v:.2f}' for v in values) +
            f' | {statistics.mean(values):.2f}{sd} | ' +
            ('-' if row == 'float32' else
             f'{statistics.mean(diffs):+.2f}{se}') + ' |')
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', nargs='?', default=QUICK_START,
                        help='the Quick start config by default')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--metric', default='accuracy/top1',
                        help='the key of tools/test.py\'s "Test metrics"')
    parser.add_argument('--work-dir', default='work_dirs/amp_accuracy')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        metavar='KEY=VALUE',
                        help='settings for every run, as tools/train.py\'s')
    args = parser.parse_args(argv)
    config = osp.abspath(args.config)
    work_dir = osp.abspath(args.work_dir)
    os.makedirs(work_dir, exist_ok=True)
    if args.config == QUICK_START and \
            not osp.isdir(osp.join(REPO, 'data', 'digits', 'test')):
        run(['tools/dataset_converters/prepare_digits.py', 'data/digits'],
            osp.join(work_dir, 'prepare_digits.log'))
    results = {}
    for seed in args.seeds:
        print(f'seed {seed} ...', flush=True)
        results[seed] = train_and_test(config, seed, args.metric, work_dir,
                                       args.cfg_options)
        print(f'  {results[seed]}', flush=True)
    with open(osp.join(work_dir, 'amp_accuracy.json'), 'w') as f:
        json.dump({'config': args.config, 'metric': args.metric,
                   'results': results}, f, indent=1)
    import torch
    from mmdynamixer.utils.cpu_bf16 import cpu_bf16_support
    amp = ("MMEngine's AMP on the GPU" if torch.cuda.is_available() else
           'bf16 autocast on the CPU (' + cpu_bf16_support()[1] + ')')
    print(f'\n{args.metric} on the test split of {args.config}; --amp is '
          f'{amp}; torch {torch.__version__}, {torch.get_num_threads()} '
          f'CPU threads; seeds {args.seeds}\n')
    print(summary(results))


if __name__ == '__main__':
    main()
