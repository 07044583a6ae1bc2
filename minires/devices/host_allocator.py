"""Tuning glibc's allocator for training: an explicit call, never made at import.

A training step allocates and frees the same large host arrays (activations, im2col patches)
every iteration. With glibc's defaults, arrays above a threshold are mmap-ed and unmapped each
time, and a large free block at the top of the heap is handed back to the operating system, so
every step pays page faults to zero fresh memory again (measured in ``docs/benchmarks.md``).
:func:`tune_host_allocator` keeps that memory for reuse, as PyTorch's caching allocator does.

It changes a setting of the whole process (a notebook that also runs PyTorch inherits it), which
is why ``import minires`` never makes it: the ``minires`` command and :func:`minires.train.fit`
call it, the benchmarks call it, and any other code may. ``MINIRES_TUNE_MALLOC=0`` turns it off.
"""
from __future__ import annotations

from .. import configuration

__all__ = ["tune_host_allocator", "host_allocator_tuned"]

# mallopt(3) parameter numbers, from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_MAX = -4

_TOP_PAD_BYTES = 64 * 1024 * 1024

_tuned = False


def tune_host_allocator() -> bool:
    """Keep freed host memory for reuse instead of returning it to the operating system.

    Three ``mallopt`` settings (see ``man mallopt``):

    - ``M_MMAP_MAX = 0``: no array is mmap-ed, however large (the im2col patches of a CIFAR
      batch are 75 MB, above the largest mmap threshold glibc allows, 32 MiB), so every array
      comes from the heap, where a freed block can be reused by the next step;
    - ``M_TRIM_THRESHOLD = -1``: the heap is never trimmed, so that freed memory stays mapped;
    - ``M_TOP_PAD = 64 MiB``: when the heap must grow, ask the OS for 64 MiB more than needed
      (glibc's default is 128 KiB), so that the heap reaches a training step's peak in a few
      large steps rather than one system call per large array.

    The price: the process keeps its peak memory until it exits. glibc on Linux only; a no-op
    elsewhere and when the environment variable ``MINIRES_TUNE_MALLOC`` is ``0`` (or ``false``,
    ``no``, ``off``). Calling it again does no harm. Returns whether the settings were applied.
    """
    global _tuned
    if not configuration.env("MINIRES_TUNE_MALLOC"):
        return False
    try:
        import ctypes
        import ctypes.util
        import platform
        if platform.system() != "Linux" or not platform.libc_ver()[0] == "glibc":
            return False
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(_M_MMAP_MAX, 0)
        ok &= libc.mallopt(_M_TRIM_THRESHOLD, -1)          # -1: never trim
        ok &= libc.mallopt(_M_TOP_PAD, _TOP_PAD_BYTES)
    except Exception:
        return False
    _tuned = _tuned or bool(ok)
    return bool(ok)


def host_allocator_tuned() -> bool:
    """Whether :func:`tune_host_allocator` has applied its settings in this process."""
    return _tuned
