"""The configs carry the published recipes, kept here as values, each with
its source: the paper (Wang et al., "DynaMixer: A Vision MLP Architecture
with Dynamic Mixing", ICML 2022, arXiv 2201.12083) and the authors' reference
implementation (github.com/ziyuwwang/DynaMixer), whose README gives the exact
training command of each model. Where the two differ, the reference code is
what produced the paper's numbers."""
import os.path as osp

import pytest
from mmengine.config import Config

from mmdx_testing import REPO

# ImageNet-1K, 8 GPUs (the paper's ImageNet-1K experiments; the reference
# README's `distributed_train.sh 8 ... -b <per GPU> --lr ... --drop-path ...`
# commands). The paper's text gives L an lr of 1e-3; its
# training command, used here, 2e-3.
IMAGENET = {
    'S': dict(per_gpu=256, global_batch=2048, lr=2e-3, drop_path=0.1),
    'M': dict(per_gpu=128, global_batch=1024, lr=2e-3, drop_path=0.1),
    'L': dict(per_gpu=64, global_batch=512, lr=2e-3, drop_path=0.3),
}
# Shared by S/M/L (the same README commands): --opt adamw --weight-decay
# 0.05 --epochs 300 --sched cosine --warmup-epochs 20 --warmup-lr 1e-6
# --apex-amp --smoothing 0.1 --aa rand-m9-mstd0.5-inc1 --reprob 0.25
# --remode pixel --mixup 0.8 --cutmix 1.0 --img-size 224.
RECIPE = dict(weight_decay=0.05, epochs=300, warmup_epochs=20,
              warmup_lr=1e-6, label_smoothing=0.1, randaug_magnitude=9,
              randaug_magnitude_std=0.5, erase_prob=0.25, mixup=0.8,
              cutmix=1.0, img_size=224)
# Evaluation crop ratio (reference models/configs/conf_dynamixer.py,
# default_cfgs: crop_pct), with bicubic resizing (models/vision_model.py).
CROP = dict(S=0.9, M=0.9, L=0.875)
# CIFAR-10/100 transfer (paper Table 8; the reference
# transfer_learning/transfer_learning.py defaults: SGD momentum 0.9, lr 0.01,
# weight decay 5e-4, CosineAnnealingLR to min-lr 2e-4 with T_max 60 over 60
# epochs, batch 128, images resized to 224 then RandomCrop(224,
# padding=224 // 8), RandomHorizontalFlip, Normalize((0.4914, 0.4822,
# 0.4465), (0.2023, 0.1994, 0.2010)); --transfer-ratio 0.01 for the
# backbone's lr).
CIFAR = dict(momentum=0.9, lr=0.01, weight_decay=5e-4, eta_min=2e-4,
             epochs=60, batch=128, img_size=224, crop_padding=224 // 8,
             flip_prob=0.5, backbone_lr_mult=0.01,
             mean=(0.4914, 0.4822, 0.4465), std=(0.2023, 0.1994, 0.2010))


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
    assert opt.type == 'AmpOptimWrapper'  # --apex-amp
    assert opt.optimizer.type == 'AdamW'
    assert opt.optimizer.lr == spec['lr']
    assert opt.optimizer.weight_decay == RECIPE['weight_decay']
    # no decay on norms and biases (timm filters 1-D parameters)
    pw = opt.paramwise_cfg
    assert pw.norm_decay_mult == 0 and pw.bias_decay_mult == 0

    warmup, cosine = cfg.param_scheduler
    assert warmup.type == 'LinearLR'
    assert warmup.end == RECIPE['warmup_epochs']
    assert warmup.start_factor * opt.optimizer.lr == pytest.approx(
        RECIPE['warmup_lr'])
    assert cosine.type == 'CosineAnnealingLR'
    assert cosine.begin == RECIPE['warmup_epochs']
    assert cosine.end == cfg.train_cfg.max_epochs == RECIPE['epochs']

    assert cfg.model.head.loss.type == 'LabelSmoothLoss'
    assert cfg.model.head.loss.label_smooth_val == RECIPE['label_smoothing']

    ra = find(cfg.train_pipeline, 'RandAugment')  # rand-m9-mstd0.5-inc1
    assert ra.magnitude_level == RECIPE['randaug_magnitude']
    assert ra.magnitude_std == RECIPE['randaug_magnitude_std']
    assert ra.policies == 'timm_increasing' and ra.num_policies == 2
    re_cfg = find(cfg.train_pipeline, 'RandomErasing')
    assert re_cfg.erase_prob == RECIPE['erase_prob']
    assert re_cfg.mode == 'rand'  # --remode pixel: per-pixel random values

    augments = {a.type: a.alpha for a in cfg.model.train_cfg.augments}
    assert augments == {'Mixup': RECIPE['mixup'], 'CutMix': RECIPE['cutmix']}

    size = RECIPE['img_size']
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
    assert cfg.train_dataloader.dataset.dataset.type == f'CIFAR{classes}'
    assert cfg.model.backbone.arch == 's'
    init = cfg.model.backbone.init_cfg
    assert init.type == 'Pretrained' and init.prefix == 'backbone'
    assert cfg.model.head.num_classes == classes
    opt = cfg.optim_wrapper.optimizer
    assert opt.type == 'SGD' and opt.momentum == CIFAR['momentum']
    assert opt.lr == CIFAR['lr'] and opt.weight_decay == CIFAR['weight_decay']
    sched = cfg.param_scheduler
    assert sched.type == 'CosineAnnealingLR'
    assert sched.eta_min_ratio * opt.lr == pytest.approx(CIFAR['eta_min'])
    assert sched.T_max == CIFAR['epochs'] == cfg.train_cfg.max_epochs
    assert cfg.train_dataloader.batch_size == CIFAR['batch']
    crop = find(cfg.train_pipeline, 'RandomCrop')
    assert crop.crop_size == CIFAR['img_size']
    assert crop.padding == CIFAR['crop_padding']
    assert find(cfg.train_pipeline, 'RandomFlip').prob == CIFAR['flip_prob']
    assert cfg.optim_wrapper.paramwise_cfg.custom_keys.backbone.lr_mult \
        == CIFAR['backbone_lr_mult']
    assert not cfg.model.get('train_cfg')  # no Mixup/CutMix
    # MMPretrain normalises 0-255 pixels: the reference's 0-1 values x 255
    preprocessor = cfg.data_preprocessor
    assert preprocessor.mean == pytest.approx([255 * m for m in CIFAR['mean']])
    assert preprocessor.std == pytest.approx([255 * s for s in CIFAR['std']])
