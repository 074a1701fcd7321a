# The runtime of the DynaMixer configs: the shared runtime, plus the
# DynaMixer diagnostics (entropies of the mixing weights, branch weights)
# and a checkpoint of the best top-1.
_base_ = ['./default_runtime.py']

custom_hooks = [
    dict(type='EpochSeedHook'),
    dict(type='ModelCheckHook'),
    dict(type='StrictLoadHook'),
    dict(type='NonFiniteLossHook'),
    dict(type='EvalImageCheckHook'),
    dict(type='PreemptionHook'),
    dict(type='DynaMixerDiagnosticsHook', interval=100),
]
default_hooks = dict(
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=3,
                    save_best='accuracy/top1', rule='greater'))
