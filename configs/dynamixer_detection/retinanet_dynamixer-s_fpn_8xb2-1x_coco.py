# RetinaNet 1x on COCO with a DynaMixer-S backbone: MMDetection's own config
# with the backbone swapped for the sliding-window DynaMixer (any image size,
# the ImageNet checkpoint unchanged) and everything stride-dependent set to
# its real strides 7 and 14 (FPN levels 7, 14, 28, 56, 112).
#   tools/dist_train.sh configs/dynamixer_detection/retinanet_dynamixer-s_fpn_8xb2-1x_coco.py 8
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['mmdynamixer'], allow_failed_imports=False)

imagenet_checkpoint = 'checkpoints/dynamixer-s_8xb256_in1k.pth'
model = dict(
    data_preprocessor=dict(pad_size_divisor=14),
    backbone=dict(
        _delete_=True,
        type='mmpretrain.DynaMixer',
        arch='s',
        sliding_window=True,
        out_indices=(0, 1),
        norm_outputs=True,  # a LayerNorm per output (new: starts fresh)
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint=imagenet_checkpoint,
                      prefix='backbone.')),
    neck=dict(in_channels=[192, 384], start_level=0, num_outs=5),
    bbox_head=dict(anchor_generator=dict(strides=[7, 14, 28, 56, 112])),
)

# AdamW, as for other MLP/transformer backbones in MMDetection (e.g. PVT),
# with layer-wise learning-rate decay: the stem trains at 0.9^19 of lr, each
# deeper layer faster, the output norms, neck and head at lr.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4),
    constructor='mmpretrain.BackboneLayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.9))

# mmdynamixer's safety, declared here so that every tool that runs this
# config (MMDetection's or MMSegmentation's own, `mim`, ours) has it; a
# config of your own gets it from the same lines (the safety block of docs/en/user_guides/detection_segmentation.md):
# checkpoints that a crash cannot tear; a model whose parts fit the
# backbone; load_from/--resume checkpoints that must fit the model; a stop
# at a non-finite loss; missing data and bad image files named.
default_hooks = dict(checkpoint=dict(type='mmpretrain.AtomicCheckpointHook'))
custom_hooks = [
    dict(type='mmpretrain.ModelCheckHook'),
    dict(type='mmpretrain.StrictLoadHook'),
    dict(type='mmpretrain.NonFiniteLossHook'),
    dict(type='mmpretrain.EvalImageCheckHook'),
    dict(type='mmpretrain.PreemptionHook'),
]
train_dataloader = dict(
    sampler=dict(type='mmpretrain.ResumableSampler', shuffle=True),
    dataset=dict(_delete_=True, type='mmpretrain.ImageIntegrityDataset',
                 dataset={{_base_.train_dataloader.dataset}}))
