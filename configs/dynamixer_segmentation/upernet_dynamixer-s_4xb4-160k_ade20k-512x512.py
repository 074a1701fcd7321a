# UPerNet on ADE20K (512 x 512, 160k iterations) with a DynaMixer-S backbone:
# MMSegmentation's own config with the backbone swapped for the sliding-window
# DynaMixer (stages at strides 7 and 14) and sliding-window inference.
#   tools/dist_train.sh configs/dynamixer_segmentation/upernet_dynamixer-s_4xb4-160k_ade20k-512x512.py 4
_base_ = 'mmseg::upernet/upernet_r50_4xb4-160k_ade20k-512x512.py'
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
    decode_head=dict(in_channels=[192, 384], in_index=[0, 1]),
    auxiliary_head=dict(in_channels=192, in_index=0),
    test_cfg=dict(mode='slide', crop_size=(512, 512), stride=(341, 341)),
)

# AdamW with warm-up and poly decay, as for transformer backbones (Swin).
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999),
                   weight_decay=0.01),
    constructor='mmpretrain.BackboneLayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.9, norm_decay_mult=0.))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0,
         end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=160000,
         by_epoch=False),
]

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
train_dataloader = dict(dataset=dict(
    _delete_=True, type='mmpretrain.ImageIntegrityDataset',
    dataset={{_base_.train_dataloader.dataset}}))
