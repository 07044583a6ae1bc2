"""The strict device: NumPy behind a wrapper that behaves like a GPU.

Its arrays (:class:`StrictArray`) refuse to be converted to the host implicitly (``np.asarray``,
``float()``, iteration, ``.tolist()``) and refuse to be mixed with host arrays in one operation.
CuPy raises in exactly those places (or silently synchronises), so running the tests on
``"strict"`` catches, on a CPU-only machine, the mistakes that would break on a GPU.
:data:`strict_numpy` is its array module: ``numpy`` seen through the wrapper.

The two explicit doors, :func:`copy_to_host` and :func:`copy_from_host`, are what
``minires.devices.backend.to_host`` and ``to_device`` use; nothing else may cross. This
module knows nothing of device names: ``minires.devices.backend`` maps ``"strict"`` to
:data:`strict_numpy`.
"""
from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy

__all__ = ["StrictArray", "StrictTransferError", "strict_numpy", "copy_to_host", "copy_from_host",
           "memory_owner"]


class StrictTransferError(TypeError):
    """A strict-device array was converted to host, or mixed with a host array, implicitly."""


def _refuse(what: str) -> None:
    raise StrictTransferError(
        f"{what} on a 'strict' device array: this is an implicit device->host conversion or a mix "
        "of host and device arrays, which CuPy refuses (or silently synchronises). Move data "
        "explicitly with Tensor.to(...)/.numpy(), or build it with the tensor's array module `xp`.")


def _unwrap(obj: Any) -> Any:
    """StrictArray -> ndarray, recursively through lists/tuples/dicts; host ndarrays are refused."""
    if isinstance(obj, StrictArray):
        return obj._a
    if isinstance(obj, numpy.ndarray):
        if obj.ndim == 0:  # a NumPy scalar array behaves like a Python scalar
            return obj
        _refuse(f"passing a host numpy.ndarray of shape {obj.shape}")
    if isinstance(obj, (list, tuple)):
        return type(obj)(_unwrap(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _unwrap(v) for k, v in obj.items()}
    return obj


def _wrap(obj: Any) -> Any:
    if isinstance(obj, numpy.ndarray):
        return StrictArray(obj)
    if isinstance(obj, numpy.generic):   # NumPy reductions return scalars; CuPy returns 0-d arrays
        return StrictArray(numpy.asarray(obj))
    if isinstance(obj, tuple):
        return tuple(_wrap(o) for o in obj)
    if isinstance(obj, list):
        return [_wrap(o) for o in obj]
    return obj


def _binary(name: str):
    def op(self, other):
        return StrictArray(getattr(self._a, name)(_unwrap(other)))
    op.__name__ = name
    return op


def _inplace(name: str):
    def op(self, other):
        getattr(self._a, name)(_unwrap(other))
        return self
    op.__name__ = name
    return op


class StrictArray:
    """A NumPy array that behaves like a device array (see the module docstring).

    It is a wrapper, not an ndarray subclass: NumPy never asks a subclass before converting it,
    whereas a wrapper whose ``__array__`` raises and whose ``__array_ufunc__`` is None is refused by
    every NumPy entry point.
    """

    __slots__ = ("_a", "__weakref__")   # weak references: kernels track buffers they keep
    __array_ufunc__ = None      # numpy ufuncs and ndarray operators defer to us, then we refuse
    __array_priority__ = 1000

    def __init__(self, array: numpy.ndarray):
        self._a = array

    # --- what CuPy refuses (or silently synchronises) ---
    def __array__(self, *args, **kwargs):
        _refuse("numpy.asarray()/numpy.array()")

    def __float__(self):
        _refuse("float()")

    def __int__(self):
        _refuse("int()")

    def __bool__(self):
        _refuse("bool() (an `if` on an array)")

    def __index__(self):
        _refuse("use as a Python index")

    def __iter__(self):
        _refuse("iteration")

    def tolist(self):
        _refuse(".tolist()")

    def item(self, *args):
        _refuse(".item()")

    # --- array protocol ---
    @property
    def shape(self):
        return self._a.shape

    @property
    def dtype(self):
        return self._a.dtype

    @property
    def ndim(self):
        return self._a.ndim

    @property
    def size(self):
        return self._a.size

    @property
    def strides(self):
        return self._a.strides

    @property
    def itemsize(self):
        return self._a.itemsize

    @property
    def nbytes(self):
        return self._a.nbytes

    @property
    def flags(self):
        return self._a.flags

    @property
    def T(self):
        return StrictArray(self._a.T)

    def __len__(self):
        return len(self._a)

    def __repr__(self):
        return f"StrictArray({self._a!r})"

    def __getitem__(self, index):
        return _wrap(self._a[_unwrap(index)])

    def __setitem__(self, index, value):
        self._a[_unwrap(index)] = _unwrap(value)

    def __getattr__(self, name):
        # methods such as reshape, transpose, sum, astype, copy, max, argmax, fill ...
        if name in ("__array_interface__", "__array_struct__", "__dlpack__", "__buffer__"):
            # NumPy asks for these before __array__: forwarding them would hand the data over
            _refuse("numpy.asarray()/numpy.array()")
        attr = getattr(self._a, name)
        if callable(attr):
            def method(*args, **kwargs):
                return _wrap(attr(*_unwrap(args), **_unwrap(kwargs)))
            return method
        return _wrap(attr)

    def __neg__(self):
        return StrictArray(-self._a)

    def __pos__(self):
        return self

    def __abs__(self):
        return StrictArray(abs(self._a))

    def __invert__(self):
        return StrictArray(~self._a)

    for _n in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or",
               "xor", "lshift", "rshift"):
        locals()[f"__{_n}__"] = _binary(f"__{_n}__")
        locals()[f"__r{_n}__"] = _binary(f"__r{_n}__")
        locals()[f"__i{_n}__"] = _inplace(f"__i{_n}__")
    for _n in ("eq", "ne", "lt", "le", "gt", "ge"):
        locals()[f"__{_n}__"] = _binary(f"__{_n}__")
    del _n
    __hash__ = None


