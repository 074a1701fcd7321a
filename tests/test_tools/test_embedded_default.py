"""The README's main job end to end: the real data (scikit-learn's digits),
MMPretrain's CustomDataset, pipeline and Accuracy evaluator, the MMEngine
Runner, trained and evaluated with MMPretrain's own tools/train.py and
tools/test.py from its installed package (as a user who installed
mmdynamixer with pip runs it), and the same run with this package's tools
giving the same weights, bit for bit."""
import glob
import os.path as osp
import re
import subprocess
import sys

import pytest

import torch

from mmdynamixer.utils import load_checkpoint_file
from mmdx_testing import digits_data_options as data_options
from mmdx_testing import run_tool, stock_tool

CONFIG = 'configs/dynamixer/dynamixer-tiny_1xb64_digits.py'


def split_names(root):
    return {s: {osp.basename(p) for p in
                glob.glob(str(root / s / '*' / '*.png'))}
            for s in ('train', 'val', 'test')}


def test_digits_split_is_stratified(digits_trained):
    root, _ = digits_trained
    per_class = {cls: sum(len(glob.glob(str(root / s / str(cls) / '*.png')))
                          for s in ('train', 'val', 'test'))
                 for cls in range(10)}
    assert sum(per_class.values()) == 1797
    for cls, total in per_class.items():  # 20% of every class in test
        n_test = len(glob.glob(str(root / 'test' / str(cls) / '*.png')))
        assert n_test == round(0.2 * total), (cls, n_test, total)


def test_rerun_with_another_seed_keeps_splits_disjoint(tmp_path):
    """A re-run into the same folder with another seed moves images between
    splits: none may stay behind in its old split (a train image in test)."""
    from mmdynamixer.datasets import prepare_digits
    first = prepare_digits(str(tmp_path), seed=0)
    before = split_names(tmp_path)
    prepare_digits(str(tmp_path), seed=1)
    after = split_names(tmp_path)
    assert before['test'] != after['test']  # the seed did move images
    assert sum(len(v) for v in after.values()) == sum(first.values()) == 1797
    assert not (after['train'] & after['test'])
    assert not (after['val'] & after['test'])
    assert not (after['train'] & after['val'])


def test_train_then_test_reaches_90_percent_on_held_out(digits_trained):
    """MMPretrain's own tools/test.py on the best checkpoint of the run
    with its tools/train.py: the Quick start's accuracy, within noise."""
    root, work = digits_trained
    best = glob.glob(str(work / 'best_accuracy_top1_epoch_*.pth'))
    assert len(best) == 1
    out = run_tool(stock_tool('mmpretrain', 'test.py'), CONFIG, best[0],
                   '--work-dir', str(work / 'test'), '--cfg-options',
                   *data_options(root)).stdout
    test_line = [line for line in out.splitlines() if 'Epoch(test)' in line]
    accuracy = float(re.search(r'accuracy/top1: ([\d.]+)',
                               test_line[-1]).group(1))
    assert accuracy >= 90.0, test_line


def test_our_tools_train_exactly_as_mmpretrains(digits_trained, tmp_path):
    """The same config and command line, 2 epochs, with this package's
    tools/train.py and with MMPretrain's: the same weights, bit for bit,
    and the same validation accuracy (our tools add nothing to a config).
    """
    root, _ = digits_trained
    runs = {}
    for name, tool in (('ours', 'tools/train.py'),
                       ('mmpretrain', stock_tool('mmpretrain', 'train.py'))):
        work = tmp_path / name
        log = run_tool(tool, CONFIG, '--work-dir', str(work), '--cfg-options',
                       *data_options(root), 'train_cfg.max_epochs=2',
                       'train_cfg.val_interval=2',
                       'default_hooks.checkpoint.interval=2').stdout
        runs[name] = (load_checkpoint_file(str(work / 'epoch_2.pth')),
                      re.findall(r'Epoch\(val\).*accuracy/top1: ([\d.]+)',
                                 log))
    (ours, ours_val), (stock, stock_val) = runs['ours'], runs['mmpretrain']
    assert ours_val and ours_val == stock_val
    assert ours['state_dict'].keys() == stock['state_dict'].keys()
    for key, value in ours['state_dict'].items():
        assert torch.equal(value, stock['state_dict'][key]), key


