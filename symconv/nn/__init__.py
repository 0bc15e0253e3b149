"""Layers on numpy arrays, with forward and backward passes running in generated C kernels."""

from .conv import Conv2d, Parameter

__all__ = ["Conv2d", "Parameter"]
