"""Bad data through the real tools: an unreadable or truncated image stops
the run naming the file and its index, or, with ``skip_bad`` on the
training set's ImageIntegrityDataset, is skipped and counted until too many
are bad; a missing data root or annotation file names the path and the
section of the manual on preparing it (tests/test_docs.py checks that the
sections exist)."""
import os.path as osp
import re
import shutil

import cv2
import numpy as np
import pytest

from mmdynamixer.datasets import image_file_problem
from mmdx_testing import (REPO, make_imagenet, run_tool, snapshot,
                          stock_tool, write_tiny_imagenet_config)


@pytest.fixture
def data(tmp_path):
    root = make_imagenet(str(tmp_path / 'imagenet'), num_classes=4,
                         train_per_class=4, val_per_class=1)
    config = write_tiny_imagenet_config(tmp_path / 'tiny.py', root,
                                        max_epochs=2)
    lines = open(osp.join(root, 'meta', 'train.txt')).read().split('\n')
    train = [osp.join(root, 'train', line.split()[0]) for line in lines
             if line]
    return dict(root=root, config=config, train=train, tmp=tmp_path)


def truncate(path):
    with open(path, 'r+b') as f:
        f.truncate(osp.getsize(path) // 2)


def test_image_file_problem_reads_the_end_markers(tmp_path):
    image = np.random.default_rng(0).integers(0, 255, (40, 50, 3), np.uint8)
    for ext in ('jpg', 'png'):
        path = str(tmp_path / f'a.{ext}')
        cv2.imwrite(path, image)
        assert image_file_problem(path) is None
        with open(path, 'ab') as f:  # data after the end marker: still fine
            f.write(b'x' * 100)
        assert image_file_problem(path) is None
        cv2.imwrite(path, image)
        truncate(path)
        assert image_file_problem(path).startswith('truncated')
        # and the plain decoders would not have said so for a JPEG
        if ext == 'jpg':
            assert cv2.imread(path) is not None
    open(tmp_path / 'empty.jpg', 'wb').close()
    assert image_file_problem(str(tmp_path / 'empty.jpg')) == 'empty file'


@pytest.mark.parametrize('damage', ['truncated', 'unreadable'])
def test_bad_image_stops_naming_file_and_index(data, damage):
    index = 5
    path = data['train'][index]
    if damage == 'truncated':
        truncate(path)
    else:
        with open(path, 'wb') as f:
            f.write(b'\xff\xd8 not a jpeg at all')
    work = data['tmp'] / 'work'
    work.mkdir()
    (work / 'notes.txt').write_text('kept')
    before = snapshot(str(work))
    proc = run_tool('tools/train.py', data['config'], '--work-dir', str(work),
                    check=False)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('mmdynamixer.datasets.image_integrity.'
                           'BadImageError: Bad image at index 5 of ImageNet '
                           f'(16 samples): {path}'), last
    assert '--cfg-options train_dataloader.dataset.skip_bad=True' in last
    now = snapshot(str(work))
    assert {p: now[p] for p in before} == before
    assert not [p for p in now if p.endswith('.pth')]


@pytest.mark.parametrize('tool', ['ours', 'mmpretrain'])
def test_bad_evaluation_image_stops_before_the_evaluation(data, tool):
    """A truncated validation image (which OpenCV would decode silently,
    half grey) stops the run before the first evaluation, naming it, with
    our tools/train.py and MMPretrain's own: the check is the config's
    EvalImageCheckHook, not the tool's."""
    lines = open(osp.join(data['root'], 'meta', 'val.txt')).read().split()
    path = osp.join(data['root'], 'val', lines[2 * 2])  # index 2
    truncate(path)
    assert cv2.imread(path) is not None
    train = 'tools/train.py' if tool == 'ours' else stock_tool('mmpretrain')
    proc = run_tool(train, data['config'], '--work-dir',
                    str(data['tmp'] / 'work'), '--cfg-options',
                    'train_cfg.max_epochs=1', check=False)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('mmdynamixer.datasets.image_integrity.'
                           'BadImageError: Bad image at index 2 of the val '
                           f'set (ImageNet, 4 samples): {path}: truncated '
                           'JPEG'), last
    # it trained the epoch, and stopped before evaluating it
    assert osp.exists(data['tmp'] / 'work' / 'epoch_1.pth')
    assert 'Epoch(val)' not in proc.stdout + proc.stderr


def test_skip_bad_skips_counts_and_trains(data):
    for i in (3, 9):
        truncate(data['train'][i])
    proc = run_tool('tools/train.py', data['config'], '--work-dir',
                    str(data['tmp'] / 'work'), '--cfg-options',
                    'train_dataloader.dataset.skip_bad=True',
                    'train_dataloader.dataset.max_bad_fraction=0.2')
    log = proc.stdout + proc.stderr
    skipped = re.findall(r'Skipped \((\d+) so far\): Bad image at index '
                         r'(\d+)', log)
    # in the order the shuffled sampler met them, each counted
    assert [count for count, _ in skipped] == ['1', '2'], log[-3000:]
    assert sorted(index for _, index in skipped) == ['3', '9']
    assert osp.exists(data['tmp'] / 'work' / 'epoch_1.pth')


def test_skip_bad_stops_above_the_fraction(data):
    for i in (1, 4, 7, 10):
        truncate(data['train'][i])
    proc = run_tool('tools/train.py', data['config'], '--work-dir',
                    str(data['tmp'] / 'work'), '--cfg-options',
                    'train_dataloader.dataset.skip_bad=True',
                    'train_dataloader.dataset.max_bad_fraction=0.2',
                    check=False)
    assert proc.returncode != 0
    assert re.search(r'TooManyBadImagesError: 4 bad images exceed '
                     r'max_bad_fraction=0.2 of 16 samples', proc.stderr), \
        proc.stderr[-2000:]


def test_skip_bad_is_refused_for_evaluation(data):
    """Skipping evaluation images would change the metric: a wrapper of an
    evaluation set with skip_bad is refused."""
    from mmdynamixer.datasets import ImageIntegrityDataset
    with pytest.raises(ValueError, match='training data only'):
        ImageIntegrityDataset(dict(type='mmpretrain.ImageNet',
                                   data_root=data['root'], split='val',
                                   test_mode=True, pipeline=[]),
                              skip_bad=True)


def test_a_setting_of_the_wrapped_set_names_its_place(data):
    """`--cfg-options train_dataloader.dataset.data_root=DIR`, as written
    for an unwrapped data set, reaches the wrapper: the error says where
    the setting goes."""
    proc = run_tool('tools/train.py', data['config'], '--work-dir',
                    str(data['tmp'] / 'work'), '--cfg-options',
                    f'train_dataloader.dataset.data_root={data["root"]}',
                    check=False)
    assert proc.returncode != 0
    assert ("TypeError: ImageIntegrityDataset got ['data_root'], which "
            'belong to the data set it wraps: set them one level down, at '
            '`*_dataloader.dataset.dataset.data_root`') in proc.stderr, \
        proc.stderr[-2000:]


@pytest.mark.parametrize('what', ['data_root', 'ann_file'])
def test_missing_data_names_path_and_docs_section(data, what):
    if what == 'data_root':
        missing = str(data['tmp'] / 'nowhere')
        options = [f'train_dataloader.dataset.dataset.data_root={missing}']
    else:
        shutil.move(osp.join(data['root'], 'meta', 'train.txt'),
                    osp.join(data['root'], 'meta', 'moved.txt'))
        missing = osp.join(data['root'], 'meta/train.txt')
        options = ['train_dataloader.dataset.dataset.ann_file=meta/train.txt']
    proc = run_tool('tools/train.py', data['config'], '--work-dir',
                    str(data['tmp'] / 'work'), '--cfg-options', *options,
                    check=False)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last == (
        f'FileNotFoundError: ImageNet data not found: {missing} does not '
        f'exist ({what} of the data set at *_dataloader.dataset.dataset). '
        'Prepare it as docs/en/user_guides/prepare_data.md#imagenet says, '
        'or point '
        'the config at your copy: `--cfg-options train_dataloader.dataset.'
        'dataset.data_root=DIR val_dataloader.dataset.data_root=DIR '
        'test_dataloader.dataset.data_root=DIR` (the evaluation sets are not '
        'wrapped).'
    ), last
    if what == 'data_root':  # the fix, as written, with the real root
        run_tool('tools/train.py', data['config'], '--work-dir',
                 str(data['tmp'] / 'work'), '--cfg-options',
                 f'train_dataloader.dataset.dataset.data_root={data["root"]}')
