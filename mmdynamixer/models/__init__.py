from .backbones import *  # noqa: F401,F403
from .heads import *  # noqa: F401,F403
from .model_check import check_model  # noqa: F401
