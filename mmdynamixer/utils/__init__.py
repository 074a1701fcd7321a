from .checkpoint import (CheckpointMismatchError, check_state_dict,
                         extract_state_dict, guard_state_dict_loads,
                         load_checkpoint_file, load_pretrained,
                         load_state_dict_checked, register_safe_globals)

__all__ = ['CheckpointMismatchError', 'check_state_dict',
           'extract_state_dict', 'guard_state_dict_loads',
           'load_checkpoint_file', 'load_pretrained',
           'load_state_dict_checked', 'register_safe_globals']
