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

# Reseeding every epoch from (seed, epoch) makes `--resume` continue exactly
# as an uninterrupted run would (MMEngine checkpoints hold no RNG state);
# load_from/--resume checkpoints must fit the model; a non-finite fp32 loss
# stops the run (AMP's skipped steps are counted).
custom_hooks = [
    dict(type='EpochSeedHook'),
    dict(type='StrictLoadHook'),
    dict(type='NonFiniteLossHook'),
]

# Bad image files stop the run with the file and its index; to skip bad
# training images instead: image_check = dict(skip_bad=True,
# max_bad_fraction=0.001) (tools/train.py and tools/test.py read this).
image_check = dict(skip_bad=False)

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
