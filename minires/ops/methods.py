"""Attach the operations as ``Tensor`` methods and operators (``x + y``, ``x.sum(dim=1)``).

Kept apart from ``minires.autograd`` so that the engine does not import what is built on it.
"""
from __future__ import annotations

from ..autograd import Tensor, parse_to_args
from . import elementwise as E
from . import inplace as I
from . import linalg as L
from . import reduce as R
from . import shape as S


def _swap(fn):
    return lambda self, other: fn(other, self)


def _reshape(self, *shape):
    return S.reshape(self, *shape)


def _transpose(self, dim0=None, dim1=None, *more):
    if dim0 is None:                      # NumPy style x.transpose() reverses the axes
        return S.permute(self, tuple(reversed(range(self.ndim))))
    if more or isinstance(dim0, (tuple, list)):
        return S.permute(self, dim0 if isinstance(dim0, (tuple, list)) else (dim0, dim1, *more))
    return S.transpose(self, dim0, dim1)


def _to(self, *args, **kwargs) -> Tensor:
    """``to(device)``, ``to(dtype)`` or ``to(device, dtype)``: a copy where anything changes,
    ``self`` where nothing does. The result is part of the graph (gradients flow back)."""
    device, dtype = parse_to_args(args, kwargs)
    out = self
    if dtype is not None and dtype != self.dtype:
        out = E.cast(out, dtype)
    if device is not None and device != out.device:
        out = E.transfer(out, device)
    return out


_METHODS = {
    "__add__": E.add, "__radd__": _swap(E.add), "__sub__": E.sub, "__rsub__": _swap(E.sub),
    "__mul__": E.mul, "__rmul__": _swap(E.mul), "__truediv__": E.div,
    "__rtruediv__": _swap(E.div), "__neg__": E.neg, "__pow__": E.pow,
    "__matmul__": L.matmul, "__rmatmul__": _swap(L.matmul),
    "__eq__": E.eq, "__ne__": E.ne, "__lt__": E.lt, "__le__": E.le, "__gt__": E.gt,
    "__ge__": E.ge, "__getitem__": S.getitem, "__abs__": E.abs,
    "add": E.add, "sub": E.sub, "mul": E.mul, "div": E.div, "neg": E.neg, "pow": E.pow,
    "exp": E.exp, "log": E.log, "sqrt": E.sqrt, "abs": E.abs, "relu": E.relu,
    "sigmoid": E.sigmoid, "tanh": E.tanh, "clamp": E.clamp, "matmul": L.matmul,
    "sum": R.sum, "mean": R.mean, "max": R.max, "min": R.min, "amax": R.amax,
    "argmax": R.argmax, "argmin": R.argmin, "topk": R.topk, "eq": E.eq, "ne": E.ne,
    "lt": E.lt, "le": E.le, "gt": E.gt, "ge": E.ge, "expand": S.expand,
    "expand_as": S.expand_as, "view_as": S.view_as, "reshape": _reshape, "view": _reshape,
    "flatten": S.flatten,
    "permute": S.permute, "transpose": _transpose, "t": S.t, "squeeze": S.squeeze,
    "unsqueeze": S.unsqueeze, "to": _to, "clone": S.clone,
}
_METHODS.update(I.INPLACE_METHODS)   # add_, zero_, x += y ... (see ops/inplace.py)
for _name, _fn in _METHODS.items():
    setattr(Tensor, _name, _fn)
Tensor.__hash__ = object.__hash__      # __eq__ is elementwise; tensors stay usable as dict keys
Tensor.T = property(lambda self: S.permute(self, tuple(reversed(range(self.ndim)))))
