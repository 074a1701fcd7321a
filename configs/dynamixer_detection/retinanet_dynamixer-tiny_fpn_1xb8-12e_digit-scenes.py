# RetinaNet on the digit scenes (the package's embedded dense data set:
# scikit-learn's digit scans composed into scenes, no download) with the
# Quick start's DynaMixer in sliding-window mode, initialised from the Quick
# start's classification checkpoint: MMDetection's own RetinaNet config, sized
# for a CPU (strides 4 and 8, FPN levels 4, 8, 16).
#   python tools/dataset_converters/prepare_digit_scenes.py data/digit_scenes
#   python tools/train.py configs/dynamixer_detection/retinanet_dynamixer-tiny_fpn_1xb8-12e_digit-scenes.py
# (bash tools/digit_scenes.sh does both and the evaluation, after the Quick
# start, which writes checkpoints/dynamixer-tiny_1xb64_digits.pth.)
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['mmdynamixer'], allow_failed_imports=False)

digits_checkpoint = 'checkpoints/dynamixer-tiny_1xb64_digits.pth'
data_root = 'data/digit_scenes/'
metainfo = dict(classes=('0', '1', '2', '3', '4', '5', '6', '7', '8', '9'))

model = dict(
    # the Quick start's normalisation; padding to the deepest stride
    data_preprocessor=dict(mean=[127.5] * 3, std=[127.5] * 3,
                           bgr_to_rgb=True, pad_size_divisor=8),
    backbone=dict(
        _delete_=True,
        type='mmpretrain.DynaMixer',
        # the Quick start's model (configs/dynamixer/dynamixer-tiny_1xb64_digits.py)
        arch=dict(embed_dims=[32, 64], depths=[2, 2], num_segments=[4, 8],
                  reduced_dims=[2, 2]),
        img_size=32,
        patch_size=4,
        sliding_window=True,
        out_indices=(0, 1),
        norm_outputs=True,  # a LayerNorm per output (new: starts fresh)
        drop_path_rate=0.05,
        # a model this small keeps little for backward, and selective
        # checkpointing's cost per operation outweighs it: train steps are
        # 1.7x slower with it (tools/analysis_tools/benchmark.py
        # configs/dynamixer/dynamixer-tiny_1xb64_digits.py --bench train -b 64)
        selective_cp=False,
        init_cfg=dict(type='Pretrained', checkpoint=digits_checkpoint,
                      prefix='backbone.')),
    neck=dict(in_channels=[32, 64], out_channels=64, start_level=0,
              add_extra_convs='on_input', num_outs=3),
    # RetinaNet's head without its 3x3 towers (stacked_convs=0): the
    # classifier and box regressor read the FPN levels directly, so that the
    # backbone, not the head, has to recognise the digits. With the two
    # stacked convs, a backbone frozen at its random init reached 52.4 box AP
    # against 55.8 from the Quick start's checkpoint; without them, 19.9
    # against 46.5 (test scenes, seed 0, issue 23's closing note).
    bbox_head=dict(num_classes=10, in_channels=64, stacked_convs=0,
                   feat_channels=64,
                   anchor_generator=dict(strides=[4, 8, 16])),
)

# the scenes at their own size (58 to 96 px, digits of 14 to 34 px); no flip
# (a mirrored digit is another shape)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale_factor=1.0, keep_ratio=True),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale_factor=1.0, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape',
                                          'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    sampler=dict(type='mmpretrain.ResumableSampler', shuffle=True),
    # missing data and bad image files stop the run naming the path
    dataset=dict(
        _delete_=True, type='mmpretrain.ImageIntegrityDataset',
        prepare='python tools/dataset_converters/prepare_digit_scenes.py '
        'data/digit_scenes',
        dataset=dict(type='CocoDataset', data_root=data_root,
                     metainfo=metainfo,
                     ann_file='annotations/instances_train.json',
                     data_prefix=dict(img='images/train/'),
                     filter_cfg=dict(filter_empty_gt=True, min_size=4),
                     pipeline=train_pipeline)))
val_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo,
                 ann_file='annotations/instances_val.json',
                 data_prefix=dict(img='images/val/'),
                 pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    dataset=dict(type='CocoDataset', data_root=data_root, metainfo=metainfo,
                 ann_file='annotations/instances_test.json',
                 data_prefix=dict(img='images/test/'), test_mode=True,
                 pipeline=test_pipeline))
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = dict(type='CocoMetric', metric='bbox', format_only=False,
                      ann_file=data_root + 'annotations/instances_test.json')

# AdamW with a short warm-up and a cosine decay: 12 epochs of 75 iterations
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=100),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=0,
         end=12, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=12, val_interval=4)
auto_scale_lr = dict(enable=False, base_batch_size=8)

# mmdynamixer's safety (the safety block of docs/en/user_guides/detection_segmentation.md): checkpoints that a crash cannot
# tear; a model whose parts fit the backbone; load_from/--resume checkpoints
# that must fit the model; a stop at a non-finite loss; bad evaluation
# images named.
default_hooks = dict(logger=dict(interval=25),
                     checkpoint=dict(type='mmpretrain.AtomicCheckpointHook',
                                     interval=4, max_keep_ckpts=1))
custom_hooks = [
    dict(type='mmpretrain.ModelCheckHook'),
    dict(type='mmpretrain.StrictLoadHook'),
    dict(type='mmpretrain.NonFiniteLossHook'),
    dict(type='mmpretrain.EvalImageCheckHook'),
    dict(type='mmpretrain.PreemptionHook'),
]
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
