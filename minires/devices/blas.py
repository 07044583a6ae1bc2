"""The thread count of the BLAS library that NumPy has loaded (OpenBLAS), read and set at run time.

Why: OpenBLAS reads ``OPENBLAS_NUM_THREADS`` once, when NumPy loads it, so an environment
variable set later changes nothing. Two users need the count while the process runs: the CPU
kernels (:mod:`minires.kernels.workers`), which split a convolution over the cores themselves and
must then keep each matrix product on one thread, and the MPI launch
(:mod:`minires.distributed.launch`), which gives each rank on a machine its share of the cores.

How: OpenBLAS exports ``openblas_get_num_threads``/``openblas_set_num_threads`` (NumPy's wheels
bundle it as ``scipy_openblas`` with a ``64_`` suffix). The library is found among the shared
objects this process has mapped (``/proc/self/maps``), once, on the first call: nothing happens at
import. Where no OpenBLAS is found (a NumPy built on MKL or Apple's Accelerate, a system without
``/proc``), :func:`blas_controls` returns None and the callers leave the library alone.
"""
from __future__ import annotations

import ctypes
import threading

__all__ = ["BlasControls", "blas_controls", "get_blas_threads", "set_blas_threads"]


class BlasControls:
    """The loaded OpenBLAS's ``get``/``set`` thread-count functions."""

    def __init__(self, path: str, getter, setter):
        self.path = path
        self._get = getter
        self._set = setter

    def get(self) -> int:
        return int(self._get())

    def set(self, threads: int) -> None:
        self._set(int(threads))


_controls: BlasControls | None = None
_searched = False
_lock = threading.Lock()


def _find_openblas() -> BlasControls | None:
    try:
        with open("/proc/self/maps") as maps:
            paths = sorted({line.split()[-1] for line in maps if "openblas" in line.lower()})
    except OSError:
        return None
    for path in paths:
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", ""):
                getter = getattr(library, f"{prefix}_get_num_threads{suffix}", None)
                setter = getattr(library, f"{prefix}_set_num_threads{suffix}", None)
                if getter is not None and setter is not None:
                    getter.restype = ctypes.c_int
                    setter.argtypes = [ctypes.c_int]
                    return BlasControls(path, getter, setter)
    return None


def blas_controls() -> BlasControls | None:
    """The loaded OpenBLAS's thread controls, or None when there is none to control."""
    global _controls, _searched
    if not _searched:
        import numpy  # noqa: F401  (OpenBLAS is mapped once NumPy is loaded)
        with _lock:
            if not _searched:
                _controls = _find_openblas()
                _searched = True
    return _controls


def get_blas_threads() -> int | None:
    """How many threads a BLAS call may use now (None: unknown, no OpenBLAS found)."""
    controls = blas_controls()
    return None if controls is None else controls.get()


def set_blas_threads(threads: int) -> int | None:
    """Let BLAS calls use ``threads`` threads; return the count it reports now (None: no OpenBLAS
    found, nothing changed)."""
    if int(threads) < 1:
        raise ValueError(f"set_blas_threads: threads must be >= 1, got {threads}")
    controls = blas_controls()
    if controls is None:
        return None
    controls.set(threads)
    return controls.get()
