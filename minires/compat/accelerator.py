"""``torch.accelerator`` for minires (``mr.accelerator``): which accelerator, if any, minires can
use. The only accelerator minires knows is an NVIDIA GPU through CuPy ("cuda"); minires's own
names are :func:`minires.devices.backend.cuda_is_available` and ``cuda_device_count``."""
from __future__ import annotations

from ..devices import backend


def is_available() -> bool:
    return backend.cuda_is_available()


def current_accelerator():
    """The accelerator device (``minires.device("cuda")``), or None when there is none."""
    return backend.normalize_device("cuda") if is_available() else None


def device_count() -> int:
    return backend.cuda_device_count() if is_available() else 0
