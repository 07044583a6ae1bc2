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
from ..devices.backend import array_module


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


def _arg_extreme(x: Tensor, dim, keepdim, axis, keepdims, sign, op) -> Tensor:
    dim = axis if dim is None else dim
    keepdim = keepdims if keepdims is not None else keepdim
    values = x.array if sign > 0 else -x.array
    if dim is None:
        return Tensor._wrap(values.reshape(-1).argmax().astype(numpy.int64))
    d = normalize_dims(int(dim), x.ndim, op)[0]
    idx = values.argmax(axis=d)
    if keepdim:
        idx = x.xp.expand_dims(idx, d)
    return Tensor._wrap(idx.astype(numpy.int64))


def argmax(x: Tensor, dim=None, keepdim: bool = False, *, axis=None, keepdims=None) -> Tensor:
    """The index of the maximum (of the flattened tensor, or along ``dim``/``axis``)."""
    return _arg_extreme(x, dim, keepdim, axis, keepdims, 1, "argmax")


def argmin(x: Tensor, dim=None, keepdim: bool = False, *, axis=None, keepdims=None) -> Tensor:
    return _arg_extreme(x, dim, keepdim, axis, keepdims, -1, "argmin")


TopkResult = namedtuple("TopkResult", ["values", "indices"])


def topk(x: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):
    """The ``k`` largest (or smallest) values along ``dim`` and their indices, as PyTorch's
    ``topk`` (always sorted; ties in the order of their index). The values are differentiable:
    they are ``x`` indexed at the returned positions, so the gradient goes back to them."""
    from .shape import getitem
    if x.ndim == 0:
        raise RuntimeError("topk: the tensor is 0-d; use x.reshape(1) first")
    d = normalize_dims(dim, x.ndim, "topk")[0]
    if not 0 <= k <= x.shape[d]:
        raise RuntimeError(f"topk: k={k} is out of range for dim {dim} of size {x.shape[d]} "
                           f"(shape {x.shape})")
    xp = x.xp
    key = -x.array if largest else x.array
    idx = xp.argsort(key, axis=d, kind="stable")
    idx = xp.take(idx, xp.arange(k), axis=d)
    # an advanced index that picks x[..., idx, ...] along d: arange grids on the other axes
    grid = list(xp.indices(idx.shape, sparse=True))
    grid[d] = idx
    values = getitem(x, tuple(grid))
    return TopkResult(values, Tensor._wrap(idx.astype(numpy.int64)))
