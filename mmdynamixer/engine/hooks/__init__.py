from .dynamixer_diagnostics_hook import DynaMixerDiagnosticsHook
from .epoch_seed_hook import EpochSeedHook

__all__ = ['DynaMixerDiagnosticsHook', 'EpochSeedHook']
