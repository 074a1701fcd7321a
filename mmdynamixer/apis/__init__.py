from .model_zoo import register_model_zoo
from .official_checkpoint import (convert_official, convert_official_file,
                                  unwrap_official)

__all__ = ['convert_official', 'convert_official_file', 'register_model_zoo',
           'unwrap_official']
