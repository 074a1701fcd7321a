from .checkpoint_io import (extract_state_dict, load_checkpoint_file,
                            register_safe_globals)
from .official_checkpoint import (convert_official, convert_official_file,
                                  unwrap_official)

__all__ = ['extract_state_dict', 'load_checkpoint_file',
           'register_safe_globals', 'convert_official',
           'convert_official_file', 'unwrap_official']
