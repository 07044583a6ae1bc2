"""Devices and their array modules.

Every kernel in minires is written once, against an *array module* ``xp`` that has NumPy's API.
This module maps a device name to that array module and owns the only sanctioned transfers
between host and device:

* ``"cpu"``: NumPy.
* ``"cuda"`` / ``"cuda:N"``: CuPy, imported lazily, so a machine without it never pays for it.
* ``"strict"``: NumPy behind a wrapper that behaves like a GPU. Its arrays refuse to be converted
  to host implicitly (``np.asarray``, ``float()``, iteration, ``.tolist()``) and refuse to be mixed
  with host arrays in one operation. CuPy raises in exactly those places (or silently synchronises),
  so running the tests on ``strict`` catches on a CPU-only machine the mistakes that would break on
  a GPU.

``to_host`` and ``to_device`` are the two doors between host and device; nothing else may cross.
"""
from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Any

import numpy

from .errors import MiniresError

__all__ = [
    "Device", "device_of_array", "array_module", "get_array_module", "to_device", "to_host", "normalize_device",
    "default_device", "cuda_is_available", "StrictArray", "strict_numpy", "DeviceError",
]


class DeviceError(MiniresError, RuntimeError):
    """A device that is unknown or not available on this machine."""


# ---------------------------------------------------------------------------------------------
# The strict stand-in device
# ---------------------------------------------------------------------------------------------

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

    __slots__ = ("_a",)
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


# ---------------------------------------------------------------------------------------------
# CuPy, lazily
# ---------------------------------------------------------------------------------------------

_CUPY_HINT = ("install CuPy for your CUDA version: pip install 'minires[cuda12]' or "
              "'minires[cuda13]' (CuPy wheels with the CUDA toolkit libraries)")
_cupy: ModuleType | None = None


def _import_cupy() -> ModuleType:
    global _cupy
    if _cupy is None:
        try:
            _cupy = importlib.import_module("cupy")
        except Exception as exc:  # ImportError, or a broken install raising something else
            raise DeviceError(f"device 'cuda' needs CuPy, which could not be imported ({exc}); "
                              f"{_CUPY_HINT}") from None
    return _cupy


def cuda_is_available() -> bool:
    """True when CuPy imports and sees at least one GPU. Never raises."""
    if os.environ.get("MINIRES_DEVICE", "").strip().lower() == "cpu":
        return False
    try:
        cp = _import_cupy()
        return bool(cp.is_available())
    except Exception:
        return False


def cuda_device_count() -> int:
    if not cuda_is_available():
        return 0
    try:
        return int(_import_cupy().cuda.runtime.getDeviceCount())
    except Exception:
        return 0


# ---------------------------------------------------------------------------------------------
# Device names
# ---------------------------------------------------------------------------------------------

class Device:
    """A parsed device name: ``type`` is "cpu", "strict" or "cuda"; ``index`` the GPU for cuda."""

    __slots__ = ("type", "index")

    def __init__(self, type: str, index: int | None = None):
        self.type = type
        self.index = index

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    __repr__ = lambda self: f"device('{self}')"  # noqa: E731

    def __eq__(self, other):
        if isinstance(other, str):
            try:
                other = normalize_device(other)
            except (ValueError, DeviceError):
                return False
        return isinstance(other, Device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self):
        return hash((self.type, self.index))


def normalize_device(device: "str | Device | None") -> Device:
    """Parse a device name (None means the default device) into a :class:`Device`."""
    if device is None:
        return default_device()
    if isinstance(device, Device):
        return device
    if not isinstance(device, str):
        raise TypeError(f"a device is a string such as 'cpu', 'strict' or 'cuda:0', got {device!r}")
    name = device.strip().lower()
    if name in ("cpu", "strict"):
        return Device(name)
    if name == "cuda":
        return Device("cuda", 0)
    if name.startswith("cuda:") and name[5:].isdigit():
        return Device("cuda", int(name[5:]))
    raise ValueError(f"unknown device {device!r}: use 'cpu', 'strict', 'cuda' or 'cuda:N'")


def default_device() -> Device:
    """The device named by the MINIRES_DEVICE environment variable, else "cpu"."""
    name = os.environ.get("MINIRES_DEVICE", "").strip()
    return normalize_device(name) if name else Device("cpu")


