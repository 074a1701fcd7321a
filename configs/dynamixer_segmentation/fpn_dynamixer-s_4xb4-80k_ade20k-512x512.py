# Semantic FPN on ADE20K (512 x 512, 80k iterations, the schedule of the
# Semantic FPN results of PVT and other vision MLP papers) with a DynaMixer-S
# backbone: MMSegmentation's own config with the backbone swapped for the
# sliding-window DynaMixer, the FPN at strides 7, 14, 28, 56, and
# sliding-window inference.
#   tools/dist_train.sh configs/dynamixer_segmentation/fpn_dynamixer-s_4xb4-80k_ade20k-512x512.py 4
_base_ = 'mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py'
custom_imports = dict(imports=['mmdynamixer'], allow_failed_imports=False)

imagenet_checkpoint = 'checkpoints/dynamixer-s_8xb256_in1k.pth'
model = dict(
    pretrained=None,
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
    neck=dict(in_channels=[192, 384], num_outs=4),
    decode_head=dict(feature_strides=[7, 14, 28, 56]),
    test_cfg=dict(mode='slide', crop_size=(512, 512), stride=(341, 341)),
)

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4),
    constructor='mmpretrain.BackboneLayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.9))
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=80000,
         by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=80000, val_interval=8000)

# mmdynamixer's safety, declared here so that every tool that runs this
# config (MMDetection's or MMSegmentation's own, `mim`, ours) has it; a
# config of your own gets it from the same lines (the safety block of docs/en/user_guides/detection_segmentation.md):
# checkpoints that a crash cannot tear; a model whose parts fit the
# backbone; load_from/--resume checkpoints that must fit the model; a stop
# at a non-finite loss; missing data and bad image files named.
default_hooks = dict(checkpoint=dict(type='mmpretrain.AtomicCheckpointHook',
                                     by_epoch=False, interval=8000))
custom_hooks = [
    dict(type='mmpretrain.ModelCheckHook'),
    dict(type='mmpretrain.StrictLoadHook'),
    dict(type='mmpretrain.NonFiniteLossHook'),
    dict(type='mmpretrain.EvalImageCheckHook'),
    dict(type='mmpretrain.PreemptionHook'),
]
train_dataloader = dict(dataset=dict(
    _delete_=True, type='mmpretrain.ImageIntegrityDataset',
    dataset={{_base_.train_dataloader.dataset}}))
