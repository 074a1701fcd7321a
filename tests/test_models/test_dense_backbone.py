"""DynaMixer as a dense-prediction backbone: normalised outputs, layer-wise
learning-rate decay through MMPretrain's and our constructor, and the
stride and width checks against necks and heads."""
import glob
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS, init_default_scope

import mmdynamixer  # noqa: F401
from mmdynamixer.models import DynaMixer, check_model
from mmdynamixer.utils import (CheckpointMismatchError,
                               load_state_dict_checked, torch_features)
from mmdx_testing import REPO, TINY

TINY_ARGS = {k: v for k, v in TINY.items() if k != 'type'}

CONFIGS = sorted(glob.glob(osp.join(
    REPO, 'configs/dynamixer_detection/*.py')) + glob.glob(osp.join(
        REPO, 'configs/dynamixer_segmentation/*.py')))
# the COCO and ADE20K configs (ImageNet DynaMixer-S, layer decay)
DENSE = [c for c in CONFIGS if 'digit-scenes' not in c]
# the digit-scene configs with a DynaMixer (the CPU-sized ones; the others
# hold the table's ResNet)
DIGIT_SCENES = [c for c in CONFIGS if 'dynamixer-tiny' in c]


@pytest.fixture(autouse=True)
def mmpretrain_scope():
    init_default_scope('mmpretrain')


def dense_model(config, **backbone):
    """The model of a dense config, without its ImageNet checkpoint."""
    cfg = Config.fromfile(config)
    cfg.model.backbone.init_cfg = None
    cfg.model.backbone.update(backbone)
    init_default_scope(cfg.default_scope)
    try:
        return cfg, MODELS.build(cfg.model)
    finally:
        init_default_scope('mmpretrain')


# ------------------------------------------------------- normalised outputs

def test_output_norms_normalise_each_output_and_are_fresh():
    plain = DynaMixer(**{**TINY_ARGS, 'out_indices': (0, 1)})
    normed = DynaMixer(**{**TINY_ARGS, 'out_indices': (0, 1),
                          'norm_outputs': True})
    extra = sum(p.numel() for p in normed.parameters()) - \
        sum(p.numel() for p in plain.parameters())
    assert extra == 2 * (16 + 32)  # a LayerNorm (weight, bias) per output
    assert normed.fresh_keys() == ('norm0.weight', 'norm0.bias',
                                   'norm1.weight', 'norm1.bias')
    normed.load_state_dict(plain.state_dict(), strict=False)
    x = torch.randn(2, 3, 32, 32)
    for raw, out in zip(plain(x), normed(x)):
        # LayerNorm over channels at init: zero mean, unit variance
        expected = torch.nn.functional.layer_norm(
            raw.permute(0, 2, 3, 1), raw.shape[1:2]).permute(0, 3, 1, 2)
        torch.testing.assert_close(out, expected)
        assert not torch.allclose(out, raw)


def test_published_classifier_keeps_its_parameters():
    assert sum(p.numel() for p in DynaMixer(arch='s').parameters()) == \
        sum(p.numel() for p in DynaMixer(arch='s', norm_outputs=False)
            .parameters())
    assert not any(k.startswith('norm') for k in
                   DynaMixer(arch='s').state_dict())


@pytest.mark.parametrize('config', DENSE, ids=osp.basename)
def test_dense_configs_norm_their_outputs(config):
    cfg, model = dense_model(config)
    assert cfg.model.backbone.norm_outputs
    assert model.backbone.fresh_keys() == (
        'norm0.weight', 'norm0.bias', 'norm1.weight', 'norm1.bias')


def checked_load(module, state_dict):
    load_state_dict_checked(module, state_dict, 'ckpt')


def plain_load(module, state_dict):
    module.load_state_dict(state_dict)


@pytest.mark.parametrize('load', [checked_load, pytest.param(
    plain_load, marks=pytest.mark.skipif(
        not torch_features.LOAD_STATE_DICT_PRE_HOOK, reason=(
            'torch < 2.5: no public load_state_dict pre-hook, so plain loads '
            'are not checked; the checked load runs the same hints')))],
    ids=['checked', 'load_state_dict'])
def test_checkpoint_with_other_output_norms_names_the_fix(load):
    trained = DynaMixer(**{**TINY_ARGS, 'out_indices': (1, ),
                           'norm_outputs': True})
    other = DynaMixer(**{**TINY_ARGS, 'out_indices': (0, 1),
                         'norm_outputs': True})
    with pytest.raises(CheckpointMismatchError) as err:
        load(other, trained.state_dict())
    assert ('The checkpoint has output norms for stages [1], this backbone '
            'for [0, 1] (norm_outputs=True, out_indices=(0, 1)): build it '
            'with norm_outputs=True, out_indices=(1,).') in str(err.value)
    plain = DynaMixer(**{**TINY_ARGS, 'out_indices': (1, )})
    with pytest.raises(CheckpointMismatchError, match=re.escape(
            'build it with norm_outputs=True, out_indices=(1,)')):
        load(plain, trained.state_dict())
    # the fix, as written
    fixed = DynaMixer(**{**TINY_ARGS, 'norm_outputs': True,
                         'out_indices': (1, )})
    load(fixed, trained.state_dict())


