"""In-place operations: ``add_``, ``sub_``, ``mul_``, ``div_``, ``zero_``, ``fill_``, ``clamp_``,
``copy_``, ``relu_`` and ``x += y``, with PyTorch's rules.

* A **leaf that requires grad** (a parameter) refuses them unless grad mode is off
  (``with mr.no_grad():``, where optimisers update parameters): changing it in place would leave
  no graph node to differentiate.
* **Outside the graph** (grad mode off, or no tensor involved requires grad) the new values are
  written into the tensor's memory, so every alias sees them: ``y = x; x += 1`` changes ``y``,
  and ``p.data.sub_(lr * p.grad)`` changes ``p``.
* **Inside the graph** the operation is computed out of place on a snapshot of the tensor, and the
  tensor object is then rebound to the result (its values and its ``grad_fn``). The old memory is
  left with its old values, but counts as written: a node that kept it refuses to backward, as in
  PyTorch. A *view* taken of the tensor earlier (``v = x[0]``) does not see the change, unlike
  PyTorch (see ``docs/vs-pytorch.md``).
* Every write bumps the **version counter** of the memory written, shared by every tensor that
  views it (views, ``.data``, ``detach()``); a node records the versions of the tensors it keeps
  for backward, and backward raises if one changed since (PyTorch's check and message) instead
  of computing a silently wrong gradient.
"""
from __future__ import annotations

from ..autograd import Tensor, is_grad_enabled, no_grad
from . import elementwise as E


def _refuse_leaf(x: Tensor, op: str) -> None:
    if x.requires_grad and x.is_leaf and is_grad_enabled():
        raise RuntimeError(
            f"{op}: a leaf tensor that requires grad (shape {x.shape}) is used in an in-place "
            f"operation; do it under `with mr.no_grad():` (as optimisers do) or use the "
            f"out-of-place op")


def apply_inplace(x: Tensor, op: str, compute, *others) -> Tensor:
    """Replace ``x``'s value by ``compute(x)`` (a Tensor op), in place by the rules above."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(x).__name__}")
    _refuse_leaf(x, op)
    in_graph = is_grad_enabled() and (x.requires_grad or any(
        isinstance(o, Tensor) and o.requires_grad for o in others))
    if not in_graph:
        with no_grad():
            out = compute(x)
        _check_result(x, out, op)
        if out.array is not x.array:
            _write(x, out.array, op)
        x._version[0] += 1
        return x
    x._version[0] += 1      # x's memory counts as written: nodes that kept it refuse backward
    try:
        out = compute(_snapshot(x, x.array))
        if _keeps_memory_of(out, x):
            # the new node keeps the old value for its backward (mul_, div_): keep a copy of it,
            # as PyTorch does, so that a later write through an alias of that memory cannot
            # reach it
            out = compute(_snapshot(x, x.array.copy()))
        _check_result(x, out, op)
    except Exception:
        x._version[0] -= 1  # nothing was written
        raise
    x.array, x._ctx, x.requires_grad = out.array, out._ctx, out.requires_grad
    x._version = out._version     # x now *is* the new value, in new memory
    return x


def _write(x: Tensor, values, op: str) -> None:
    try:
        x.array[...] = values
    except ValueError as exc:       # NumPy: an expand()-ed view is read-only
        raise RuntimeError(
            f"{op}: the tensor of shape {x.shape} cannot be written in place ({exc}): an "
            f"expand()-ed view (several elements share one memory location) or read-only "
            f"memory; .clone() it first") from None


def _snapshot(x: Tensor, array) -> Tensor:
    """The old value of ``x`` with its place in the graph (and, when ``array`` is its memory,
    that memory's version counter)."""
    snapshot = Tensor._wrap(array, x.requires_grad)
    snapshot._ctx = x._ctx
    if array is x.array:
        snapshot._version = x._version
    return snapshot


def _keeps_memory_of(out: Tensor, x: Tensor) -> bool:
    """Whether the node that computed ``out`` recorded ``x``'s memory among what it keeps."""
    saved = getattr(out._ctx, "saved_versions", ()) if out._ctx is not None else ()
    return any(s.counter is x._version for s in saved)


def _check_result(x: Tensor, out: Tensor, op: str) -> None:
    if out.shape != x.shape:
        raise RuntimeError(f"{op}: the result has shape {out.shape}, which does not fit in place "
                           f"into the tensor of shape {x.shape} (only the other operand may "
                           f"broadcast)")
    if out.dtype != x.dtype:
        if x.dtype.kind in "iub" and out.dtype.kind == "f":
            raise RuntimeError(f"{op}: result type {out.dtype} can't be cast to the tensor's "
                               f"{x.dtype} in place; convert first, e.g. x = x.float()")
        if out.dtype.kind == "f" and x.dtype.kind == "f":
            raise RuntimeError(f"{op}: result type {out.dtype} differs from the tensor's "
                               f"{x.dtype}; convert the other operand with .to({x.dtype.name})")


def _binary(name, fn):
    def method(self, other, *, alpha=None):
        if alpha is not None:                   # x.add_(y, alpha=a) is x + a * y, as PyTorch
            other = E.mul(other, alpha)
        return apply_inplace(self, f"{name}_", lambda s: fn(s, other), other)
    method.__name__ = f"{name}_"
    method.__doc__ = f"In place: ``self = self {name} other`` (see :mod:`minires.ops.inplace`)."
    return method


def _iop(name, fn):
    def method(self, other):
        return apply_inplace(self, f"{name} (in place)", lambda s: fn(s, other), other)
    method.__name__ = name
    return method


def _select(x: Tensor, value) -> Tensor:
    """``value`` broadcast to ``x``'s shape as a graph node (its gradient flows to ``value``,
    none to ``x``): the value of ``fill_``, ``zero_`` and ``copy_``."""
    never = Tensor._wrap(x.xp.zeros(x.shape, dtype=bool))
    return E.where(never, x, value)


def zero_(self) -> Tensor:
    return fill_(self, 0)


def fill_(self, value) -> Tensor:
    return apply_inplace(self, "fill_", lambda s: _select(s, value), value)


def copy_(self, src) -> Tensor:
    """Copy ``src``'s values into ``self`` (broadcast to its shape, converted to its dtype and
    device); the gradient flows to ``src``."""
    if not isinstance(src, Tensor):
        raise TypeError(f"copy_: expected a Tensor source, got {type(src).__name__}")

    def compute(s):
        value = src.to(s.device) if src.device != s.device else src
        value = value.to(s.dtype) if value.dtype != s.dtype else value
        return _select(s, value)
    return apply_inplace(self, "copy_", compute, src)


def clamp_(self, min=None, max=None) -> Tensor:
    return apply_inplace(self, "clamp_", lambda s: E.clamp(s, min, max))


def relu_(self) -> Tensor:
    return apply_inplace(self, "relu_", E.relu)


INPLACE_METHODS = {
    "add_": _binary("add", E.add), "sub_": _binary("sub", E.sub),
    "mul_": _binary("mul", E.mul), "div_": _binary("div", E.div),
    "__iadd__": _iop("__iadd__", E.add), "__isub__": _iop("__isub__", E.sub),
    "__imul__": _iop("__imul__", E.mul), "__itruediv__": _iop("__itruediv__", E.div),
    "zero_": zero_, "fill_": fill_, "copy_": copy_, "clamp_": clamp_, "relu_": relu_,
}