def test_checkpoints_load_through_the_allow_list_on_every_torch(digits_trained):
    """tools/train.py checkpoints hold MMEngine objects: torch's plain
    weights_only loading refuses them; through MMEngine's own entry point
    (what --resume, tools/test.py and load_from use) they load, with our
    allow-list and nothing else allowed, on this torch whichever it is."""
    _, work = digits_trained
    ckpt = glob.glob(str(work / 'epoch_*.pth'))[0]
    plain = subprocess.run(
        [sys.executable, '-c', 'import torch, sys; '
         'torch.load(sys.argv[1], weights_only=True)', ckpt],
        capture_output=True, text=True)
    assert plain.returncode != 0 and 'Weights only load failed' in plain.stderr
    ours = subprocess.run(
        [sys.executable, '-c', 'import mmdynamixer, sys; '
         'from mmengine.runner import CheckpointLoader; '
         'c = CheckpointLoader.load_checkpoint(sys.argv[1], "cpu"); '
         'print(sorted(c), type(c["message_hub"]["log_scalars"]'
         '["train/loss"]).__name__)', ckpt], capture_output=True, text=True)
    assert ours.returncode == 0, ours.stderr
    assert 'message_hub' in ours.stdout and 'optimizer' in ours.stdout
    assert 'HistoryBuffer' in ours.stdout


def test_test_tool_rejects_corrupted_checkpoint(digits_trained, tmp_path):
    root, work = digits_trained
    ckpt = glob.glob(str(work / 'epoch_*.pth'))[0]
    broken = tmp_path / 'broken.pth'
    with open(ckpt, 'rb') as f:
        broken.write_bytes(f.read()[:4096])
    proc = run_tool('tools/test.py', CONFIG, str(broken), '--work-dir',
                    str(tmp_path / 'w'), '--cfg-options', *data_options(root),
                    check=False)
    assert proc.returncode != 0
    assert 'corrupted or truncated' in proc.stderr


def test_vis_tools_on_the_trained_model(digits_trained, tmp_path):
    """vis_mixing.py and vis_cam.py draw the trained model's pictures of a
    real test image (the README's commands, with the test's paths)."""
    root, work = digits_trained
    best = glob.glob(str(work / 'best_accuracy_top1_epoch_*.pth'))[0]
    image = sorted(glob.glob(str(root / 'test' / '3' / '*.png')))[0]
    options = ['--cfg-options', *data_options(root)]
    out = tmp_path / 'mixing.png'
    run_tool('tools/visualization/vis_mixing.py', CONFIG, best, image,
             '--stage', '0', '--layer', '-1', '--tokens', '2,3', '5,4',
             '--out-file', str(out), *options)
    cam = tmp_path / 'cam.png'
    proc = run_tool('tools/visualization/vis_cam.py', image, CONFIG, best,
                    '--save-path', str(cam), *options)
    assert re.search(r'LayerCAM of class \d \(\d+\.\d%\) at '
                     r'backbone\.stages\.1\.1', proc.stdout), proc.stdout
    assert out.stat().st_size > 10000 and cam.stat().st_size > 10000


def test_cam_weighs_strokes_over_background(digits_trained):
    """On real held-out digits, the trained model's default class
    activation map (LayerCAM at its last layer) puts more mass per pixel on
    the digit's strokes than on the background, for the images it
    classifies right (first 5 test images of each class), and more so than
    Grad-CAM: the README's comparison, by the README's command."""
    root, work = digits_trained
    best = glob.glob(str(work / 'best_accuracy_top1_epoch_*.pth'))[0]
    out = run_tool('tools/analysis_tools/cam_localization.py', CONFIG, best,
                   str(root / 'test'), '--cfg-options',
                   *data_options(root)).stdout
    found = {m: re.search(
        rf'^{m}: (\d+) of 50 classified right; median ([\d.]+)x, above 1 '
        rf'on (\d+) of (\d+) ', out, re.M) for m in ('layercam', 'gradcam')}
    assert all(found.values()), out
    (correct, median, above, n), (_, gradcam_median, _, _) = (
        [float(g) for g in found[m].groups()]
        for m in ('layercam', 'gradcam'))
    assert correct >= 40 and n == correct  # most of the 50 are right
    assert median > 1.5 and above / n >= 0.75, out
    assert gradcam_median < median, out
