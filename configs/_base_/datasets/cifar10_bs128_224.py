# CIFAR-10 upsampled to 224 for transfer from ImageNet (the reference
# transfer recipe): resize to 224, random crop with 28 px padding, flip.
dataset_type = 'CIFAR10'
data_root = 'data/cifar10'
data_preprocessor = dict(
    num_classes=10,
    mean=[125.307, 122.961, 113.8575],
    std=[51.5865, 50.847, 51.255],
    to_rgb=False,  # the batch files hold RGB images
)

train_pipeline = [
    dict(type='Resize', scale=(224, 224)),
    dict(type='RandomCrop', crop_size=224, padding=28),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='Resize', scale=(224, 224)),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=128,
    num_workers=4,
    persistent_workers=True,
    pin_memory=True,
    collate_fn=dict(type='default_collate'),
    # missing data stops the run naming the path
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
    batch_size=128,
    num_workers=4,
    persistent_workers=True,
    pin_memory=True,
    collate_fn=dict(type='default_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, split='test',
                 pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
