"""Shared helpers of the test suite (tests/ is put on sys.path by conftest)."""
import os
import os.path as osp
import subprocess
import sys


REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
# Files the tests read, with their provenance in tests/data/README.md.
DATA = osp.join(REPO, 'tests', 'data')

# Small DynaMixer used by the fast tests: 8x8 then 4x4 tokens at 32 px.
TINY_ARCH = dict(embed_dims=[16, 32], depths=[1, 2], num_segments=[4, 8],
                 reduced_dims=[2, 3])
TINY = dict(type='DynaMixer', arch=TINY_ARCH, img_size=32, patch_size=4)


_tool_server = None


def _fork_tool(args, cwd, timeout):
    """``python ARGS`` forked from tests/mmdx_toolserver.py, which has
    done the imports every tool starts with."""
    import json
    import select
    import signal
    import tempfile
    global _tool_server
    if _tool_server is None or _tool_server.poll() is not None:
        _tool_server = subprocess.Popen(
            [sys.executable, osp.join(REPO, 'tests', 'mmdx_toolserver.py')],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    server = _tool_server
    with tempfile.TemporaryDirectory() as tmp:
        out, err = osp.join(tmp, 'stdout'), osp.join(tmp, 'stderr')
        env = dict(os.environ, PYTHONUNBUFFERED='1', PYTHON=sys.executable)
        server.stdin.write(json.dumps(dict(
            tool=args[0], args=list(args[1:]), cwd=str(cwd), env=env,
            out=out, err=err)) + '\n')
        server.stdin.flush()
        pid = json.loads(server.stdout.readline())['pid']
        if not select.select([server.stdout], [], [], timeout)[0]:
            os.kill(pid, signal.SIGKILL)
            server.stdout.readline()
            raise subprocess.TimeoutExpired([sys.executable, *args], timeout)
        returncode = json.loads(server.stdout.readline())['returncode']
        with open(out) as f, open(err) as g:
            return subprocess.CompletedProcess(
                [sys.executable, *args], returncode, f.read(), g.read())


def run_tool(*args, cwd=REPO, timeout=900, env=None, check=True):
    """Run a repo tool (``tools/...py``, ``-c CODE`` or a shell script) as
    its own process, with the interpreter that runs the tests (shell
    scripts get it as ``PYTHON``, whatever the caller's environment says).

    A Python tool run in the caller's environment is forked from
    tests/mmdx_toolserver.py, which has done the imports every tool starts
    with (the tool's own imports then find them loaded): seconds saved per
    run. Anything given ``env``, ``-c`` code and shell scripts get a fresh
    interpreter, as do the libraries' own tools (``stock_tool``: nothing
    imported before the config's ``custom_imports``, as for a user) and
    every tool with MMDX_TEST_SUBPROCESS=1."""
    python = args[0].endswith('.py') or args[0] == '-c'
    cmd = [sys.executable, *args] if python else ['bash', *args]
    ours = not osp.isabs(args[0]) or args[0].startswith(REPO + os.sep)
    if (args[0].endswith('.py') and ours and env is None
            and os.environ.get('MMDX_TEST_SUBPROCESS') != '1'):
        proc = _fork_tool(args, cwd, timeout)
    else:
        full_env = dict(os.environ, PYTHONUNBUFFERED='1',
                        PYTHON=sys.executable)
        full_env.update(env or {})
        proc = subprocess.run(cmd, cwd=cwd, env=full_env,
                              capture_output=True, text=True,
                              timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f'{" ".join(cmd)} failed ({proc.returncode}):\n'
                             f'{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}')
    return proc


DIGITS_CONFIG = 'configs/dynamixer/dynamixer-tiny_1xb64_digits.py'


def digits_data_options(root):
    """--cfg-options that point the Quick start's config at ``root``."""
    # the training set sits inside its ImageIntegrityDataset
    return [f'train_dataloader.dataset.dataset.data_root={root}'] + [
        f'{split}_dataloader.dataset.data_root={root}'
        for split in ('val', 'test')]


def stock_tool(library, name='train.py'):
    """The path of a library's own ``tools/NAME`` as its installed package
    ships it (``<package>/.mim/tools/``, what ``mim train``/``mim test``
    run): MMPretrain's, MMDetection's or MMSegmentation's."""
    import importlib
    package = importlib.import_module(library)
    path = osp.join(osp.dirname(package.__file__), '.mim', 'tools', name)
    assert osp.isfile(path), f'{library} ships no {path}'
    return path


def snapshot(folder):
    """Size and modification time of every file under ``folder``: equal
    snapshots mean that no file there was lost or overwritten."""
    import glob
    return {p: (os.path.getsize(p), os.path.getmtime(p))
            for p in glob.glob(osp.join(folder, '**'), recursive=True)
            if osp.isfile(p)}


def requirements_file(name):
    """The requirements of ``requirements/<name>``, comments dropped."""
    from packaging.requirements import Requirement
    with open(osp.join(REPO, 'requirements', name)) as f:
        lines = [line.split('#')[0].strip() for line in f]
    return [Requirement(line) for line in lines if line]


def make_imagenet(root, num_classes=4, train_per_class=2, val_per_class=1,
                  seed=0):
    """A tiny data set in ImageNet's layout: ``train/<wnid>/<wnid>_<i>.JPEG``,
    ``val/ILSVRC2012_val_<n>.JPEG`` and ``meta/{train,val}.txt``. Each class
    gets its own colour so that a model can learn something."""
    import cv2
    import numpy as np
    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(root, 'meta'), exist_ok=True)
    os.makedirs(osp.join(root, 'val'), exist_ok=True)
    train_lines, val_lines, n_val = [], [], 0
    for cls in range(num_classes):
        wnid = f'n{cls:08d}'
        os.makedirs(osp.join(root, 'train', wnid), exist_ok=True)
        colour = rng.integers(0, 255, 3)
        for i in range(train_per_class + val_per_class):
            size = tuple(int(s) for s in rng.integers(40, 80, 2))
            img = np.clip(colour + rng.normal(0, 30, size + (3, )), 0,
                          255).astype(np.uint8)
            if i < train_per_class:
                name = f'{wnid}/{wnid}_{i}.JPEG'
                cv2.imwrite(osp.join(root, 'train', name), img)
                train_lines.append(f'{name} {cls}')
            else:
                n_val += 1
                name = f'ILSVRC2012_val_{n_val:08d}.JPEG'
                cv2.imwrite(osp.join(root, 'val', name), img)
                val_lines.append(f'{name} {cls}')
    for split, lines in (('train', train_lines), ('val', val_lines)):
        with open(osp.join(root, 'meta', f'{split}.txt'), 'w') as f:
            f.write('\n'.join(lines) + '\n')
    return root