# ------------------------------------------------- layer-wise lr decay

def expected_depth(name, depths):
    """Index by index, independently of get_layer_depth: the stem 0, the
    layers 1..L in order, a downsampling with the layer after it, the
    output norms and everything outside the backbone L + 1."""
    num = sum(depths)
    if not name.startswith('backbone.'):
        return num + 1
    parts = name.split('.')
    starts = [sum(depths[:i]) for i in range(len(depths))]
    if parts[1] == 'downsample_layers':
        return 0 if parts[2] == '0' else starts[int(parts[2])] + 1
    if parts[1] == 'stages':
        return starts[int(parts[2])] + int(parts[3]) + 1
    assert re.fullmatch(r'norm\d', parts[1]), name
    return num + 1


def test_get_layer_depth_index_by_index():
    s = DynaMixer(arch='s', out_indices=(0, 1), norm_outputs=True)
    assert s.get_layer_depth('backbone.downsample_layers.0.weight',
                             'backbone.') == (0, 20)
    assert s.get_layer_depth('backbone.stages.0.0.norm1.weight',
                             'backbone.') == (1, 20)
    assert s.get_layer_depth('backbone.stages.0.3.mlp.fc1.weight',
                             'backbone.') == (4, 20)
    assert s.get_layer_depth('backbone.downsample_layers.1.bias',
                             'backbone.') == (5, 20)
    assert s.get_layer_depth('backbone.stages.1.0.mixer.reweight.fc1.weight',
                             'backbone.') == (5, 20)
    assert s.get_layer_depth('backbone.stages.1.13.norm2.bias',
                             'backbone.') == (18, 20)
    assert s.get_layer_depth('backbone.norm1.weight', 'backbone.') == (19, 20)
    assert s.get_layer_depth('neck.lateral_convs.0.conv.weight',
                             'backbone.') == (19, 20)
    for name, _ in s.named_parameters():
        assert s.get_layer_depth(name)[0] == \
            expected_depth('backbone.' + name, [4, 14]), name


def check_learning_rates(model, optim_wrapper, base_lr, rate, depths):
    """Every parameter's lr is base_lr * rate ** (L + 1 - depth); print the
    landmarks the issue names."""
    lrs = {group['param_name']: group['lr']
           for group in optim_wrapper.optimizer.param_groups
           if 'param_name' in group}  # not MMEngine's base-settings group
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert sorted(lrs) == sorted(names)
    num = sum(depths)
    for name in names:
        expected = base_lr * rate**(num + 1 - expected_depth(name, depths))
        assert lrs[name] == pytest.approx(expected, rel=1e-12), name
    starts = [sum(depths[:i]) for i in range(len(depths))]
    landmarks = ['backbone.downsample_layers.0.weight'] + [
        f'backbone.stages.{i}.{j}.norm1.weight'
        for i, d in enumerate(depths) for j in (0, d - 1)]
    landmarks += [n for n in names if not n.startswith('backbone.')][:1]
    landmarks += [n for n in names if 'head' in n][-1:]
    for name in landmarks:
        print(f'{name}: lr {lrs[name]:.3e} = {base_lr:g} * {rate}^'
              f'{num + 1 - expected_depth(name, depths)}')
    assert lrs[landmarks[0]] < lrs[landmarks[1]] < lrs[landmarks[-1]]
    assert starts  # two stages at least in every model tested here


def test_mmpretrain_constructor_decays_a_classifier():
    model = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='DynaMixer', arch='s'),
        head=dict(type='DynaMixerClsHead', num_classes=10, in_channels=384)))
    wrapper = build_optim_wrapper(model, dict(
        optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
        constructor='LearningRateDecayOptimWrapperConstructor',
        paramwise_cfg=dict(layer_decay_rate=0.8)))
    check_learning_rates(model, wrapper, 1e-3, 0.8, [4, 14])


@pytest.mark.parametrize('config', DENSE, ids=osp.basename)
def test_dense_configs_decay_layer_wise(config):
    cfg, model = dense_model(config)
    wrapper_cfg = cfg.optim_wrapper
    assert wrapper_cfg.constructor == \
        'mmpretrain.BackboneLayerDecayOptimWrapperConstructor'
    init_default_scope(cfg.default_scope)
    try:
        wrapper = build_optim_wrapper(model, wrapper_cfg)
    finally:
        init_default_scope('mmpretrain')
    check_learning_rates(model, wrapper, wrapper_cfg.optimizer.lr,
                         wrapper_cfg.paramwise_cfg.layer_decay_rate, [4, 14])