def check_device_available(device: Device) -> None:
    if device.type != "cuda":
        return
    cp = _import_cupy()
    try:
        ok = cp.is_available()
    except Exception:
        ok = False
    if not ok:
        raise DeviceError("device 'cuda' was asked for but CuPy sees no usable GPU (no NVIDIA "
                          "driver or no GPU on this machine); use device='cpu'")
    count = cuda_device_count()
    if device.index >= count:
        raise DeviceError(f"device '{device}' was asked for but this machine has {count} GPU(s)")


def get_array_module(device: "str | Device") -> ModuleType:
    """The array module (numpy, CuPy or the strict stand-in) of a device."""
    device = normalize_device(device)
    if device.type == "cpu":
        return numpy
    if device.type == "strict":
        return strict_numpy
    check_device_available(device)
    return _import_cupy()


def _maybe_cupy(array: Any) -> None:
    """Import CuPy when meeting a CuPy array that minires has not seen CuPy for yet."""
    if _cupy is None and type(array).__module__.split(".")[0] == "cupy":
        _import_cupy()


def device_of_array(array: Any) -> Device:
    """The device an array lives on."""
    _maybe_cupy(array)
    if isinstance(array, numpy.ndarray):
        return Device("cpu")
    if isinstance(array, StrictArray):
        return Device("strict")
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return Device("cuda", int(array.device.id))
    raise TypeError(f"not an array of any minires device: {type(array).__name__}")


def array_module(array: Any) -> ModuleType:
    """The array module of the device an array lives on (the ``xp`` of a kernel)."""
    if isinstance(array, numpy.ndarray):
        return numpy
    if isinstance(array, StrictArray):
        return strict_numpy
    _maybe_cupy(array)
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return _cupy
    raise TypeError(f"not an array of any minires device: {type(array).__name__}")


def to_host(array: Any) -> numpy.ndarray:
    """An explicit copy (or view, on cpu) of any device array as a NumPy array."""
    if isinstance(array, numpy.ndarray):
        return array
    if isinstance(array, StrictArray):
        return array._a.copy()
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return _cupy.asnumpy(array)
    return numpy.asarray(array)


def to_device(array: Any, device: "str | Device") -> Any:
    """An explicit transfer of an array (host or device) to ``device``. No copy when already there."""
    device = normalize_device(device)
    current = device_of_array(array) if not isinstance(array, (int, float, bool, list, tuple)) \
        else None
    if current == device:
        return array
    if device.type == "cpu":
        return to_host(array)
    if device.type == "strict":
        return StrictArray(numpy.array(to_host(array)))
    cp = get_array_module(device)
    with cp.cuda.Device(device.index):
        if current is not None and current.type == "cuda":
            return cp.array(array, copy=True)
        return cp.asarray(to_host(array))


def tune_host_allocator() -> bool:
    """Keep freed host memory for reuse instead of returning it to the OS.

    A training step allocates and frees the same large arrays (activations, im2col patches) every
    iteration. With glibc's defaults, arrays above a threshold are mmap-ed and unmapped each time,
    and a large free block at the top of the heap is handed back to the OS, so every step pays
    page faults to zero fresh memory again: measured here, 71,000 faults and a quarter of a
    ResNet-20 step (1.3 s -> 0.95 s once they were gone). So, like PyTorch's caching allocator:

    - ``M_MMAP_MAX = 0``: no array is mmap-ed, however large (the im2col patches of a CIFAR
      batch are 75 MB, above the largest mmap threshold glibc allows, 32 MiB);
    - ``M_TRIM_THRESHOLD = -1``: the heap is never trimmed, so freed memory is reused.

    The price: the process keeps its peak memory until it exits. glibc on Linux only; a no-op
    elsewhere; ``MINIRES_TUNE_MALLOC=0`` turns it off. Returns whether the settings were applied.
    """
    if os.environ.get("MINIRES_TUNE_MALLOC", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    try:
        import ctypes
        import ctypes.util
        import platform
        if platform.system() != "Linux" or not platform.libc_ver()[0] == "glibc":
            return False
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_top_pad, m_mmap_max = -1, -2, -4
        ok = libc.mallopt(m_mmap_max, 0)
        ok &= libc.mallopt(m_trim_threshold, -1)          # -1: never trim (see `man mallopt`)
        ok &= libc.mallopt(m_top_pad, 64 * 1024 * 1024)
        return bool(ok)
    except Exception:
        return False


def synchronize(device: "str | Device") -> None:
    """Wait for queued GPU work (for timing); a no-op on the CPU devices."""
    device = normalize_device(device)
    if device.type == "cuda":
        _import_cupy().cuda.Device(device.index).synchronize()
