# DynaMixer-S fine-tuned on CIFAR-100 from an ImageNet-1K checkpoint (paper
# Table 8; the authors' transfer_learning.py): new head, SGD, 60 epochs, cosine, 224 px, the
# backbone learning at 0.01x the head's rate.
#   python tools/train.py configs/dynamixer/dynamixer-s_1xb128_cifar100.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=PATH/TO/in1k.pth
_base_ = [
    '../_base_/models/dynamixer-s.py',
    '../_base_/datasets/cifar100_bs128_224.py',
    '../_base_/dynamixer_runtime.py',
]

# An ImageNet-1K checkpoint of dynamixer-s_8xb256_in1k.py (or a converted
# reference one); only its backbone is loaded, strictly.
imagenet_checkpoint = 'checkpoints/dynamixer-s_8xb256_in1k.pth'
model = dict(
    backbone=dict(init_cfg=dict(type='Pretrained',
                                checkpoint=imagenet_checkpoint,
                                prefix='backbone')),
    head=dict(num_classes=100,
              loss=dict(_delete_=True, type='CrossEntropyLoss',
                        loss_weight=1.0)),
    train_cfg=dict(_delete_=True),  # no Mixup/CutMix in the transfer recipe
)

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-4),
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.01)}),
)
# Cosine from 0.01 to 2e-4 for the head; a ratio so that the backbone's
# 1e-4 anneals in proportion (an absolute eta_min would raise it).
param_scheduler = dict(type='CosineAnnealingLR', T_max=60, by_epoch=True,
                       eta_min_ratio=0.02, convert_to_iter_based=True)
train_cfg = dict(by_epoch=True, max_epochs=60, val_interval=1)
val_cfg = dict()
test_cfg = dict()

auto_scale_lr = dict(base_batch_size=128)
