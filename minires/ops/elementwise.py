r"""Elementwise operations and their derivatives, with broadcasting.

For ``z = f(x, y)`` applied elementwise, ``dL/dx = dL/dz * df/dx``. When ``x`` was *broadcast*
(a (C,) bias added to an (N, C) batch), each element of ``x`` fed many elements of ``z``, so its
gradient is the **sum** of theirs: :func:`unbroadcast` sums over the broadcast axes.

=============  ===================  =========================================
op             forward              backward
=============  ===================  =========================================
add / sub      x + y, x - y         dz, +-dz
mul            x y                  dz y, dz x
div            x / y                dz / y, -dz x / y^2
pow (k const)  x^k                  dz k x^(k-1)
exp / log      e^x, log x           dz e^x, dz / x
relu           max(x, 0)            dz [x > 0]
sigmoid        s = 1/(1+e^-x)       dz s (1 - s)
tanh           t                    dz (1 - t^2)
=============  ===================  =========================================

**dtype discipline.** A Python number never changes a tensor's dtype (``x * 2.0`` stays float32),
an integer tensor meets a float one by becoming that float dtype, and two *different* float dtypes
raise a ``TypeError`` naming both and the fix, as in PyTorch.
"""
from __future__ import annotations

import numbers

import numpy

from ..devices import backend
from ..autograd import Function, Tensor
from ..dtypes import as_dtype
from ..kernels import relu as relu_kernel


# ---------------------------------------------------------------------------------------------
# Operand handling
# ---------------------------------------------------------------------------------------------