@pytest.mark.parametrize('rate', [0, -0.5, 1.5, 'fast', True])
def test_layer_decay_rate_outside_0_1_is_refused(rate):
    model = MODELS.build(dict(type='ImageClassifier', backbone=TINY,
                              head=dict(type='DynaMixerClsHead',
                                        num_classes=2, in_channels=32)))
    with pytest.raises(ValueError, match=re.escape(
            f'paramwise_cfg.layer_decay_rate={rate!r} must be a number in '
            '(0, 1]')):
        build_optim_wrapper(model, dict(
            optimizer=dict(type='AdamW', lr=1e-3),
            constructor='BackboneLayerDecayOptimWrapperConstructor',
            paramwise_cfg=dict(layer_decay_rate=rate)))


def test_layer_decay_needs_a_backbone_with_depths():
    model = MODELS.build(dict(
        type='ImageClassifier', backbone=dict(type='LeNet5'),
        head=dict(type='LinearClsHead', num_classes=2, in_channels=120)))
    with pytest.raises(TypeError, match='has the backbone LeNet5. Use a '
                       'backbone that has it'):
        build_optim_wrapper(model, dict(
            optimizer=dict(type='AdamW', lr=1e-3),
            constructor='BackboneLayerDecayOptimWrapperConstructor',
            paramwise_cfg=dict(layer_decay_rate=0.9)))


# ------------------------------------------------ strides and widths

@pytest.mark.parametrize('config,change,message', [
    ('retinanet', dict(bbox_head=dict(anchor_generator=dict(
        strides=[8, 16, 32, 64, 128]))),
     'model.bbox_head.anchor_generator.strides=[8, 16, 32, 64, 128], but '
     'the DynaMixer backbone and the neck give feature maps of strides '
     '[7, 14, 28, 56, 112]: set model.bbox_head.anchor_generator.strides='
     '[7, 14, 28, 56, 112].'),
    ('mask-rcnn', dict(rpn_head=dict(anchor_generator=dict(
        strides=[4, 8, 16, 32, 64]))),
     'model.rpn_head.anchor_generator.strides=[4, 8, 16, 32, 64], but'),
    ('mask-rcnn', dict(roi_head=dict(bbox_roi_extractor=dict(
        featmap_strides=[4, 8, 16, 32]))),
     'model.roi_head.bbox_roi_extractor.featmap_strides=[4, 8, 16, 32], '
     'but the DynaMixer backbone and the neck give feature maps of strides '
     '[7, 14, 28, 56]: set model.roi_head.bbox_roi_extractor.'
     'featmap_strides=[7, 14, 28, 56].'),
    ('mask-rcnn', dict(roi_head=dict(mask_roi_extractor=dict(
        featmap_strides=[4, 8, 16, 32]))),
     'model.roi_head.mask_roi_extractor.featmap_strides=[4, 8, 16, 32]'),
    ('retinanet', dict(neck=dict(in_channels=[256, 512])),
     'model.neck.in_channels=[256, 512], but the DynaMixer backbone '
     '(out_indices=(0, 1)) gives channels [192, 384]: set '
     'model.neck.in_channels=[192, 384].'),
    ('fpn_', dict(decode_head=dict(feature_strides=[4, 8, 16, 32])),
     'model.decode_head.feature_strides=[4, 8, 16, 32], but the DynaMixer '
     'backbone and the neck give feature maps of strides [7, 14, 28, 56]: '
     'set model.decode_head.feature_strides=[7, 14, 28, 56].'),
    ('upernet', dict(decode_head=dict(in_channels=[256, 512])),
     'model.decode_head.in_channels=[256, 512], but the DynaMixer backbone '
     '(out_indices=(0, 1)) gives channels [192, 384]: set '
     'model.decode_head.in_channels=[192, 384].'),
    ('upernet', dict(auxiliary_head=dict(in_index=2)),
     'model.auxiliary_head.in_index=2 picks outputs the backbone does not '
     'have: it gives 2 outputs (out_indices=(0, 1)), valid indices are '
     '0..1.'),
])
def test_strides_and_widths_against_the_backbone(config, change, message):
    path, = [c for c in DENSE if osp.basename(c).startswith(config)]
    cfg = Config.fromfile(path)
    cfg.model.backbone.init_cfg = None
    cfg.merge_from_dict(dict(model=change))
    init_default_scope(cfg.default_scope)
    try:
        model = MODELS.build(cfg.model)
    finally:
        init_default_scope('mmpretrain')
    with pytest.raises(ValueError) as err:
        check_model(model)
    assert message in str(err.value)


@pytest.mark.parametrize('config', DENSE + DIGIT_SCENES, ids=osp.basename)
def test_dense_configs_pass_the_checks(config):
    check_model(dense_model(config)[1])
