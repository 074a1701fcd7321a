from .data_paths import check_data_paths
from .digits import prepare_digits
from .image_integrity import (BadImageError, ImageIntegrityDataset,
                              TooManyBadImagesError, image_file_problem)
from .samplers import ResumableSampler

__all__ = ['BadImageError', 'ImageIntegrityDataset', 'ResumableSampler',
           'TooManyBadImagesError',
           'check_data_paths', 'image_file_problem', 'prepare_digits']
