# The CNN row of the digit-scene transfer table: the DynaMixer digit-scene
# Semantic FPN with its backbone swapped for a ResNet of about the same size
# (ResNet-18's basic blocks, 24 and 48 channels at strides 4 and 8: 99k
# parameters against DynaMixer's 135k), with MMSegmentation's stock ResNet
# settings (BN trained, norm_eval=False; plain ResNet, since the digits
# checkpoint has no V1c stem), initialised from its digits checkpoint
# (configs/dynamixer/resnet18-w24_1xb64_digits.py, trained exactly as the
# Quick start).
#   python tools/train.py configs/dynamixer/resnet18-w24_1xb64_digits.py
#   python tools/train.py configs/dynamixer_segmentation/fpn_r18-w24_1xb8-1k_digit-scenes.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=CHECKPOINT
_base_ = './fpn_dynamixer-tiny_1xb8-1k_digit-scenes.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='ResNet',
        depth=18,
        stem_channels=24,
        base_channels=24,
        num_stages=2,
        strides=(1, 2),
        dilations=(1, 1),
        out_indices=(0, 1),
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        style='pytorch',
        init_cfg=dict(type='Pretrained',
                      checkpoint='checkpoints/resnet18-w24_1xb64_digits.pth',
                      prefix='backbone.')),
    neck=dict(in_channels=[24, 48]),
)
