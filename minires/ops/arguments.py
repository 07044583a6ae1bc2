"""The size arguments of the neural-network operations, normalised once, here.

``conv2d`` and the pooling functions call these before anything else; the kernels below them take
pairs only, and the layers above them (``nn.Conv2d``, ``nn.MaxPool2d`` ...) and
``models.summary`` use the same two functions, so an argument means the same everywhere.
"""
from __future__ import annotations


def pair(value, name: str, op: str) -> tuple[int, int]:
    """``3`` -> ``(3, 3)``, ``(3, 2)`` -> ``(3, 2)``: one size per spatial axis (height, width).
    Anything else is an error naming the op and the argument."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{op}: {name} must be an int or a pair, got {value!r}")
        return int(value[0]), int(value[1])
    return int(value), int(value)


def pool_stride(kernel_size, stride):
    """The stride of a pooling window: by default (``stride=None``) its own size, as in PyTorch,
    so that the windows tile the input."""
    return kernel_size if stride is None else stride
