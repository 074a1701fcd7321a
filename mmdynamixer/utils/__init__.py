from .checkpoint import (CheckpointMismatchError, PartialLoadMixin,
                         allow_partial_load, check_state_dict,
                         checkpoint_to_load,
                         extract_state_dict, guard_state_dict_loads,
                         load_checkpoint_file, load_pretrained,
                         load_state_dict_checked, register_safe_loading)
from .fileio import atomic_write

__all__ = ['CheckpointMismatchError', 'PartialLoadMixin',
           'allow_partial_load', 'atomic_write', 'check_state_dict',
           'checkpoint_to_load',
           'extract_state_dict', 'guard_state_dict_loads',
           'load_checkpoint_file', 'load_pretrained',
           'load_state_dict_checked', 'register_safe_loading']
