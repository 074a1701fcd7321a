# scikit-learn's bundled handwritten digits as an image-folder data set;
# write it with `python tools/dataset_converters/prepare_digits.py data/digits`.
dataset_type = 'CustomDataset'
data_root = 'data/digits'
data_preprocessor = dict(
    num_classes=10,
    mean=[127.5, 127.5, 127.5],
    std=[127.5, 127.5, 127.5],
    to_rgb=True,
)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(32, 32), interpolation='bicubic'),
    dict(type='RandomCrop', crop_size=32, padding=2),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(32, 32), interpolation='bicubic'),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=64,
    num_workers=0,
    persistent_workers=False,  # (there are no workers to keep)
    pin_memory=False,
    collate_fn=dict(type='default_collate'),
    # missing data and bad image files stop the run naming the path
    dataset=dict(type='ImageIntegrityDataset',
                 dataset=dict(type=dataset_type, data_root=data_root,
                              data_prefix='train', pipeline=train_pipeline)),
    # DefaultSampler that can continue an epoch after a preemption
    sampler=dict(type='ResumableSampler', shuffle=True),
)
# The evaluation sets stay unwrapped, where the libraries' inferencers read
# their pipelines (test_dataloader.dataset.pipeline); EvalImageCheckHook
# checks their image files.
val_dataloader = dict(
    batch_size=128,
    num_workers=0,
    persistent_workers=False,  # (there are no workers to keep)
    pin_memory=False,
    collate_fn=dict(type='default_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, data_prefix='val',
                 pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = dict(
    batch_size=128,
    num_workers=0,
    persistent_workers=False,  # (there are no workers to keep)
    pin_memory=False,
    collate_fn=dict(type='default_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, data_prefix='test',
                 pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
test_evaluator = val_evaluator
