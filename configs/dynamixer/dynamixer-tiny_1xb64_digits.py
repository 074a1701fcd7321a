# The embedded default: a small DynaMixer trained on scikit-learn's digits
# (real handwritten scans that ship with scikit-learn; no download).
#   python tools/dataset_converters/prepare_digits.py data/digits
#   python tools/train.py configs/dynamixer/dynamixer-tiny_1xb64_digits.py
_base_ = [
    '../_base_/datasets/digits_bs64.py',
    '../_base_/dynamixer_runtime.py',
]

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='DynaMixer',
        arch=dict(embed_dims=[32, 64], depths=[2, 2], num_segments=[4, 8],
                  reduced_dims=[2, 2]),
        img_size=32,
        patch_size=4,  # 8x8 tokens, then 4x4
        drop_path_rate=0.05,
        # a model this small keeps little for backward, and selective
        # checkpointing's cost per operation outweighs it: train steps are
        # 1.7x slower with it (tools/analysis_tools/benchmark.py
        # configs/dynamixer/dynamixer-tiny_1xb64_digits.py --bench train -b 64)
        selective_cp=False),
    head=dict(
        type='DynaMixerClsHead',
        num_classes=10,
        in_channels=64,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1)),
)

optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=2,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=2,
         end=30),
]
train_cfg = dict(by_epoch=True, max_epochs=30, val_interval=5)
val_cfg = dict()
test_cfg = dict()

custom_hooks = [
    dict(type='EpochSeedHook'),
    dict(type='ModelCheckHook'),
    dict(type='StrictLoadHook'),
    dict(type='NonFiniteLossHook'),
    dict(type='EvalImageCheckHook'),
    dict(type='PreemptionHook'),
    dict(type='DynaMixerDiagnosticsHook', interval=10),
]
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=5, max_keep_ckpts=1, save_best='auto'))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
