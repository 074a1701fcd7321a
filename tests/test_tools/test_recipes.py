"""The configs carry the recipes of SPEC section 4, read from SPEC.md."""
import os.path as osp
import re

import pytest
from mmengine.config import Config

from mmdx_testing import REPO, SHARED

SPEC = open(osp.join(SHARED, 'SPEC.md')).read()


def spec_section(number):
    return SPEC.split(f'\n## {number}.')[1].split('\n## ')[0]


def table_rows(text):
    return [[c.strip() for c in line.strip().strip('|').split('|')]
            for line in text.splitlines() if line.startswith('|')]


def number(cell):
    return float(re.match(r'[\d.e-]+', cell).group())


IMAGENET = {row[0]: dict(per_gpu=int(row[1]), global_batch=int(row[2]),
                         lr=number(row[3]), drop_path=number(row[4]))
            for row in table_rows(spec_section(4))
            if row[0] in ('S', 'M', 'L')}
CROP = dict(zip('SML', (number(c) for c in next(
    r for r in table_rows(spec_section(3))
    if r[0].startswith('reference eval crop_pct'))[1:])))
RECIPE = spec_section(4).split('\n\n')[1]
CIFAR = spec_section(4).split('CIFAR-10/100 transfer')[1]


def test_spec_tables_parsed():
    assert set(IMAGENET) == {'S', 'M', 'L'} and set(CROP) == {'S', 'M', 'L'}


def config_for(model):
    per_gpu = IMAGENET[model]['per_gpu']
    return Config.fromfile(osp.join(
        REPO, f'configs/dynamixer/dynamixer-{model.lower()}_8xb{per_gpu}'
        '_in1k.py'))


def find(pipeline, type_):
    return next(t for t in pipeline if t['type'] == type_)


@pytest.mark.parametrize('model', ['S', 'M', 'L'])
def test_imagenet_recipe(model):
    cfg, spec = config_for(model), IMAGENET[model]
    assert cfg.train_dataloader.batch_size * 8 == spec['global_batch']
    assert cfg.auto_scale_lr.base_batch_size == spec['global_batch']
    assert cfg.model.backbone.arch == model.lower()
    assert cfg.model.backbone.drop_path_rate == spec['drop_path']

    opt = cfg.optim_wrapper
    assert 'AMP' in RECIPE and opt.type == 'AmpOptimWrapper'
    wd = number(re.search(r'weight decay ([\d.]+)', RECIPE).group(1))
    assert opt.optimizer.type == 'AdamW' and 'AdamW' in RECIPE
    assert opt.optimizer.lr == spec['lr'] and opt.optimizer.weight_decay == wd
    # no decay on norms and biases (timm filters 1-D parameters)
    pw = opt.paramwise_cfg
    assert pw.norm_decay_mult == 0 and pw.bias_decay_mult == 0

    warm_epochs, warm_lr = re.search(
        r'(\d+) warm-up epochs from lr ([\d.e-]+)', RECIPE).groups()
    warmup, cosine = cfg.param_scheduler
    assert warmup.type == 'LinearLR' and warmup.end == int(warm_epochs)
    assert warmup.start_factor * opt.optimizer.lr == pytest.approx(
        float(warm_lr))
    epochs = int(re.search(r'(\d+) epochs\)', spec_section(4)).group(1))
    assert cosine.type == 'CosineAnnealingLR' and 'cosine' in RECIPE
    assert cosine.begin == int(warm_epochs) and cosine.end == epochs
    assert cfg.train_cfg.max_epochs == epochs

    smooth = number(re.search(r'label smoothing ([\d.]+)', RECIPE).group(1))
    assert cfg.model.head.loss.type == 'LabelSmoothLoss'
    assert cfg.model.head.loss.label_smooth_val == smooth

    m, mstd = re.search(r'rand-m(\d+)-mstd([\d.]+)-inc1', RECIPE).groups()
    ra = find(cfg.train_pipeline, 'RandAugment')
    assert ra.magnitude_level == int(m) and ra.magnitude_std == float(mstd)
    assert ra.policies == 'timm_increasing' and ra.num_policies == 2
    erase = number(re.search(r'random erasing ([\d.]+)', RECIPE).group(1))
    re_cfg = find(cfg.train_pipeline, 'RandomErasing')
    assert re_cfg.erase_prob == erase and re_cfg.mode == 'rand'  # pixel mode

    mixup = number(re.search(r'Mixup ([\d.]+)', RECIPE).group(1))
    cutmix = number(re.search(r'CutMix ([\d.]+)', RECIPE).group(1))
    augments = {a.type: a.alpha for a in cfg.model.train_cfg.augments}
    assert augments == {'Mixup': mixup, 'CutMix': cutmix}

    size = int(re.search(r'(\d+) px', RECIPE).group(1))
    crop = find(cfg.train_pipeline, 'RandomResizedCrop')
    assert crop.scale == size and crop.interpolation == 'bicubic'
    test_pipeline = cfg.test_dataloader.dataset.pipeline
    resize = find(test_pipeline, 'ResizeEdge')
    assert resize.scale == int(size / CROP[model])
    assert resize.interpolation == 'bicubic'
    assert find(test_pipeline, 'CenterCrop').crop_size == size
    assert cfg.val_dataloader.dataset.pipeline == test_pipeline

    assert tuple(cfg.val_evaluator.topk) == (1, 5)
    ckpt = cfg.default_hooks.checkpoint
    assert ckpt.save_best == 'accuracy/top1' and ckpt.rule == 'greater'


@pytest.mark.parametrize('classes', [10, 100])
def test_cifar_recipe(classes):
    cfg = Config.fromfile(osp.join(
        REPO, f'configs/dynamixer/dynamixer-s_1xb128_cifar{classes}.py'))
    assert cfg.train_dataloader.dataset.type == f'CIFAR{classes}'
    assert cfg.model.backbone.arch == 's'
    init = cfg.model.backbone.init_cfg
    assert init.type == 'Pretrained' and init.prefix == 'backbone'
    assert cfg.model.head.num_classes == classes
    opt = cfg.optim_wrapper.optimizer
    momentum, lr, wd = re.search(
        r'SGD momentum ([\d.]+), lr ([\d.]+), weight decay ([\d.e-]+)',
        CIFAR).groups()
    assert opt.type == 'SGD' and opt.momentum == float(momentum)
    assert opt.lr == float(lr) and opt.weight_decay == float(wd)
    eta_min, epochs = re.search(r'cosine to ([\d.e-]+) over (\d+) epochs',
                                CIFAR).groups()
    sched = cfg.param_scheduler
    assert sched.type == 'CosineAnnealingLR'
    assert sched.eta_min_ratio * opt.lr == pytest.approx(float(eta_min))
    assert sched.T_max == int(epochs) == cfg.train_cfg.max_epochs
    batch = int(re.search(r'batch (\d+)', CIFAR).group(1))
    assert cfg.train_dataloader.batch_size == batch
    size = int(re.search(r'resized\s+to (\d+)', CIFAR).group(1))
    pad = int(re.search(r'random crop with (\d+) px padding', CIFAR).group(1))
    crop = find(cfg.train_pipeline, 'RandomCrop')
    assert crop.crop_size == size and crop.padding == pad
    assert find(cfg.train_pipeline, 'RandomFlip').prob == 0.5
    mult = float(re.search(r'at\s+([\d.]+) x the head', CIFAR).group(1))
    assert cfg.optim_wrapper.paramwise_cfg.custom_keys.backbone.lr_mult \
        == mult
    assert not cfg.model.get('train_cfg')  # no Mixup/CutMix
