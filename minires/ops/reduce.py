r"""Reductions: sum, mean, max (and min), with PyTorch's ``dim``/``keepdim`` names.

**sum** over axes ``A``: every input element contributes once, so ``dx = dy`` broadcast back over
``A``. **mean**: ``dx = dy / n_A`` broadcast (``n_A`` elements per reduced group). **max** over
``A``: the derivative is 1 at the maximum and 0 elsewhere; on ties the gradient is shared equally
among the tied elements (as ``torch.amax`` does), except for ``max(dim=k)``, which returns
``(values, indices)`` and routes the gradient to the returned index, as ``torch.max(x, dim)`` does.
"""
from __future__ import annotations

import builtins
from collections import namedtuple

import numpy

from ..autograd import Function, Tensor
from ..backend import array_module


def normalize_dims(dim, ndim: int, op: str = "reduce"):
    """None (all axes), an int or a sequence of ints -> a sorted tuple of non-negative axes."""
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    out = []
    for d in dims:
        if not -builtins.max(ndim, 1) <= d < builtins.max(ndim, 1):
            raise IndexError(f"{op}: dim {d} is out of range for a tensor with {ndim} dimensions")
        out.append(d % builtins.max(ndim, 1))
    return tuple(sorted(set(out)))


def _expand_back(g, input_shape, axes, keepdim):
    if not keepdim:
        shape = list(g.shape)
        for a in axes:
            shape.insert(a, 1)
        g = g.reshape(shape)
    return g


class Sum(Function):
    def forward(self, x, axes, keepdim):
        self.meta = (x.shape, axes, keepdim)
        return x.sum(axis=axes, keepdims=keepdim)

    def backward(self, g):
        shape, axes, keepdim = self.meta
        return array_module(g).broadcast_to(_expand_back(g, shape, axes, keepdim), shape), \
            None, None


class Mean(Function):
    def forward(self, x, axes, keepdim):
        self.meta = (x.shape, axes, keepdim)
        count = 1
        for a in axes:
            count *= x.shape[a]
        self.count = count
        return x.sum(axis=axes, keepdims=keepdim) * (1.0 / builtins.max(count, 1))

    def backward(self, g):
        shape, axes, keepdim = self.meta
        g = _expand_back(g, shape, axes, keepdim) * (1.0 / builtins.max(self.count, 1))
        return array_module(g).broadcast_to(g, shape), None, None


class Amax(Function):
    """Maximum over axes; the gradient is shared among ties."""

    def forward(self, x, axes, keepdim, sign):
        y = (x * sign).max(axis=axes, keepdims=True) * sign
        self.save_for_backward(x, y)
        self.meta = (axes, keepdim)
        return y if keepdim else y.reshape([s for i, s in enumerate(y.shape) if i not in axes])

    def backward(self, g):
        x, y = self.saved_tensors
        axes, keepdim = self.meta
        g = _expand_back(g, x.shape, axes, keepdim)
        mask = (x == y)
        count = mask.sum(axis=axes, keepdims=True)
        return g * mask / count.astype(x.dtype), None, None, None


class MaxDim(Function):
    """``max(x, dim)``: the values; the gradient goes to the index of the (first) maximum."""

    def forward(self, x, dim, keepdim, sign):
        xp = array_module(x)
        idx = (x * sign).argmax(axis=dim)
        self.idx = xp.expand_dims(idx, dim)
        self.meta = (x.shape, dim, keepdim)
        values = xp.take_along_axis(x, self.idx, axis=dim)
        return values if keepdim else values.squeeze(axis=dim)

    def backward(self, g):
        xp = array_module(g)
        shape, dim, keepdim = self.meta
        if not keepdim:
            g = xp.expand_dims(g, dim)
        # route g to the winning index: a one-hot mask along `dim` (no scatter needed)
        positions = xp.arange(shape[dim]).reshape([-1 if i == dim else 1
                                                   for i in range(len(shape))])
        return (positions == self.idx) * g, None, None, None


MaxResult = namedtuple("MaxResult", ["values", "indices"])


def sum(x: Tensor, dim=None, keepdim: bool = False, *, axis=None, keepdims=None) -> Tensor:
    dim = axis if dim is None else dim
    keepdim = keepdims if keepdims is not None else keepdim
    axes = normalize_dims(dim, x.ndim, "sum")
    if x.ndim == 0:
        axes = ()
    return Sum.apply(x, axes, bool(keepdim))


def mean(x: Tensor, dim=None, keepdim: bool = False, *, axis=None, keepdims=None) -> Tensor:
    dim = axis if dim is None else dim
    keepdim = keepdims if keepdims is not None else keepdim
    if x.dtype.kind != "f":
        raise TypeError(f"mean: input dtype {x.dtype} is not floating point; use x.float().mean()")
    axes = normalize_dims(dim, x.ndim, "mean") if x.ndim else ()
    return Mean.apply(x, axes, bool(keepdim))


def _extreme(x: Tensor, dim, keepdim, axis, keepdims, sign, op):
    dim = axis if dim is None else dim
    keepdim = keepdims if keepdims is not None else keepdim
    if x.numel() == 0:
        raise RuntimeError(f"{op}: the tensor is empty")
    if isinstance(dim, int):
        d = normalize_dims(dim, x.ndim, op)[0]
        values = MaxDim.apply(x, d, bool(keepdim), sign)
        idx = (x.array * sign).argmax(axis=d)
        if keepdim:
            idx = x.xp.expand_dims(idx, d)
        return MaxResult(values, Tensor._wrap(idx.astype(numpy.int64)))
    axes = normalize_dims(dim, x.ndim, op) if x.ndim else ()
    return Amax.apply(x, axes, bool(keepdim), sign)


def max(x: Tensor, dim=None, keepdim: bool = False, *, axis=None, keepdims=None):
    """The maximum; with an int ``dim``, a ``(values, indices)`` pair as in PyTorch."""
    return _extreme(x, dim, keepdim, axis, keepdims, 1, "max")


def min(x: Tensor, dim=None, keepdim: bool = False, *, axis=None, keepdims=None):
    return _extreme(x, dim, keepdim, axis, keepdims, -1, "min")


def amax(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    axes = normalize_dims(dim, x.ndim, "amax") if x.ndim else ()
    return Amax.apply(x, axes, bool(keepdim), 1)


def argmax(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    if dim is None:
        return Tensor._wrap(x.array.reshape(-1).argmax().astype(numpy.int64))
    idx = x.array.argmax(axis=dim)
    if keepdim:
        idx = x.xp.expand_dims(idx, dim)
    return Tensor._wrap(idx.astype(numpy.int64))
