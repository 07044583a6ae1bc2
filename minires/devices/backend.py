"""Devices and their array modules: the device registry.

Every kernel in minires is written once, against an *array module* ``xp`` that has NumPy's API.
This module maps a device name to that array module and owns the only sanctioned transfers
between host and device:

* ``"cpu"``: NumPy.
* ``"cuda"`` / ``"cuda:N"``: CuPy, imported lazily, so a machine without it never pays for it.
* ``"strict"``: NumPy behind a wrapper that behaves like a GPU (:mod:`minires.devices.strict`), so
  that running the tests on ``strict`` catches on a CPU-only machine the mistakes that would
  break on a GPU.

``to_host`` and ``to_device`` are the two doors between host and device; nothing else may cross.
(``tune_host_allocator``, importable from here as before, lives in
:mod:`minires.devices.host_allocator`.)
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import numpy

from .. import configuration
from ..errors import ConfigError, MiniresError
from .strict import copy_from_host, copy_to_host, memory_owner as _strict_owner
from .strict import StrictArray, StrictTransferError, strict_numpy  # noqa: F401 (public)

__all__ = [
    "Device", "device_of_array", "array_module", "get_array_module", "to_device", "to_host", "normalize_device",
    "default_device", "cuda_is_available", "StrictArray", "strict_numpy", "DeviceError",
]


class DeviceError(MiniresError, RuntimeError):
    """A device that is unknown or not available on this machine."""


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
    if configuration.ENVIRONMENT["MINIRES_DEVICE"].raw().lower() == "cpu":
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
    name = configuration.env("MINIRES_DEVICE")
    if not name:
        return Device("cpu")
    try:
        return normalize_device(name)
    except ValueError:
        raise ConfigError(f"MINIRES_DEVICE={name!r} is not a device: set it to cpu, strict, "
                          f"cuda or cuda:N, or unset it for cpu") from None


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


def memory_owner(array: Any) -> Any:
    """The object that owns ``array``'s memory: the array itself or the end of its chain of
    ``.base`` (all views of one memory end at the same owner, on every device)."""
    if type(array) is numpy.ndarray:                # the common case, first
        base = array.base
        return array if base is None else base if type(base) is numpy.ndarray and \
            base.base is None else memory_owner(base)
    if isinstance(array, StrictArray):
        return _strict_owner(array)
    while True:
        base = getattr(array, "base", None)
        if base is None or base is array:       # (a dtype's .base is itself)
            return array
        array = base


def to_host(array: Any) -> numpy.ndarray:
    """An explicit copy (or view, on cpu) of any device array as a NumPy array."""
    if isinstance(array, numpy.ndarray):
        return array
    if isinstance(array, StrictArray):
        return copy_to_host(array)
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
        return copy_from_host(to_host(array))
    cp = get_array_module(device)
    with cp.cuda.Device(device.index):
        if current is not None and current.type == "cuda":
            return cp.array(array, copy=True)
        return cp.asarray(to_host(array))


def synchronize(device: "str | Device") -> None:
    """Wait for queued GPU work (for timing); a no-op on the CPU devices."""
    device = normalize_device(device)
    if device.type == "cuda":
        _import_cupy().cuda.Device(device.index).synchronize()


def __getattr__(name):
    # the allocator tuning is no job of the device registry, and loading it is no job of import
    if name == "tune_host_allocator":
        from .host_allocator import tune_host_allocator
        return tune_host_allocator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
