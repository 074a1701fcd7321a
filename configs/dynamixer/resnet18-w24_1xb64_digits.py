# A ResNet of about the Quick start DynaMixer's size (ResNet-18's basic
# blocks, 24 and 48 channels, two stages at strides 4 and 8: 99k parameters
# and 3.4 MFLOPs at 32 x 32 against DynaMixer's 135k and 3.3 MFLOPs), trained
# on the digits exactly as the Quick start (same data, schedule, optimizer,
# loss); the CNN row of the digit-scene transfer table
# (configs/dynamixer_detection/README.md).
#   python tools/train.py configs/dynamixer/resnet18-w24_1xb64_digits.py
_base_ = './dynamixer-tiny_1xb64_digits.py'

model = dict(
    _delete_=True,
    type='ImageClassifier',
    backbone=dict(type='ResNet', depth=18, stem_channels=24,
                  base_channels=24, num_stages=2, strides=(1, 2),
                  dilations=(1, 1), out_indices=(1, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=48,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1)),
)
# the DynaMixer diagnostics have nothing to watch here
custom_hooks = [
    dict(type='EpochSeedHook'),
    dict(type='ModelCheckHook'),
    dict(type='StrictLoadHook'),
    dict(type='NonFiniteLossHook'),
    dict(type='EvalImageCheckHook'),
    dict(type='PreemptionHook'),
]
