# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""The digit-scene transfer table: does a DynaMixer classification checkpoint
transfer through the sliding windows to detection and segmentation, does
dynamic mixing help, and how does DynaMixer compare with a CNN of its size?

Each row trains the digit-scene detector and segmenter
(``configs/dynamixer_detection/*digit-scenes*.py``,
``configs/dynamixer_segmentation/*digit-scenes*.py``) with one backbone, once
per seed, with this package's ``tools/train.py``, and evaluates the last
checkpoint on the held-out test scenes with ``tools/test.py``:

- ``dynamixer``: the Quick start's DynaMixer, from its digits checkpoint;
- ``scratch``: the same, randomly initialised;
- ``static``: static mixing (``generator='static'``), from its own digits
  checkpoint trained the same way;
- ``resnet``: a ResNet of about the same parameters and FLOPs, from its own
  digits checkpoint trained the same way.

The classification checkpoints are ``checkpoints/<config name>.pth``; one
that is missing is trained first, by its config under ``configs/dynamixer/``
(the Quick start writes the first). The digits (``data/digits``) and the
scenes (``--data-root``) are prepared if they are not there. The seeds vary the dense training
(head initialisation, data order, drop path); each classification checkpoint
is one run of seed 0.

Printed per task: the metrics on the test scenes (COCO box AP and AP50;
mIoU over background and the ten digits), each as the mean over seeds and
the range; parameters (backbone / whole model) and FLOPs at a 96 x 96 scene
(``mmengine.analysis``, one fused multiply-add = one FLOP); and the wall time
of ``tools/train.py`` (training and its validations) on this machine.

Example:
    python tools/analysis_tools/dense_transfer.py --seeds 0 1
"""
import argparse
import json
import os
import os.path as osp
import re
import shutil
import statistics
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TASKS = {
    'det': dict(
        config='configs/dynamixer_detection/'
        'retinanet_dynamixer-tiny_fpn_1xb8-12e_digit-scenes.py',
        resnet='configs/dynamixer_detection/'
        'retinanet_r18-w24_fpn_1xb8-12e_digit-scenes.py',
        metrics=(('box AP', 'coco/bbox_mAP'),
                 ('box AP50', 'coco/bbox_mAP_50'))),
    'seg': dict(
        config='configs/dynamixer_segmentation/'
        'fpn_dynamixer-tiny_1xb8-1k_digit-scenes.py',
        resnet='configs/dynamixer_segmentation/'
        'fpn_r18-w24_1xb8-1k_digit-scenes.py',
        metrics=(('mIoU', 'mIoU'), )),
}
PRETRAIN = {
    'dynamixer': 'configs/dynamixer/dynamixer-tiny_1xb64_digits.py',
    'static': 'configs/dynamixer/dynamixer-tiny-static_1xb64_digits.py',
    'resnet': 'configs/dynamixer/resnet18-w24_1xb64_digits.py',
}
ROWS = {
    'dynamixer': 'DynaMixer, from its digits checkpoint (the Quick start)',
    'scratch': 'DynaMixer, from scratch',
    'static': 'DynaMixer with static mixing, from its digits checkpoint',
    'resnet': 'ResNet-18 basic blocks (24, 48 ch.), from its digits '
    'checkpoint',
}
SCENE_HW = (96, 96)


def run(args, log):
    """Run ``python ARGS`` in the repository; its output goes to ``log``;
    return the wall time in seconds."""
    start = time.perf_counter()
    with open(log, 'w') as f:
        proc = subprocess.run([sys.executable, *args], cwd=REPO, stdout=f,
                              stderr=subprocess.STDOUT)
    if proc.returncode:
        with open(log) as f:
            tail = f.read()[-3000:]
        raise RuntimeError(f'`python {" ".join(args)}` failed '
                           f'(exit {proc.returncode}); the end of {log}:\n'
                           f'{tail}')
    return time.perf_counter() - start


def test_metrics(log: str) -> dict:
    """The metrics that ``tools/test.py`` printed into ``log``."""
    with open(log) as f:
        found = re.findall(r'Test metrics: (\{.*\})', f.read())
    if not found:
        raise RuntimeError(f'tools/test.py printed no metrics; see {log}')
    return json.loads(found[-1])


def trained_checkpoint(work: str) -> str:
    """The best checkpoint of a finished run in ``work``, else its last."""
    best = sorted(f for f in os.listdir(work) if f.startswith('best_'))
    if best:
        return osp.join(work, best[-1])
    with open(osp.join(work, 'last_checkpoint')) as f:
        return f.read().strip()


def classification_checkpoint(row: str, work_dir: str) -> str:
    """``checkpoints/<config name>.pth``, trained first if missing."""
    config = PRETRAIN[row]
    name = osp.splitext(osp.basename(config))[0]
    path = osp.join(REPO, 'checkpoints', f'{name}.pth')
    if osp.exists(path):
        return path
    work = osp.join(work_dir, 'pretrain', name)
    os.makedirs(work, exist_ok=True)
    print(f'training {config} (no {osp.relpath(path, REPO)} yet)',
          flush=True)
    run(['tools/train.py', config, '--work-dir', work],
        osp.join(work, 'train.log'))
    os.makedirs(osp.dirname(path), exist_ok=True)
    shutil.copyfile(trained_checkpoint(work), path)
    return path


def dense_config(task: str, row: str) -> tuple:
    """(config, the settings the row changes in it) of a row."""
    if row == 'resnet':
        return TASKS[task]['resnet'], {}
    if row == 'scratch':
        return TASKS[task]['config'], {'model.backbone.init_cfg': None}
    if row == 'static':
        return TASKS[task]['config'], {'model.backbone.generator': 'static'}
    return TASKS[task]['config'], {}


def train_and_test(task, row, seed, checkpoint, work_dir) -> dict:
    config, settings = dense_config(task, row)
    if checkpoint:
        settings['model.backbone.init_cfg.checkpoint'] = checkpoint
    options = [f'{k}={v}' for k, v in settings.items()]
    work = osp.join(work_dir, task, row, f'seed{seed}')
    if osp.isdir(work):
        shutil.rmtree(work)
    os.makedirs(work)
    seconds = run(['tools/train.py', config, '--work-dir', work,
                   '--cfg-options', f'randomness.seed={seed}', *options],
                  osp.join(work, 'train.log'))
    with open(osp.join(work, 'last_checkpoint')) as f:
        last = f.read().strip()
    log = osp.join(work, 'test.log')
    run(['tools/test.py', config, last, '--work-dir', work,
         '--cfg-options', *options], log)
    metrics = test_metrics(log)
    return dict(seconds=seconds,
                **{name: metrics[key] for name, key in TASKS[task]['metrics']})


def complexity(task: str, row: str) -> dict:
    sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
    from dense_complexity import measure
    config, settings = dense_config(task, row)
    return measure(osp.join(REPO, config), repeat=0, hw=SCENE_HW,
                   cfg_options=settings)


def cell(values, digits=1, scale=1.):
    values = [v * scale for v in values]
    mean = statistics.mean(values)
    if len(values) == 1:
        return f'{mean:.{digits}f}'
    return (f'{mean:.{digits}f} ({min(values):.{digits}f}-'
            f'{max(values):.{digits}f})')


def table(task, results, sizes) -> str:
    names = [name for name, _ in TASKS[task]['metrics']]
    lines = ['| backbone | ' + ' | '.join(names) +
             ' | params: backbone / model (k) | FLOPs at 96 x 96 (M) '
             '| CPU training time (s) |',
             '|---' * (len(names) + 4) + '|']
    for row, runs in results.items():
        size = sizes[row]
        lines.append(
            f'| {ROWS[row]} | ' +
            ' | '.join(cell([r[n] for r in runs], 1,
                            100 if task == 'det' else 1) for n in names) +
            f" | {size['params_backbone'] / 1e3:.0f} / "
            f"{size['params'] / 1e3:.0f} | {size['flops'] / 1e6:.0f} | "
            f"{cell([r['seconds'] for r in runs], 0)} |")
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1])
    parser.add_argument('--rows', nargs='+', choices=list(ROWS),
                        default=list(ROWS))
    parser.add_argument('--tasks', nargs='+', choices=list(TASKS),
                        default=list(TASKS))
    parser.add_argument('--work-dir', default='work_dirs/dense_transfer')
    parser.add_argument('--data-root', default='data/digit_scenes',
                        help='the scenes (prepared here if missing)')
    args = parser.parse_args(argv)
    work_dir = osp.abspath(args.work_dir)
    data_root = osp.join(REPO, args.data_root)
    os.makedirs(work_dir, exist_ok=True)
    if not osp.exists(osp.join(data_root, 'annotations',
                               'instances_test.json')):
        run(['tools/dataset_converters/prepare_digit_scenes.py', data_root],
            osp.join(work_dir, 'prepare.log'))
    if not osp.isdir(osp.join(REPO, 'data', 'digits', 'test')):
        # the data of the classification configs (the Quick start's)
        run(['tools/dataset_converters/prepare_digits.py', 'data/digits'],
            osp.join(work_dir, 'prepare_digits.log'))
    checkpoints = {row: classification_checkpoint(row, work_dir)
                   for row in args.rows if row in PRETRAIN}
    report = {}
    for task in args.tasks:
        results, sizes = {}, {}
        for row in args.rows:
            sizes[row] = complexity(task, row)
            results[row] = []
            for seed in args.seeds:
                print(f'{task} {row} seed {seed} ...', flush=True)
                results[row].append(train_and_test(
                    task, row, seed, checkpoints.get(row), work_dir))
                print(f'  {results[row][-1]}', flush=True)
        report[task] = dict(results=results, sizes=sizes,
                            table=table(task, results, sizes))
    with open(osp.join(work_dir, 'dense_transfer.json'), 'w') as f:
        json.dump(report, f, indent=1)
    import torch
    print(f'\nDigit scenes, test split (200 scenes); seeds {args.seeds}; '
          f'torch {torch.__version__}, {torch.get_num_threads()} CPU '
          'threads; mean (min-max) over seeds')
    for task in args.tasks:
        print(f'\n{task}:\n{report[task]["table"]}')


if __name__ == '__main__':
    main()
