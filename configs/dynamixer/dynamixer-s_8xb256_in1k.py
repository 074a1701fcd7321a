# DynaMixer-S on ImageNet-1K, 8 GPUs x 256 images (global batch 2048),
# the recipe of the authors' training command (their README):
#   tools/dist_train.sh configs/dynamixer/dynamixer-s_8xb256_in1k.py 8
_base_ = [
    '../_base_/models/dynamixer-s.py',
    '../_base_/datasets/imagenet_bs256_dynamixer_224.py',
    '../_base_/schedules/imagenet_adamw_300e_dynamixer.py',
    '../_base_/dynamixer_runtime.py',
]

train_dataloader = dict(batch_size=256)

# The lr above is for the global batch of 2048; `--auto-scale-lr` rescales
# it linearly for another number of GPUs or batch size.
auto_scale_lr = dict(base_batch_size=2048)
