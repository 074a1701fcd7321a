from .model_zoo import register_model_zoo

__all__ = ['register_model_zoo']
