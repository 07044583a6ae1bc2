"""The two summaries of a device array that the diagnostics record, as host floats: its L2 norm and
its standard deviation. Each is one reduction on the device, in float64, and one scalar brought to
the host (the one sanctioned transfer)."""
from __future__ import annotations

from ..devices import backend


def array_norm(array) -> float:
    """The L2 norm of a device array, as a host float."""
    xp = backend.array_module(array)
    flat = array.reshape(-1).astype(xp.float64)
    return float(backend.to_host(xp.sqrt(flat @ flat)))


def array_std(array) -> float:
    """The standard deviation of a device array's elements, as a host float."""
    xp = backend.array_module(array)
    return float(backend.to_host(array.astype(xp.float64).std()))
