"""Making tensors: ``tensor``, ``zeros``, ``ones``, ``randn`` ... with PyTorch's dtype rules.

``tensor(data)``: a NumPy array keeps its dtype; Python floats become float32 and Python ints
int64 (as in PyTorch). Factories default to float32 and to the default device (``MINIRES_DEVICE``,
else "cpu"). Random values are drawn on the host and moved, so a seed means the same values on
every device.
"""
from __future__ import annotations

import numbers

import numpy

from .devices import backend
from .autograd import Tensor
from .dtypes import as_dtype, float32
from .random import host_generator


def _infer_dtype(data):
    if isinstance(data, numpy.generic):          # a NumPy scalar keeps its dtype, like an array
        return data.dtype
    if isinstance(data, bool):
        return numpy.dtype(numpy.bool_)
    if isinstance(data, numbers.Integral):
        return numpy.dtype(numpy.int64)
    if isinstance(data, numbers.Real):
        return float32
    arr = numpy.asarray(data)
    if arr.dtype.kind == "f":
        return float32
    if arr.dtype.kind in "iu":
        return numpy.dtype(numpy.int64)
    return arr.dtype


def tensor(data, requires_grad: bool = False, dtype=None, device=None) -> Tensor:
    """A new tensor (a copy) from a Python number, nested list, NumPy or device array, or Tensor."""
    device = backend.normalize_device(device) if device is not None else None
    if isinstance(data, Tensor):
        array = data.array
        device = device or data.device
    elif isinstance(data, numpy.ndarray):
        array = data
    elif isinstance(data, backend.StrictArray) or type(data).__module__.startswith("cupy"):
        array = data
        device = device or backend.device_of_array(data)
    else:
        if isinstance(data, (list, tuple)) and any(isinstance(v, Tensor) for v in data):
            raise TypeError("tensor(): a list of Tensors; use mr.stack(list) instead")
        array = numpy.asarray(data, dtype=as_dtype(dtype) if dtype is not None
                              else _infer_dtype(data))
    if dtype is not None:
        array = array.astype(as_dtype(dtype), copy=False)
    if array.dtype == object:
        raise TypeError(f"tensor(): cannot make a tensor from {type(data).__name__} of objects")
    device = device or backend.default_device()
    if backend.device_of_array(array) == device:
        array = array.copy()
    else:
        array = backend.to_device(array, device)
        if isinstance(array, numpy.ndarray) and array is data:
            array = array.copy()
    return Tensor(array, requires_grad=requires_grad)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """Like :func:`tensor` but without a copy where the data is already on the device."""
    if isinstance(data, Tensor) and (dtype is None or data.dtype == as_dtype(dtype)) and \
            (device is None or data.device == backend.normalize_device(device)):
        return data
    if isinstance(data, numpy.ndarray) and (device is None or
                                            backend.normalize_device(device).type == "cpu") and \
            backend.default_device().type == "cpu" and dtype is None:
        return Tensor(data)
    return tensor(data, dtype=dtype, device=device)


def from_numpy(array: numpy.ndarray) -> Tensor:
    """A cpu tensor sharing memory with a NumPy array."""
    return Tensor(array)


def _shape(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        return tuple(int(s) for s in size[0])
    return tuple(int(s) for s in size)


def _make(fill, size, dtype, device, requires_grad):
    dtype = as_dtype(dtype) if dtype is not None else float32
    device = backend.normalize_device(device)
    xp = backend.get_array_module(device)
    if device.type == "cuda":
        with xp.cuda.Device(device.index):
            array = fill(xp, _shape(size), dtype)
    else:
        array = fill(xp, _shape(size), dtype)
    return Tensor(array, requires_grad=requires_grad)


def zeros(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _make(lambda xp, s, d: xp.zeros(s, dtype=d), size, dtype, device, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _make(lambda xp, s, d: xp.ones(s, dtype=d), size, dtype, device, requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _make(lambda xp, s, d: xp.full(s, fill_value, dtype=d), (size,), dtype, device,
                 requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    return zeros(*size, dtype=dtype, device=device, requires_grad=requires_grad)


def zeros_like(t: Tensor, dtype=None, device=None, requires_grad=False) -> Tensor:
    return zeros(t.shape, dtype=dtype or t.dtype, device=device or t.device,
                 requires_grad=requires_grad)


def ones_like(t: Tensor, dtype=None, device=None, requires_grad=False) -> Tensor:
    return ones(t.shape, dtype=dtype or t.dtype, device=device or t.device,
                requires_grad=requires_grad)


def _from_host(host_array, dtype, device, requires_grad):
    dtype = as_dtype(dtype) if dtype is not None else float32
    array = backend.to_device(host_array.astype(dtype), backend.normalize_device(device))
    return Tensor(array, requires_grad=requires_grad)


def randn(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Standard normal values (drawn on the host, then moved)."""
    return _from_host(host_generator().standard_normal(_shape(size)), dtype, device, requires_grad)


def rand(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Uniform values in [0, 1) (drawn on the host, then moved)."""
    return _from_host(host_generator().random(_shape(size)), dtype, device, requires_grad)


def randint(low, high=None, size=(), dtype=None, device=None) -> Tensor:
    if high is None:
        low, high = 0, low
    values = host_generator().integers(low, high, size=_shape((size,)) if isinstance(size, int)
                                       else tuple(size))
    return _from_host(values, dtype or numpy.int64, device, False)


def arange(start, end=None, step=1, dtype=None, device=None) -> Tensor:
    if end is None:
        start, end = 0, start
    host = numpy.arange(start, end, step)
    if dtype is None:
        dtype = numpy.int64 if host.dtype.kind in "iu" else float32
    return _from_host(host, dtype, device, False)


def eye(n: int, dtype=None, device=None) -> Tensor:
    return _from_host(numpy.eye(n), dtype, device, False)
