from .atomic_checkpoint_hook import AtomicCheckpointHook, atomic_write
from .dynamixer_diagnostics_hook import DynaMixerDiagnosticsHook
from .epoch_seed_hook import EpochSeedHook
from .eval_image_check_hook import EvalImageCheckHook
from .model_check_hook import ModelCheckHook
from .non_finite_loss_hook import NonFiniteLossError, NonFiniteLossHook
from .preemption_hook import (PREEMPTED, Preempted, PreemptedResumeError,
                              PreemptionHook)
from .strict_load_hook import StrictLoadHook

__all__ = ['AtomicCheckpointHook', 'DynaMixerDiagnosticsHook',
           'EpochSeedHook', 'EvalImageCheckHook', 'ModelCheckHook',
           'NonFiniteLossError', 'NonFiniteLossHook', 'PREEMPTED',
           'Preempted', 'PreemptedResumeError', 'PreemptionHook',
           'StrictLoadHook', 'atomic_write']
