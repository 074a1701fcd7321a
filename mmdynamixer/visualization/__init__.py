from .cam_localization import (cam_localization, foreground_ratio,
                               labelled_images)
from .grad_cam import (CAM_METHODS, cam_on_image, check_method, grad_cam,
                       target_layer, token_pixels)
from .mixing import (LayerMixing, check_position, check_tokens,
                     effective_matrices, find_dynamixer, layer_mixing)
from .model_input import init_classifier, pipeline_image
from .plots import cam_figure, figure_png, mixing_figure, save_or_show

__all__ = ['CAM_METHODS', 'LayerMixing', 'cam_figure', 'cam_localization',
           'cam_on_image', 'check_method', 'check_position', 'check_tokens',
           'effective_matrices', 'figure_png', 'find_dynamixer',
           'foreground_ratio', 'grad_cam', 'init_classifier',
           'labelled_images', 'layer_mixing', 'mixing_figure',
           'pipeline_image', 'save_or_show', 'target_layer', 'token_pixels']
