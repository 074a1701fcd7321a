# Semantic FPN on the digit scenes (the package's embedded dense data set:
# scikit-learn's digit scans composed into scenes, no download; background
# and the ten digits as 11 classes) with the Quick start's DynaMixer in
# sliding-window mode, initialised from the Quick start's classification
# checkpoint: MMSegmentation's own Semantic FPN, sized for a CPU (strides 4
# and 8), whole-image inference at each scene's own size.
#   python tools/dataset_converters/prepare_digit_scenes.py data/digit_scenes
#   python tools/train.py configs/dynamixer_segmentation/fpn_dynamixer-tiny_1xb8-1k_digit-scenes.py
_base_ = [
    'mmseg::_base_/models/fpn_r50.py', 'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_20k.py'
]
custom_imports = dict(imports=['mmdynamixer'], allow_failed_imports=False)

digits_checkpoint = 'checkpoints/dynamixer-tiny_1xb64_digits.pth'
data_root = 'data/digit_scenes/'
metainfo = dict(
    classes=('background', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9'))
norm_cfg = dict(type='BN', requires_grad=True)  # (SyncBN needs GPUs)

model = dict(
    # the Quick start's normalisation; training batches padded to the
    # largest scene, test images to the deepest stride
    data_preprocessor=dict(mean=[127.5] * 3, std=[127.5] * 3,
                           size=(96, 96), test_cfg=dict(size_divisor=8)),
    pretrained=None,
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
    neck=dict(in_channels=[32, 64], out_channels=64, num_outs=2),
    decode_head=dict(in_channels=[64, 64], in_index=[0, 1],
                     feature_strides=[4, 8], channels=64, num_classes=11,
                     norm_cfg=norm_cfg),
    test_cfg=dict(mode='whole'),
)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
test_pipeline = train_pipeline

train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    # missing data and bad image files stop the run naming the path
    dataset=dict(
        type='mmpretrain.ImageIntegrityDataset',
        prepare='python tools/dataset_converters/prepare_digit_scenes.py '
        'data/digit_scenes',
        dataset=dict(type='BaseSegDataset', data_root=data_root,
                     metainfo=metainfo, img_suffix='.png',
                     seg_map_suffix='.png',
                     data_prefix=dict(img_path='images/train',
                                      seg_map_path='seg/train'),
                     pipeline=train_pipeline)))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='BaseSegDataset', data_root=data_root,
                 metainfo=metainfo, img_suffix='.png', seg_map_suffix='.png',
                 data_prefix=dict(img_path='images/val',
                                  seg_map_path='seg/val'),
                 pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='BaseSegDataset', data_root=data_root,
                 metainfo=metainfo, img_suffix='.png', seg_map_suffix='.png',
                 data_prefix=dict(img_path='images/test',
                                  seg_map_path='seg/test'),
                 pipeline=test_pipeline))
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

# AdamW with a short warm-up and a poly decay: 1000 iterations of batch 8
# (about 13 passes over the 600 training scenes)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=100),
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=100, end=1000,
         by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=1000, val_interval=500)

# mmdynamixer's safety (the safety block of docs/en/user_guides/detection_segmentation.md): checkpoints that a crash cannot
# tear; a model whose parts fit the backbone; load_from/--resume checkpoints
# that must fit the model; a stop at a non-finite loss; bad evaluation
# images named.
default_hooks = dict(logger=dict(interval=50),
                     checkpoint=dict(type='mmpretrain.AtomicCheckpointHook',
                                     by_epoch=False, interval=500,
                                     max_keep_ckpts=1))
custom_hooks = [
    dict(type='mmpretrain.ModelCheckHook'),
    dict(type='mmpretrain.StrictLoadHook'),
    dict(type='mmpretrain.NonFiniteLossHook'),
    dict(type='mmpretrain.EvalImageCheckHook'),
    dict(type='mmpretrain.PreemptionHook'),
]
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
