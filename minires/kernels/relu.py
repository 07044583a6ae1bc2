r"""ReLU and its backward pass, a block of images at a time on every core.

**The maths.** :math:`y = \max(x, 0)`; its derivative is 1 where :math:`x > 0` and 0 elsewhere
(PyTorch's choice at 0, too), and :math:`y > 0` exactly where :math:`x > 0`, so the backward pass
needs only the output: :math:`dx = dy \cdot [y > 0]`.

**The plain path** is those two lines on whole arrays
(:func:`minires.kernels.reference.relu_forward`, :func:`~minires.kernels.reference.relu_backward`).
This kernel makes two changes, both for speed, neither to the numbers:

1. *Blocks on every core* (:func:`minires.kernels.workers.in_blocks`): NumPy runs an elementwise
   pass on one core, so a large array is worked a block of images (its first axis) at a time,
   the blocks shared among the threads.
2. *The output's memory from the array pool, in the input's layout*
   (:func:`minires.kernels.array_pool.empty_like`): a convolution's output is channels-last in
   memory, and the ReLU after it keeps that, so the next convolution reads it without a copy;
   the gradient takes the output's layout whatever ``dy``'s is, so later ops never stride across
   memory (``tests/test_layout.py``).
"""
from __future__ import annotations

from ..devices.backend import array_module
from . import array_pool
from .workers import in_blocks


def relu_forward(x):
    """``y = max(x, 0)``, in ``x``'s memory layout. (Save ``y`` for the backward pass.)"""
    xp = array_module(x)
    y = array_pool.empty_like(xp, x)
    if x.ndim == 0:                                  # nothing to cut into blocks
        return xp.maximum(x, 0, out=y)
    in_blocks(x, lambda lo, hi: xp.maximum(x[lo:hi], 0, out=y[lo:hi]))
    return y


def relu_backward(dy, y):
    """``dx = dy * (y > 0)``, in ``y``'s memory layout."""
    xp = array_module(y)
    dx = array_pool.empty_like(xp, y)
    if y.ndim == 0:
        return xp.multiply(dy, y > 0, out=dx)
    in_blocks(y, lambda lo, hi: xp.multiply(dy[lo:hi], y[lo:hi] > 0, out=dx[lo:hi]))
    return dx