def make_cifar(root, variant='cifar10', per_batch=4, seed=0):
    """Stand-ins for CIFAR's python batch files, in MMPretrain's layout."""
    import pickle

    import numpy as np
    rng = np.random.default_rng(seed)
    if variant == 'cifar10':
        folder, classes, label_key = 'cifar-10-batches-py', 10, 'labels'
        train = [f'data_batch_{i}' for i in range(1, 6)]
        test, meta, names_key = ['test_batch'], 'batches.meta', 'label_names'
    else:
        folder, classes, label_key = 'cifar-100-python', 100, 'fine_labels'
        train, test, meta, names_key = ['train'], ['test'], 'meta', \
            'fine_label_names'
    os.makedirs(osp.join(root, folder), exist_ok=True)
    for name in train + test:
        entry = {'data': rng.integers(0, 255, (per_batch, 3072),
                                      dtype=np.uint8),
                 label_key: rng.integers(0, classes, per_batch).tolist()}
        with open(osp.join(root, folder, name), 'wb') as f:
            pickle.dump(entry, f)
    with open(osp.join(root, folder, meta), 'wb') as f:
        pickle.dump({names_key: [f'class{i}' for i in range(classes)]}, f)
    return root


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def write_tiny_imagenet_config(path, data_root, random_aug=False,
                               batch_size=4, max_epochs=2, extra=''):
    """A small DynaMixer config on an ImageNet-format data set (32 px),
    on this repo's runtime; ``random_aug`` adds the randomness of the real
    recipe (crops, flips, Mixup/CutMix, drop path)."""
    aug = ("dict(type='RandomResizedCrop', scale=32, backend='pillow'),\n"
           "    dict(type='RandomFlip', prob=0.5, direction='horizontal'),"
           if random_aug else "dict(type='Resize', scale=(32, 32)),")
    text = f'''
_base_ = [{osp.join(REPO, 'configs/_base_/default_runtime.py')!r}]
model = dict(
    type='ImageClassifier',
    backbone=dict(type='DynaMixer', arch={TINY_ARCH!r}, img_size=32,
                  patch_size=4, drop_path_rate={0.1 if random_aug else 0.}),
    head=dict(type='DynaMixerClsHead', num_classes=4, in_channels=32),
    train_cfg={"dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)])" if random_aug else "None"},
)
data_preprocessor = dict(num_classes=4, mean=[127.5] * 3, std=[127.5] * 3,
                         to_rgb=True)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    {aug}
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(32, 32)),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size={batch_size}, num_workers=0, persistent_workers=False,
    dataset=dict(type='ImageIntegrityDataset',
                 dataset=dict(type='ImageNet', data_root={data_root!r},
                              split='train', pipeline=train_pipeline)),
    sampler=dict(type='ResumableSampler', shuffle=True, seed=0))
val_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(type='ImageNet', data_root={data_root!r}, split='val',
                 pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=1, end={max_epochs},
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs={max_epochs}, val_interval=1)
val_cfg = dict()
test_cfg = dict()
custom_hooks = [dict(type='EpochSeedHook'), dict(type='ModelCheckHook'),
                dict(type='StrictLoadHook'), dict(type='NonFiniteLossHook'),
                dict(type='EvalImageCheckHook'), dict(type='PreemptionHook'),
                dict(type='DynaMixerDiagnosticsHook', interval=1)]
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=1, max_keep_ckpts=-1))
randomness = dict(seed=0)
{extra}
'''
    with open(path, 'w') as f:
        f.write(text)
    return str(path)


