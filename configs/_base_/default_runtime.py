# Runtime shared by every config: MMPretrain scope, the usual MMEngine hooks
# and the local visualisation backend (TensorBoard is one line away).
default_scope = 'mmpretrain'
custom_imports = dict(imports=['mmdynamixer'], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=100),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # MMEngine's CheckpointHook, with saves that a crash cannot tear
    checkpoint=dict(type='AtomicCheckpointHook', interval=1,
                    max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='VisualizationHook', enable=False),
)

# What every run relies on, whichever tool starts it (ours, MMPretrain's,
# MMDetection's, MMSegmentation's or `mim`): reseeding every epoch from
# (seed, epoch) makes `--resume` continue exactly as an uninterrupted run
# would (MMEngine checkpoints hold no RNG state); the model's parts must fit
# the backbone (widths, strides) before anything runs; load_from/--resume
# checkpoints must fit the model; a non-finite fp32 loss stops the run
# (AMP's skipped steps are counted). The data sets check their paths and
# image files (the training set in ImageIntegrityDataset, in
# configs/_base_/datasets/; the evaluation sets by EvalImageCheckHook).
custom_hooks = [
    dict(type='EpochSeedHook'),
    dict(type='ModelCheckHook'),
    dict(type='StrictLoadHook'),
    dict(type='NonFiniteLossHook'),
    dict(type='EvalImageCheckHook'),
    dict(type='PreemptionHook'),
]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)

vis_backends = [dict(type='LocalVisBackend')]
# For TensorBoard: vis_backends = [dict(type='LocalVisBackend'),
#                                  dict(type='TensorboardVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)

log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=None, deterministic=False)
