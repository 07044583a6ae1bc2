r"""Shape operations: reshape, transpose/permute, flatten, indexing, padding, concatenation, clone.

They move or copy values without arithmetic, so each backward is the inverse movement:
reshape back, transpose with the inverse permutation, scatter the indexed gradient into zeros
(``xp.add.at`` when an index can repeat, so repeated elements *sum* their gradients), crop the
padding, split a concatenation.

:func:`zero_pad_shortcut` is the paper's option-A shortcut: subsample by the stride and append
zero channels. It has no parameters; its backward subsamples the gradient's first channels back.
"""
from __future__ import annotations

import math

from ..autograd import Function, Tensor
from ..devices.backend import array_module


class Reshape(Function):

    def forward(self, x, shape):
        self.source = x.shape
        return x.reshape(shape)

    def backward(self, g):
        return g.reshape(self.source), None


class Permute(Function):

    def forward(self, x, dims):
        self.inverse = tuple(sorted(range(len(dims)), key=lambda i: dims[i]))
        return x.transpose(dims)

    def backward(self, g):
        return g.transpose(self.inverse), None


class Clone(Function):
    """A copy in new memory (with a version counter of its own); the gradient passes through."""

    def forward(self, x):
        return x.copy()

    def backward(self, g):
        return g


def clone(x: Tensor) -> Tensor:
    """``x.clone()``: the values in new memory, still in the graph (PyTorch's ``clone``): what to
    change in place when the original is needed for a gradient."""
    return Clone.apply(x)


def _check_shape(x: Tensor, shape) -> tuple:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    shape = tuple(int(s) for s in shape)
    known = math.prod(s for s in shape if s != -1)
    if shape.count(-1) > 1 or (shape.count(-1) == 0 and known != x.numel()) or \
            (shape.count(-1) == 1 and (known == 0 or x.numel() % known)):
        raise RuntimeError(f"reshape: shape {shape} is invalid for a tensor of shape {x.shape} "
                           f"({x.numel()} elements)")
    return shape


def reshape(x: Tensor, *shape) -> Tensor:
    shape = _check_shape(x, shape)
    if shape == x.shape:
        return x
    return Reshape.apply(x, shape)


def view(x: Tensor, *shape) -> Tensor:
    return reshape(x, *shape)


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    if x.ndim == 0:
        return reshape(x, 1)
    start, end = start_dim % x.ndim, end_dim % x.ndim
    shape = x.shape[:start] + (math.prod(x.shape[start:end + 1]),) + x.shape[end + 1:]
    return reshape(x, shape)


def permute(x: Tensor, *dims) -> Tensor:
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    if sorted(d % max(x.ndim, 1) for d in dims) != list(range(x.ndim)):
        raise RuntimeError(f"permute: {dims} is not a permutation of the {x.ndim} dims of a "
                           f"tensor of shape {x.shape}")
    return Permute.apply(x, tuple(d % x.ndim for d in dims))


def transpose(x: Tensor, dim0: int, dim1: int) -> Tensor:
    dims = list(range(x.ndim))
    dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
    return Permute.apply(x, tuple(dims))


def t(x: Tensor) -> Tensor:
    if x.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dims, got shape {x.shape}")
    return transpose(x, 0, 1) if x.ndim == 2 else x


def squeeze(x: Tensor, dim=None) -> Tensor:
    if dim is None:
        return reshape(x, tuple(s for s in x.shape if s != 1))
    d = dim % x.ndim
    if x.shape[d] != 1:
        return x
    return reshape(x, x.shape[:d] + x.shape[d + 1:])


def unsqueeze(x: Tensor, dim: int) -> Tensor:
    d = dim % (x.ndim + 1)
    return reshape(x, x.shape[:d] + (1,) + x.shape[d:])


class Expand(Function):
    """Broadcast to a larger shape (a read-only view, as PyTorch's ``expand``); the backward sums
    the gradient over the broadcast axes."""

    def forward(self, x, shape):
        self.source = x.shape
        return array_module(x).broadcast_to(x, shape)

    def backward(self, g):
        from .elementwise import unbroadcast
        return unbroadcast(g, self.source), None


