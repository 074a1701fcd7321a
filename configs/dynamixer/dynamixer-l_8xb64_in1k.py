# DynaMixer-L on ImageNet-1K, 8 GPUs x 64 images (global batch 512),
# the recipe of the authors' training command (their README):
#   tools/dist_train.sh configs/dynamixer/dynamixer-l_8xb64_in1k.py 8
_base_ = [
    '../_base_/models/dynamixer-l.py',
    '../_base_/datasets/imagenet_bs256_dynamixer_224.py',
    '../_base_/schedules/imagenet_adamw_300e_dynamixer.py',
    '../_base_/dynamixer_runtime.py',
]

train_dataloader = dict(batch_size=64)

# DynaMixer-L evaluates with crop_pct 0.875: short edge 256, centre 224.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

# The lr above is for the global batch of 512; `--auto-scale-lr` rescales
# it linearly for another number of GPUs or batch size.
auto_scale_lr = dict(base_batch_size=512)
