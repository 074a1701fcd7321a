# DynaMixer-S for ImageNet-1K, with the loss and batch augments of the authors'
# training command (their README): label smoothing 0.1 and Mixup 0.8 /
# CutMix 1.0 (one of the two per batch, as timm switches them).
model = dict(
    type='ImageClassifier',
    backbone=dict(type='DynaMixer', arch='s', drop_path_rate=0.1),
    head=dict(
        type='DynaMixerClsHead',
        num_classes=1000,
        in_channels=384,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1,
                  mode='original'),
    ),
    train_cfg=dict(augments=[
        dict(type='Mixup', alpha=0.8),
        dict(type='CutMix', alpha=1.0),
    ]),
)