def expand(x: Tensor, *shape) -> Tensor:
    """``x.expand(2, 3)``; -1 keeps a dimension's size."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    lead = len(shape) - x.ndim
    if lead < 0:
        raise RuntimeError(f"expand: the target shape {tuple(shape)} has fewer dims than the "
                           f"tensor's shape {x.shape}")
    target = tuple(x.shape[i - lead] if s == -1 and i >= lead else int(s)
                   for i, s in enumerate(shape))
    for i, s in enumerate(x.shape):
        if s != 1 and s != target[i + lead]:
            raise RuntimeError(f"expand: the tensor of shape {x.shape} cannot expand to "
                               f"{target}: dim {i} has size {s}, not 1")
    if target == x.shape:
        return x
    return Expand.apply(x, target)


def expand_as(x: Tensor, other: Tensor) -> Tensor:
    return expand(x, other.shape)


def view_as(x: Tensor, other: Tensor) -> Tensor:
    return reshape(x, other.shape)


# --- indexing ---

def _raw_index(index, ref: Tensor):
    if isinstance(index, Tensor):
        if index.device != ref.device:
            raise RuntimeError(f"index: the index tensor is on {index.device}, the tensor on "
                               f"{ref.device}; move the index with .to('{ref.device}')")
        return index.array
    if isinstance(index, tuple):
        return tuple(_raw_index(i, ref) for i in index)
    if isinstance(index, list):
        return ref.xp.asarray(index)
    return index


def _is_advanced(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return any(hasattr(i, "shape") and getattr(i, "ndim", 0) > 0 for i in items)


def _as_view_index(index):
    """A basic index with a trailing ``...``: NumPy then returns a 0-d *view* for ``x[1]`` of a
    1-D array, where it would return a scalar copy (PyTorch's ``x[1]`` is a view, sharing the
    memory and its version counter)."""
    items = index if isinstance(index, tuple) else (index,)
    if _is_advanced(index) or any(i is Ellipsis for i in items):
        return index
    return (*items, Ellipsis)


class GetItem(Function):

    def forward(self, x, index):
        self.meta = (x.shape, x.dtype, index)
        return x[_as_view_index(index)]

    def backward(self, g):
        shape, dtype, index = self.meta
        xp = array_module(g)
        dx = xp.zeros(shape, dtype=dtype)
        if _is_advanced(index):
            xp.add.at(dx, index, g)          # repeated indices must sum their gradients
        else:
            dx[index] = g
        return dx, None


def getitem(x: Tensor, index) -> Tensor:
    raw = _raw_index(index, x)
    return GetItem.apply(x, raw)


# --- padding and concatenation ---

class Pad(Function):

    def forward(self, x, widths, value):
        xp = array_module(x)
        self.crop = tuple(slice(lo, lo + s) for (lo, _), s in zip(widths, x.shape))
        out_shape = tuple(s + lo + hi for (lo, hi), s in zip(widths, x.shape))
        out = xp.full(out_shape, value, dtype=x.dtype)
        out[self.crop] = x
        return out

    def backward(self, g):
        return g[self.crop], None, None


def pad(x: Tensor, pad: tuple, mode: str = "constant", value: float = 0.0) -> Tensor:
    """PyTorch's ``F.pad``: ``pad = (left, right, top, bottom, ...)`` from the last dim backwards."""
    if mode != "constant":
        raise NotImplementedError(f"pad: mode {mode!r}; only 'constant' is implemented")
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(f"pad: {pad} must hold a (before, after) pair for each of at most "
                         f"{x.ndim} trailing dims")
    widths = [(0, 0)] * x.ndim
    for i in range(len(pad) // 2):
        lo, hi = int(pad[2 * i]), int(pad[2 * i + 1])
        if lo < 0 or hi < 0:
            raise ValueError(f"pad: negative padding {pad} is not supported")
        widths[x.ndim - 1 - i] = (lo, hi)
    return Pad.apply(x, tuple(widths), value)


class Concatenate(Function):

    def forward(self, *arrays, axis):
        xp = array_module(arrays[0])
        self.axis = axis
        self.bounds = []
        start = 0
        for a in arrays:
            self.bounds.append((start, start + a.shape[axis]))
            start += a.shape[axis]
        return xp.concatenate(arrays, axis=axis)

    def backward(self, g):
        out = []
        for lo, hi in self.bounds:
            index = [slice(None)] * g.ndim
            index[self.axis] = slice(lo, hi)
            out.append(g[tuple(index)])
        return tuple(out)


def cat(tensors, dim: int = 0) -> Tensor:
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty list of tensors")
    ref = tensors[0]
    for t_ in tensors[1:]:
        if t_.ndim != ref.ndim or any(a != b for i, (a, b) in enumerate(zip(t_.shape, ref.shape))
                                      if i != dim % ref.ndim):
            raise RuntimeError(f"cat: shapes {ref.shape} and {t_.shape} differ outside dim {dim}")
        if t_.dtype != ref.dtype:
            raise TypeError(f"cat: dtypes {ref.dtype} and {t_.dtype} differ; convert with .float()")
    return Concatenate.apply(*tensors, axis=dim % ref.ndim)


def stack(tensors, dim: int = 0) -> Tensor:
    tensors = list(tensors)
    return cat([unsqueeze(t_, dim) for t_ in tensors], dim)


# --- the paper's option-A shortcut ---

class SubsampleZeroPad(Function):
    """The graph node of :func:`zero_pad_shortcut` (its module is ``models.ZeroPadShortcut``)."""


    def forward(self, x, out_channels, stride):
        xp = array_module(x)
        n, c, h, w = x.shape
        sub = x[:, :, ::stride, ::stride]
        ho, wo = sub.shape[2], sub.shape[3]
        out = xp.zeros((n, ho, wo, out_channels), dtype=x.dtype)   # channels-last memory
        out[:, :, :, :c] = sub.transpose(0, 2, 3, 1)
        self.meta = (x.shape, stride)
        return out.transpose(0, 3, 1, 2)

    def backward(self, g):
        xp = array_module(g)
        shape, stride = self.meta
        n, c, h, w = shape
        dx = xp.zeros((n, h, w, c), dtype=g.dtype)      # channels-last, like the forward output
        dx[:, ::stride, ::stride, :] = g[:, :c].transpose(0, 2, 3, 1)
        return dx.transpose(0, 3, 1, 2), None, None


def zero_pad_shortcut(x: Tensor, out_channels: int, stride: int = 1) -> Tensor:
    """Option A: ``x[:, :, ::stride, ::stride]`` with ``out_channels - C`` zero channels appended."""
    if x.ndim != 4:
        raise ValueError(f"zero_pad_shortcut: expected (N, C, H, W) input, got shape {x.shape}")
    if out_channels < x.shape[1]:
        raise ValueError(f"zero_pad_shortcut: out_channels={out_channels} is smaller than the "
                         f"input's {x.shape[1]} channels; option A only adds channels")
    return SubsampleZeroPad.apply(x, int(out_channels), int(stride))
