# ImageNet-1K with the reference recipe: RandomResizedCrop 224 (bicubic),
# flip, RandAugment rand-m9-mstd0.5-inc1, random erasing 0.25 (pixel mode);
# evaluation resizes the short edge to 224 / crop_pct (bicubic) and takes
# the centre 224 crop. Mixup/CutMix live in the model's train_cfg.
dataset_type = 'ImageNet'
data_root = 'data/imagenet'
crop_pct = 0.9  # DynaMixer-S/M; L evaluates with 0.875
img_size = 224
bgr_mean = [103.53, 116.28, 123.675]
bgr_std = [57.375, 57.12, 58.395]

data_preprocessor = dict(
    num_classes=1000,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True,
)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=img_size, backend='pillow',
         interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandAugment', policies='timm_increasing', num_policies=2,
         total_level=10, magnitude_level=9, magnitude_std=0.5,
         hparams=dict(pad_val=[round(x) for x in bgr_mean[::-1]],
                      interpolation='bicubic')),
    dict(type='RandomErasing', erase_prob=0.25, mode='rand',
         min_area_ratio=0.02, max_area_ratio=1 / 3, fill_color=bgr_mean,
         fill_std=bgr_std),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=int(img_size / crop_pct), edge='short',
         backend='pillow', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=img_size),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=256,
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    collate_fn=dict(type='default_collate'),
    # missing data and bad image files stop the run naming the path
    dataset=dict(type='ImageIntegrityDataset',
                 dataset=dict(type=dataset_type, data_root=data_root,
                              split='train', pipeline=train_pipeline)),
    # DefaultSampler that can continue an epoch after a preemption
    sampler=dict(type='ResumableSampler', shuffle=True),
)
# The evaluation sets stay unwrapped, where the libraries' inferencers read
# their pipelines (test_dataloader.dataset.pipeline); EvalImageCheckHook
# checks their image files.
val_dataloader = dict(
    batch_size=64,
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    collate_fn=dict(type='default_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, split='val',
                 pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
