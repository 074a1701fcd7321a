from .digits import prepare_digits

__all__ = ['prepare_digits']
