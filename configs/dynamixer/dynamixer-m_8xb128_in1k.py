# DynaMixer-M on ImageNet-1K, 8 GPUs x 128 images (global batch 1024),
# the recipe of the authors' training command (their README):
#   tools/dist_train.sh configs/dynamixer/dynamixer-m_8xb128_in1k.py 8
_base_ = [
    '../_base_/models/dynamixer-m.py',
    '../_base_/datasets/imagenet_bs256_dynamixer_224.py',
    '../_base_/schedules/imagenet_adamw_300e_dynamixer.py',
    '../_base_/dynamixer_runtime.py',
]

train_dataloader = dict(batch_size=128)

# The lr above is for the global batch of 1024; `--auto-scale-lr` rescales
# it linearly for another number of GPUs or batch size.
auto_scale_lr = dict(base_batch_size=1024)
