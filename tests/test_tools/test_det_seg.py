"""DynaMixer in MMDetection and MMSegmentation: every detection and
segmentation config trains 2 iterations and is evaluated, RetinaNet and
Semantic FPN with MMDetection's and MMSegmentation's own tools/train.py and
tools/test.py, the others with this package's, on tiny generated data in
COCO and ADE20K layouts (the real CocoDataset/CocoMetric and
ADE20KDataset/IoUMetric); and the guide's backbone swap and safety block
work on stock configs."""
import glob
import json
import os.path as osp
import re

import pytest
import torch

from mmdx_testing import REPO, make_ade20k, make_coco, run_tool, stock_tool

# the COCO and ADE20K configs (the digit-scene ones train on their own data
# in test_digit_scene_training.py)
DET = sorted(p for p in glob.glob(osp.join(
    REPO, 'configs/dynamixer_detection/*.py')) if 'digit-scenes' not in p)
SEG = sorted(p for p in glob.glob(osp.join(
    REPO, 'configs/dynamixer_segmentation/*.py')) if 'digit-scenes' not in p)


def det_overrides(root, checkpoint, masks):
    # Two iterations leave every score near the classifier prior, under the
    # configs' 0.05 threshold; keep all boxes so that COCO evaluation runs.
    test_cfg = "dict(rcnn=dict(score_thr=0.0))" if masks else \
        "dict(score_thr=0.0)"
    return f'''
data_root = {root + '/'!r}
_scale = (224, 160)
_train = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask={masks}),
    dict(type='Resize', scale=_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
_test = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask={masks}),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape',
                                          'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(dataset=dict(data_root=data_root, pipeline=_train)))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=_test))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator
train_cfg = dict(max_epochs=1)
model = dict(backbone=dict(init_cfg=dict(checkpoint={checkpoint!r})),
             test_cfg={test_cfg})
default_hooks = dict(logger=dict(interval=1))
'''


def seg_overrides(root, checkpoint):
    return f'''
data_root = {root!r}
crop_size = (112, 112)
_train = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(224, 112), ratio_range=(0.5, 2.0),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
_test = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(224, 112), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
model = dict(data_preprocessor=dict(size=crop_size),
             test_cfg=dict(crop_size=crop_size, stride=(75, 75)),
             backbone=dict(init_cfg=dict(checkpoint={checkpoint!r})))
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(dataset=dict(data_root=data_root, pipeline=_train)))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=_test))
test_dataloader = val_dataloader
train_cfg = dict(max_iters=2, val_interval=2)
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(by_epoch=False, interval=2))
'''


