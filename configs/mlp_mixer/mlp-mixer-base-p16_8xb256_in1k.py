# The baseline: MMPretrain's own MLP-Mixer-B/16 (static token mixing, the
# seed paper of vision MLPs) trained with exactly DynaMixer-S's ImageNet
# recipe, so that the two compare in one pipeline.
#   tools/dist_train.sh configs/mlp_mixer/mlp-mixer-base-p16_8xb256_in1k.py 8
_base_ = [
    '../_base_/datasets/imagenet_bs256_dynamixer_224.py',
    '../_base_/schedules/imagenet_adamw_300e_dynamixer.py',
    '../_base_/default_runtime.py',
]

model = dict(
    type='ImageClassifier',
    backbone=dict(type='MlpMixer', arch='b', img_size=224, patch_size=16,
                  drop_path_rate=0.1),
    neck=dict(type='GlobalAveragePooling', dim=1),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=768,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1,
                  mode='original'),
        init_cfg=dict(type='TruncNormal', layer='Linear', std=.02, bias=0.),
    ),
    train_cfg=dict(augments=[
        dict(type='Mixup', alpha=0.8),
        dict(type='CutMix', alpha=1.0),
    ]),
)

train_dataloader = dict(batch_size=256)
default_hooks = dict(
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=3,
                    save_best='accuracy/top1', rule='greater'))
auto_scale_lr = dict(base_batch_size=2048)
