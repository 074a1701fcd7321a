from .grad_cam import (CAM_METHODS, cam_on_image, check_method,
                       default_target_layer, grad_cam)
from .mixing import (LayerMixing, check_position, check_tokens,
                     effective_matrices, find_dynamixer, layer_mixing)
from .model_input import init_classifier, pipeline_image
from .plots import cam_figure, figure_png, mixing_figure, save_or_show

__all__ = ['CAM_METHODS', 'LayerMixing', 'cam_figure', 'cam_on_image',
           'check_method', 'check_position', 'check_tokens',
           'default_target_layer', 'effective_matrices', 'figure_png',
           'find_dynamixer', 'grad_cam', 'init_classifier', 'layer_mixing',
           'mixing_figure', 'pipeline_image', 'save_or_show']