def unbroadcast(grad, shape):
    """Sum ``grad`` down to ``shape``: the adjoint of broadcasting ``shape`` up to grad.shape."""
    if tuple(grad.shape) == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(i + extra for i, s in enumerate(shape)
                                       if s == 1 and grad.shape[i + extra] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    if extra:
        grad = grad.reshape(shape)
    return grad


def _result_float_dtype(a: Tensor, b: Tensor, op: str):
    da, db = a.dtype, b.dtype
    if da == db:
        return None
    if da.kind == "f" and db.kind == "f":
        raise TypeError(
            f"{op}: the operands have different dtypes ({da.name} with shape {a.shape} and "
            f"{db.name} with shape {b.shape}); minires never promotes silently. Convert one "
            f"explicitly, e.g. with .float() (float32) or .double() (float64)")
    if da.kind == "f":
        return da
    if db.kind == "f":
        return db
    return numpy.result_type(da, db)


def as_operands(a, b, op: str) -> tuple[Tensor, Tensor]:
    """Turn ``a`` and ``b`` (Tensors or Python numbers) into tensors of one dtype and device."""
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        raise TypeError(f"{op}: expected at least one Tensor")
    # a constant may differ in dtype too (int tensor * 2.5 -> a float32 constant): reconcile it
    # like a tensor, or NumPy would promote int64 * float32 to float64
    if not isinstance(b, Tensor):
        b = constant_like(b, a, op)
    elif not isinstance(a, Tensor):
        a = constant_like(a, b, op)
    target = _result_float_dtype(a, b, op)
    if target is not None:
        a = a if a.dtype == target else cast(a, target)
        b = b if b.dtype == target else cast(b, target)
    return a, b


def constant_like(value, ref: Tensor, op: str = "op") -> Tensor:
    """A Python number (or a host array on "cpu") as a constant tensor on ``ref``'s device."""
    xp = ref.xp
    if isinstance(value, bool) or isinstance(value, numbers.Number):
        dtype = ref.dtype
        if ref.dtype.kind != "f" and isinstance(value, float):
            dtype = numpy.dtype(numpy.float32)
        elif ref.dtype.kind == "b" and not isinstance(value, bool):
            dtype = numpy.dtype(numpy.int64)         # bool + 2 is 3, not True
        return Tensor._wrap(xp.asarray(value, dtype=dtype))
    if isinstance(value, numpy.ndarray):
        if ref.device.type != "cpu":
            raise TypeError(
                f"{op}: a host numpy array (shape {value.shape}) cannot meet a tensor on "
                f"'{ref.device}'; wrap it first: mr.tensor(array, device='{ref.device}')")
        if value.dtype.kind == "f" and ref.dtype.kind == "f" and value.dtype != ref.dtype:
            raise TypeError(f"{op}: numpy array of dtype {value.dtype} with a {ref.dtype} tensor; "
                            f"convert the array with .astype({ref.dtype.name})")
        return Tensor._wrap(value)
    if type(value).__module__.startswith("cupy") or isinstance(value, backend.StrictArray):
        if backend.device_of_array(value) != ref.device:
            raise TypeError(f"{op}: an array on {backend.device_of_array(value)} cannot meet a "
                            f"tensor on '{ref.device}'")
        return Tensor._wrap(value)
    raise TypeError(f"{op}: unsupported operand type {type(value).__name__}")


# ---------------------------------------------------------------------------------------------
# Binary arithmetic
# ---------------------------------------------------------------------------------------------

class Add(Function):

    def forward(self, a, b):
        self.shapes = (a.shape, b.shape)
        return a + b

    def backward(self, g):
        sa, sb = self.shapes
        return unbroadcast(g, sa), unbroadcast(g, sb)


class Sub(Function):

    def forward(self, a, b):
        self.shapes = (a.shape, b.shape)
        return a - b

    def backward(self, g):
        sa, sb = self.shapes
        return unbroadcast(g, sa), (unbroadcast(-g, sb) if self.needs_input_grad[1] else None)


class Mul(Function):
    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a * b

    def backward(self, g):
        a, b = self.saved_tensors
        ga = unbroadcast(g * b, a.shape) if self.needs_input_grad[0] else None
        gb = unbroadcast(g * a, b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a / b

    def backward(self, g):
        a, b = self.saved_tensors
        ga = unbroadcast(g / b, a.shape) if self.needs_input_grad[0] else None
        gb = unbroadcast(-g * a / (b * b), b.shape) if self.needs_input_grad[1] else None
        return ga, gb


def _float_result(a: Tensor, b: Tensor, op: str) -> tuple[Tensor, Tensor]:
    """Division always gives a float (int / int -> float32, as in PyTorch)."""
    a, b = as_operands(a, b, op)
    if a.dtype.kind != "f":
        a, b = cast(a, numpy.float32), cast(b, numpy.float32)
    return a, b


def add(a, b) -> Tensor:
    return Add.apply(*as_operands(a, b, "add"))


def sub(a, b) -> Tensor:
    return Sub.apply(*as_operands(a, b, "sub"))


def mul(a, b) -> Tensor:
    return Mul.apply(*as_operands(a, b, "mul"))


def div(a, b) -> Tensor:
    return Div.apply(*_float_result(a, b, "div"))


# ---------------------------------------------------------------------------------------------
# Unary
# ---------------------------------------------------------------------------------------------

class Neg(Function):

    def forward(self, x):
        return -x

    def backward(self, g):
        return -g


class Pow(Function):
    def forward(self, x, exponent):
        self.save_for_backward(x)
        self.exponent = exponent
        return x ** exponent

    def backward(self, g):
        (x,) = self.saved_tensors
        k = self.exponent
        return g * (k * x ** (k - 1)), None


class Exp(Function):

    def forward(self, x):
        y = backend.array_module(x).exp(x)
        self.save_for_backward(y)
        return y

    def backward(self, g):
        (y,) = self.saved_tensors
        return g * y


class Log(Function):
    def forward(self, x):
        self.save_for_backward(x)
        return backend.array_module(x).log(x)

    def backward(self, g):
        (x,) = self.saved_tensors
        return g / x


class Sqrt(Function):

    def forward(self, x):
        y = backend.array_module(x).sqrt(x)
        self.save_for_backward(y)
        return y

    def backward(self, g):
        (y,) = self.saved_tensors
        return g / (2 * y)


class Abs(Function):
    def forward(self, x):
        xp = backend.array_module(x)
        self.save_for_backward(xp.sign(x))
        return xp.abs(x)

    def backward(self, g):
        (sign,) = self.saved_tensors
        return g * sign


class ReLU(Function):

    def forward(self, x):
        y = relu_kernel.relu_forward(x)
        self.save_for_backward(y)
        return y

    def backward(self, g):
        (y,) = self.saved_tensors
        # written in y's layout (channels-last after a convolution) whatever g's is, so that
        # later ops never stride across memory (tests/test_layout.py; docs/benchmarks.md)
        return relu_kernel.relu_backward(g, y)


class Sigmoid(Function):

    def forward(self, x):
        xp = backend.array_module(x)
        # 1/(1+e^-x) overflows e^-x for very negative x; tanh form is stable on both sides
        y = 0.5 * (xp.tanh(0.5 * x) + 1)
        self.save_for_backward(y)
        return y

    def backward(self, g):
        (y,) = self.saved_tensors
        return g * y * (1 - y)


class Tanh(Function):

    def forward(self, x):
        y = backend.array_module(x).tanh(x)
        self.save_for_backward(y)
        return y

    def backward(self, g):
        (y,) = self.saved_tensors
        return g * (1 - y * y)


class Clamp(Function):
    def forward(self, x, lo, hi):
        xp = backend.array_module(x)
        self.save_for_backward(x)
        self.bounds = (lo, hi)
        return xp.clip(x, lo, hi)

    def backward(self, g):
        (x,) = self.saved_tensors
        lo, hi = self.bounds
        mask = True
        if lo is not None:
            mask = mask & (x >= lo)
        if hi is not None:
            mask = mask & (x <= hi)
        return g * mask, None, None


def _require_float(x: Tensor, op: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(x).__name__}")
    return x if x.dtype.kind == "f" else cast(x, numpy.float32)


def neg(x):
    return Neg.apply(x)


def pow(x, exponent):
    if isinstance(exponent, Tensor):
        raise TypeError("pow: only a Python number exponent is supported (x ** 2.0)")
    if not isinstance(exponent, numbers.Number):
        raise TypeError(f"pow: exponent must be a number, got {type(exponent).__name__}")
    if x.dtype.kind != "f" and (isinstance(exponent, float) or exponent < 0):
        x = cast(x, numpy.float32)                   # int ** 2.5 is float32, never float64
    return Pow.apply(x, exponent)


def exp(x):
    return Exp.apply(_require_float(x, "exp"))


def log(x):
    return Log.apply(_require_float(x, "log"))


def sqrt(x):
    return Sqrt.apply(_require_float(x, "sqrt"))


def abs(x):
    return Abs.apply(x)


def relu(x, inplace: bool = False):
    """``max(x, 0)``; with ``inplace=True`` x itself is changed (``x.relu_()``, with the rules of
    :mod:`minires.ops.inplace`: a leaf that requires grad refuses it) and returned."""
    if inplace:
        return x.relu_()
    return ReLU.apply(x)


def sigmoid(x):
    return Sigmoid.apply(_require_float(x, "sigmoid"))


def tanh(x):
    return Tanh.apply(_require_float(x, "tanh"))


def clamp(x, min=None, max=None):
    if min is None and max is None:
        raise ValueError("clamp: give min, max or both")
    return Clamp.apply(x, min, max)


class Identity(Function):
    """``y = x`` as a graph node of its own: hooking ``y`` sees only the gradient that flows
    through ``y``'s consumers, even when ``x`` has other consumers too (how the diagnostics split
    a block's input gradient into its shortcut and branch parts)."""


    def forward(self, x):
        return x

    def backward(self, g):
        return g


def identity(x: Tensor) -> Tensor:
    return Identity.apply(x)


# ---------------------------------------------------------------------------------------------
# dtype and device moves (differentiable, so `.to()` keeps the graph)
# ---------------------------------------------------------------------------------------------

class Cast(Function):

    def forward(self, x, dtype):
        self.source = x.dtype
        return x.astype(dtype)

    def backward(self, g):
        return g.astype(self.source), None


class Transfer(Function):

    def forward(self, x, device):
        self.source = backend.device_of_array(x)
        return backend.to_device(x, device)

    def backward(self, g):
        return backend.to_device(g, self.source), None


def cast(x: Tensor, dtype) -> Tensor:
    dtype = as_dtype(dtype)
    if x.dtype == dtype:
        return x
    if dtype.kind != "f" and x.requires_grad:
        return Tensor._wrap(x.array.astype(dtype))        # integers carry no gradient
    return Cast.apply(x, dtype)


def transfer(x: Tensor, device) -> Tensor:
    return Transfer.apply(x, backend.normalize_device(device))


# ---------------------------------------------------------------------------------------------
# Comparisons (no gradient)
# ---------------------------------------------------------------------------------------------

def _compare(name):
    def compare(a, b):
        a, b = as_operands(a, b, name)
        return Tensor._wrap(getattr(a.array, f"__{name}__")(b.array))
    compare.__name__ = name
    return compare


eq, ne, lt, le, gt, ge = (_compare(n) for n in ("eq", "ne", "lt", "le", "gt", "ge"))


class Where(Function):
    """``y = a`` where ``cond`` else ``b``: a selection, so ``da = dy [cond]`` and
    ``db = dy [not cond]`` (summed down to the operands' shapes where they were broadcast).
    No arithmetic touches the unselected values: ``where(c, a, b)`` is finite wherever the
    selected operand is, even when the other one holds inf or nan."""

    def forward(self, mask, a, b):
        self.save_for_backward(mask)
        self.shapes = (a.shape, b.shape)
        return backend.array_module(a).where(mask, a, b)

    def backward(self, g):
        (mask,) = self.saved_tensors
        xp = backend.array_module(g)
        zero = xp.zeros((), dtype=g.dtype)
        sa, sb = self.shapes
        ga = unbroadcast(xp.where(mask, g, zero), sa) if self.needs_input_grad[1] else None
        gb = unbroadcast(xp.where(mask, zero, g), sb) if self.needs_input_grad[2] else None
        return None, ga, gb


def where(condition: Tensor, a, b) -> Tensor:
    """``a`` where ``condition`` else ``b`` (differentiable in a and b), broadcasting all three."""
    if not isinstance(condition, Tensor):
        raise TypeError(f"where: condition must be a bool Tensor, got {type(condition).__name__}")
    if condition.dtype.kind != "b":
        raise TypeError(f"where: condition must be a bool tensor, got {condition.dtype}; "
                        f"compare first, e.g. where(x > 0, a, b)")
    a, b = as_operands(a, b, "where")
    if condition.device != a.device:
        raise RuntimeError(f"where: condition on {condition.device}, values on {a.device}; "
                           f"move it with .to('{a.device}')")
    return Where.apply(condition, a, b)