@pytest.fixture(scope='module')
def assets(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('detseg')
    from mmpretrain.registry import MODELS

    import mmdynamixer  # noqa: F401
    classifier = MODELS.build(dict(
        type='ImageClassifier', backbone=dict(type='DynaMixer', arch='s'),
        head=dict(type='DynaMixerClsHead', num_classes=1000,
                  in_channels=384)))
    ckpt = str(tmp / 'dynamixer-s_in1k.pth')
    torch.save({'state_dict': classifier.state_dict()}, ckpt)
    return dict(tmp=tmp, checkpoint=ckpt,
                backbone_entries=len(classifier.backbone.state_dict()),
                coco=make_coco(str(tmp / 'coco')),
                ade=make_ade20k(str(tmp / 'ade')))


def write_child(path, base, overrides):
    path.write_text(f'_base_ = {base!r}\n' + overrides)
    return str(path)


FRESH_NORMS = ('DynaMixer: 4 keys are not in {} and start from their init '
               '(layers added on top of it): norm0.bias, norm0.weight, '
               'norm1.bias, norm1.weight')
LEFT_OUT_HEAD = ("{}: loading the {} entries under 'backbone.'; left out 4 "
                 'others: head.fc.bias, head.fc.weight, head.norm.bias, '
                 'head.norm.weight')


# which library's own tools run a config (the others run with ours)
STOCK = {'retinanet': 'mmdet', 'fpn_': 'mmseg'}


def library_of(config):
    return next((lib for key, lib in STOCK.items()
                 if osp.basename(config).startswith(key)), None)


def logged_test_metrics(log):
    """The metrics of the runner's last test log line (`Epoch(test)` or
    `Iter(test)`), as the stock tools print them."""
    line = [line for line in log.splitlines() if '(test)' in line][-1]
    return {k: float(v) for k, v in
            re.findall(r'(\S+): (-?\d+\.\d+)', line.split('(test)')[1])}


def train_and_test(config, work, checkpoint_glob, imagenet=None):
    """Train (the backbone from the ImageNet checkpoint ``imagenet``:
    strictly, with exactly the output norms new and the classifier's head
    left out), then evaluate; with the library's own tools for the configs
    in STOCK, with ours for the others."""
    library = library_of(config)
    train, test = (stock_tool(library, 'train.py'),
                   stock_tool(library, 'test.py')) if library else \
        ('tools/train.py', 'tools/test.py')
    log = run_tool(train, config, '--work-dir', str(work)).stdout
    if imagenet:
        assert FRESH_NORMS.format(imagenet['checkpoint']) in log, log[-3000:]
        assert LEFT_OUT_HEAD.format(imagenet['checkpoint'],
                                    imagenet['backbone_entries']) in log
    ckpt = sorted(glob.glob(str(work / checkpoint_glob)))[-1]
    out = run_tool(test, config, ckpt, '--work-dir',
                   str(work / 'test')).stdout
    if library:
        return logged_test_metrics(out)
    return json.loads(out.split('Test metrics: ')[-1].splitlines()[0])


@pytest.mark.parametrize('config', DET, ids=osp.basename)
def test_detection_config_trains_and_evaluates(config, assets, tmp_path):
    masks = 'mask-rcnn' in config
    child = write_child(tmp_path / 'cfg.py', config, det_overrides(
        assets['coco'], assets['checkpoint'], masks))
    metrics = train_and_test(child, tmp_path / 'work', 'epoch_1.pth', assets)
    assert 0 <= metrics['coco/bbox_mAP'] <= 1
    if masks:
        assert 0 <= metrics['coco/segm_mAP'] <= 1


@pytest.mark.parametrize('config', SEG, ids=osp.basename)
def test_segmentation_config_trains_and_evaluates(config, assets, tmp_path):
    child = write_child(tmp_path / 'cfg.py', config, seg_overrides(
        assets['ade'], assets['checkpoint']))
    metrics = train_and_test(child, tmp_path / 'work', 'iter_2.pth', assets)
    assert 0 <= metrics['mIoU'] <= 100 and 'aAcc' in metrics


def test_both_kinds_of_tools_are_covered():
    """One detection and one segmentation config run with the libraries'
    own tools, the others with ours."""
    assert [library_of(c) for c in DET].count('mmdet') == 1
    assert [library_of(c) for c in SEG].count('mmseg') == 1
    assert None in [library_of(c) for c in DET + SEG]


DOC = osp.join(REPO, 'docs', 'en', 'user_guides', 'detection_segmentation.md')


def doc_block(marker):
    text = open(DOC).read()
    block = text.split(f'<!-- {marker} -->')[1]
    return re.search(r'```python\n(.*?)```', block, re.S).group(1)


@pytest.mark.parametrize('marker,overrides', [
    ('swap:mmdet', 'det'), ('swap:mmseg', 'seg')])
def test_docs_swap_on_stock_configs_trains(marker, overrides, assets,
                                             tmp_path):
    """The swap and safety blocks of the detection and segmentation guide,
    pasted under a stock
    MMDetection RetinaNet or MMSegmentation UPerNet config, give a model
    that trains, with the safety hooks and checked data sets."""
    from mmengine.config import Config
    from mmengine.runner import Runner
    swap = doc_block(marker).replace('dynamixer-s_in1k.pth',
                                        assets['checkpoint'])
    assert re.search(r"_base_ = '(mmdet|mmseg)::", swap)
    swap += doc_block('safety')
    data = det_overrides(assets['coco'], assets['checkpoint'], False) \
        if overrides == 'det' else seg_overrides(assets['ade'],
                                                 assets['checkpoint'])
    (tmp_path / 'swap.py').write_text(swap)
    child = write_child(tmp_path / 'cfg.py', str(tmp_path / 'swap.py'),
                        data.replace('max_iters=2, val_interval=2',
                                     'max_iters=1, val_interval=1'))
    cfg = Config.fromfile(child)
    cfg.work_dir = str(tmp_path / 'work')
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter >= 1
    assert type(runner.train_dataloader.dataset).__name__ == \
        'ImageIntegrityDataset'
    hooks = {type(h).__name__ for h in runner.hooks}
    assert {'AtomicCheckpointHook', 'ModelCheckHook', 'StrictLoadHook',
            'NonFiniteLossHook', 'EvalImageCheckHook'} <= hooks, hooks
    assert type(runner.model.backbone).__name__ == 'DynaMixer'
    assert runner.model.backbone.sliding_window
    assert runner.model.backbone.norm_outputs
    # (MMEngine adds a group of its own that records the base settings)
    scales = [g['lr_scale'] for g in runner.optim_wrapper.param_groups
              if 'param_name' in g]
    assert min(scales) == pytest.approx(0.9**19) and max(scales) == 1


def test_stride_mismatch_stops_the_tool_naming_the_fix(assets, tmp_path):
    """Anchors of a stock stride-8 detector on DynaMixer (strides 7, 14):
    tools/train.py stops when the model is built, naming the setting and
    the real strides (the value it names is the config's own, which
    test_dense_configs_pass_the_checks builds)."""
    config, = [c for c in DET if 'retinanet' in c]
    child = write_child(tmp_path / 'cfg.py', config, det_overrides(
        assets['coco'], assets['checkpoint'], False))
    wrong = 'model.bbox_head.anchor_generator.strides=[8,16,32,64,128]'
    proc = run_tool('tools/train.py', child, '--work-dir',
                    str(tmp_path / 'work'), '--cfg-options', wrong,
                    check=False)
    assert proc.returncode != 0
    fix = ('set model.bbox_head.anchor_generator.strides=[7, 14, 28, 56, '
           '112].')
    assert ('model.bbox_head.anchor_generator.strides=[8, 16, 32, 64, 128], '
            'but the DynaMixer backbone and the neck give feature maps of '
            f'strides [7, 14, 28, 56, 112]: {fix}') in proc.stderr, \
        proc.stderr[-3000:]
    assert 'Epoch(train)' not in proc.stdout
    assert not glob.glob(str(tmp_path / 'work' / '*.pth'))