def make_coco(root, num_train=4, num_val=2, seed=0):
    """A tiny COCO-format detection set: ``{train,val}2017/*.jpg`` and
    ``annotations/instances_{train,val}2017.json`` listing the 80 COCO
    categories, with boxes and polygon masks of two of them (drawn as filled
    shapes)."""
    import json

    import cv2
    import numpy as np
    from mmdet.datasets import CocoDataset
    rng = np.random.default_rng(seed)
    all_categories = [dict(id=i + 1, name=name) for i, name in
                      enumerate(CocoDataset.METAINFO['classes'])]
    categories = [c for c in all_categories if c['name'] in ('person', 'car')]
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    ann_id = 0
    for split, count in (('train2017', num_train), ('val2017', num_val)):
        os.makedirs(osp.join(root, split), exist_ok=True)
        images, annotations = [], []
        for i in range(count):
            h, w = (int(v) for v in rng.integers(120, 200, 2))
            img = rng.integers(0, 60, (h, w, 3)).astype(np.uint8)
            for cat in categories:
                x0, y0 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
                bw, bh = int(rng.integers(24, w // 2)), int(rng.integers(24, h // 2))
                poly = [x0, y0, x0 + bw, y0, x0 + bw, y0 + bh, x0, y0 + bh]
                cv2.fillPoly(img, [np.array(poly).reshape(-1, 2)],
                             (200, 40 * cat['id'], 90))
                ann_id += 1
                annotations.append(dict(
                    id=ann_id, image_id=i + 1, category_id=cat['id'],
                    bbox=[x0, y0, bw, bh], area=float(bw * bh), iscrowd=0,
                    segmentation=[[float(v) for v in poly]]))
            name = f'{i + 1:012d}.jpg'
            cv2.imwrite(osp.join(root, split, name), img)
            images.append(dict(id=i + 1, file_name=name, height=h, width=w))
        with open(osp.join(root, 'annotations', f'instances_{split}.json'),
                  'w') as f:
            json.dump(dict(images=images, annotations=annotations,
                           categories=all_categories), f)
    return root


def make_ade20k(root, num_train=4, num_val=2, seed=0):
    """A tiny set in ADE20K's layout: ``images/{training,validation}/*.jpg``
    and ``annotations/.../*.png`` label maps (0 = other, 1..150)."""
    import cv2
    import numpy as np
    rng = np.random.default_rng(seed)
    for split, count in (('training', num_train), ('validation', num_val)):
        for kind in ('images', 'annotations'):
            os.makedirs(osp.join(root, kind, split), exist_ok=True)
        for i in range(count):
            h, w = (int(v) for v in rng.integers(96, 160, 2))
            label = np.zeros((h, w), np.uint8)
            img = np.zeros((h, w, 3), np.uint8)
            for cls in rng.choice(np.arange(1, 151), 3, replace=False):
                y, x = int(rng.integers(0, h - 20)), int(rng.integers(0, w - 20))
                label[y:y + h // 2, x:x + w // 2] = cls
                img[y:y + h // 2, x:x + w // 2] = rng.integers(0, 255, 3)
            name = f'ADE_{split}_{i + 1:08d}'
            cv2.imwrite(osp.join(root, 'images', split, name + '.jpg'), img)
            cv2.imwrite(osp.join(root, 'annotations', split, name + '.png'),
                        label)
    return root


_S = dict(embed_dims=[192, 384], depths=[4, 14], num_segments=[8, 16],
          reduced_dims=[2, 2])
# The paper's ablations (Tables 4-7) as DynaMixer-S switches.
ABLATIONS = [
    dict(),
    dict(arch=dict(_S, num_segments=[1, 1])),      # segment width D
    dict(arch=dict(_S, num_segments=[2, 4])),      # width 96
    dict(arch=dict(_S, num_segments=[4, 8])),      # width 48
    dict(arch=dict(_S, reduced_dims=[1, 1])),      # d = 1
    dict(arch=dict(_S, reduced_dims=[4, 4])),      # d = 4
    dict(arch=dict(_S, reduced_dims=[8, 8])),      # d = 8
    dict(generator='static'),
    dict(generator='per_token'),
    dict(branches=('w', 'c')),                    # no column mixing
    dict(branches=('h', 'c')),                    # no row mixing
    dict(branches=('h', 'w')),                    # no channel mixing
    dict(reweight=False),
    dict(share_hw=True),
]


def cpu_autocast_supports(dtype):
    """Whether this torch's CPU autocast runs in ``dtype`` (torch 2.1's
    supports bfloat16 only)."""
    import torch
    try:
        with torch.autocast('cpu', dtype=dtype):
            return torch.is_autocast_cpu_enabled() if not hasattr(
                torch, 'get_autocast_dtype') else \
                torch.is_autocast_enabled('cpu')
    except RuntimeError:
        return False


CPU_FP16_REASON = ("this torch's CPU autocast has no float16 (torch 2.1's "
                   'has bfloat16 only)')


def graph_nodes(tensor):
    """Names of the autograd nodes that ``tensor`` was computed through."""
    names, todo, seen = set(), [tensor.grad_fn], set()
    while todo:
        node = todo.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.add(type(node).__name__)
        todo += [n for n, _ in node.next_functions]
    return names