class _StrictModule(ModuleType):
    """``numpy`` seen through the strict device: every function unwraps its StrictArray arguments,
    refuses host arrays, and wraps the arrays it returns."""

    def __init__(self, name: str, target: ModuleType):
        super().__init__(name)
        self._target = target

    def __getattr__(self, name):
        attr = getattr(self._target, name)
        if isinstance(attr, ModuleType):               # xp.random, xp.linalg, xp.fft ...
            sub = _StrictModule(f"{self.__name__}.{name}", attr)
            setattr(self, name, sub)
            return sub
        if isinstance(attr, type) or not callable(attr):   # dtypes, constants (float32, pi, newaxis)
            return attr
        if isinstance(attr, numpy.ufunc):                  # xp.add(...), xp.add.at(...)
            return _StrictUfunc(attr)
        if name in ("asarray", "array", "asanyarray", "ascontiguousarray"):
            def create(obj, *args, **kwargs):
                # Like cupy.asarray: building a device array from host data is an explicit transfer.
                if isinstance(obj, numpy.ndarray):
                    return StrictArray(attr(obj, *args, **kwargs))
                return _wrap(attr(_unwrap(obj), *args, **_unwrap(kwargs)))
            return create

        def fn(*args, **kwargs):
            return _wrap(attr(*_unwrap(args), **_unwrap(kwargs)))
        fn.__name__ = name
        return fn

    def get_array_module(self, *args):
        return self


class _StrictUfunc:
    """A NumPy ufunc seen through the strict device (``xp.add(a, b)``, ``xp.add.at(a, i, b)``)."""

    def __init__(self, ufunc):
        self._ufunc = ufunc

    def __call__(self, *args, **kwargs):
        return _wrap(self._ufunc(*_unwrap(args), **_unwrap(kwargs)))

    def __getattr__(self, name):
        attr = getattr(self._ufunc, name)
        if not callable(attr):
            return attr

        def method(*args, **kwargs):
            return _wrap(attr(*_unwrap(args), **_unwrap(kwargs)))
        return method


strict_numpy = _StrictModule("minires.strict_numpy", numpy)


def memory_owner(array: StrictArray) -> Any:
    """The NumPy object that owns a strict array's memory: for telling whether two arrays share
    memory (an identity, no data crosses)."""
    owner = array._a
    while owner.base is not None:
        owner = owner.base
    return owner


def copy_to_host(array: StrictArray) -> numpy.ndarray:
    """The explicit door out: a NumPy copy of a strict array's data."""
    return array._a.copy()


def copy_from_host(array: numpy.ndarray) -> StrictArray:
    """The explicit door in: a strict array holding a copy of host data."""
    return StrictArray(numpy.array(array))
