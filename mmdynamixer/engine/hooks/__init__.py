from .atomic_checkpoint_hook import AtomicCheckpointHook, atomic_write
from .dynamixer_diagnostics_hook import DynaMixerDiagnosticsHook
from .epoch_seed_hook import EpochSeedHook
from .model_check_hook import ModelCheckHook
from .non_finite_loss_hook import NonFiniteLossError, NonFiniteLossHook
from .strict_load_hook import StrictLoadHook

__all__ = ['AtomicCheckpointHook', 'DynaMixerDiagnosticsHook',
           'EpochSeedHook', 'ModelCheckHook', 'NonFiniteLossError',
           'NonFiniteLossHook', 'StrictLoadHook', 'atomic_write']
