"""A CPU kernel's work split over the images of a batch: in blocks that fit the cache, on every core.

Why blocks. The images of a batch are independent in a convolution, so its work can be done a
block of images at a time. A block's patch matrix (a few hundred kilobytes) stays in the CPU's
cache between the copy that builds it and the matrix product that reads it, where the whole
batch's patch matrix (tens of megabytes, nine times the image) goes out to main memory and back,
twice. For the thin products of a CIFAR ResNet (16 to 64 output columns) that traffic, not the
arithmetic, is what the time was spent on; and the patch matrix never exists whole, so memory
drops too.

Why threads of our own. NumPy's copies and elementwise loops run on one core; OpenBLAS spreads a
product over all of them, but a block's product is too small to share well. So the blocks are
shared out among threads, one per core, each taking the next block as it gets free, and BLAS runs
single-threaded meanwhile (otherwise every thread's product would try to use every core). NumPy
releases the GIL during copies and products, so the threads really run at once.

The thread count follows PyTorch's ``torch.set_num_threads``/``get_num_threads``: by default as
many threads as OpenBLAS was started with (``OPENBLAS_NUM_THREADS``/``OMP_NUM_THREADS``, else
the cores), and :func:`set_num_threads` sets both. Only NumPy arrays are split: on CuPy (whose
products want the whole batch at once) and on the strict device the whole batch is one block,
worked in the calling thread, through the same code. Where no OpenBLAS is found, kernels run in
the calling thread, in blocks, and BLAS keeps its own threads. Nothing starts at import: the
threads are made on first use, and forgotten in a child made by ``fork`` (threads do not survive
it).
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy

from ..configuration import NUM_THREADS
from ..devices.backend import array_module
from ..devices.blas import blas_controls

__all__ = ["get_num_threads", "set_num_threads", "image_blocks", "map_blocks", "in_blocks",
           "add_in_order", "BLOCK_BYTES"]

# the target size of one block's largest array: well inside a core's L2 cache (usually 512 KiB
# to 2 MiB), and large enough that a block's product is still an efficient matrix product
BLOCK_BYTES = 512 * 1024

_state_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_in_worker = threading.local()          # set in the pool's threads: no nested splitting
_blas_region_depth = 0
_blas_threads_outside = 1
_fork_hook_registered = False


def get_num_threads() -> int:
    """How many threads the CPU kernels use (``torch.get_num_threads``): the count given to
    :func:`set_num_threads`, else as many as BLAS may use outside the kernels (read each time, so
    that a limit set on BLAS elsewhere, as ``mpiexec`` ranks do, holds here too)."""
    if NUM_THREADS.value is not None:
        return NUM_THREADS.value
    controls = blas_controls()
    if controls is None:
        return 1
    with _state_lock:
        return max(1, _blas_threads_outside if _blas_region_depth else controls.get())


def set_num_threads(threads: int) -> None:
    """Use ``threads`` threads in the CPU kernels and in BLAS (``torch.set_num_threads``)."""
    global _executor
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"set_num_threads: expected a whole number >= 1, got {threads!r}")
    controls = blas_controls()
    with _state_lock:
        NUM_THREADS.value = threads
        if _executor is not None:               # a pool of the old size: make a new one
            _executor.shutdown(wait=False)
            _executor = None
        if controls is not None and _blas_region_depth == 0:
            controls.set(threads)


def image_blocks(xp, start: int, stop: int, bytes_per_image: int):
    """``(lo, hi)`` image ranges covering ``start:stop``, each about ``BLOCK_BYTES`` (at least one
    image); on a device other than the CPU, the whole range at once."""
    if xp is not numpy:
        yield start, stop
        return
    per_block = max(1, BLOCK_BYTES // max(1, bytes_per_image))
    for lo in range(start, stop, per_block):
        yield lo, min(lo + per_block, stop)


def map_blocks(xp, n: int, bytes_per_image: int, work) -> list:
    """``[work(lo, hi, scratch) for (lo, hi) in image_blocks(xp, 0, n, bytes_per_image)]``, the
    blocks worked by the threads at once, each thread taking the next block as it gets free (a
    thread slowed by something else on its core then simply works fewer blocks). ``scratch`` is a
    dict private to the thread that runs the call, for buffers it reuses from block to block. The
    results come back in block order, whichever thread made them, so that a sum over them is the
    same from run to run."""
    if n == 0:
        return [work(0, 0, {})]
    blocks = list(image_blocks(xp, 0, n, bytes_per_image))
    threads = min(get_num_threads(), len(blocks)) if xp is numpy else 1
    if threads <= 1 or getattr(_in_worker, "active", False):
        scratch: dict = {}
        return [work(lo, hi, scratch) for lo, hi in blocks]
    results: list = [None] * len(blocks)
    next_block = iter(range(len(blocks)))          # next() on it is atomic under the GIL

    def worker():
        scratch: dict = {}
        _in_worker.active = True
        try:
            for index in next_block:
                results[index] = work(*blocks[index], scratch)
        finally:
            _in_worker.active = False

    with _single_threaded_blas():
        futures = [_pool(threads).submit(worker) for _ in range(threads)]
        for future in futures:
            future.result()
    return results


def in_blocks(array, work) -> list:
    """:func:`map_blocks` along the first axis of ``array``, for passes that need no scratch:
    ``[work(lo, hi) for each block]``, in block order."""
    n = array.shape[0]
    return map_blocks(array_module(array), n, array.nbytes // max(1, n),
                      lambda lo, hi, scratch: work(lo, hi))


def add_in_order(parts):
    """The sum of the blocks' partial results, always in block order: the same total whichever
    thread made which part."""
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


def _pool(threads: int) -> ThreadPoolExecutor:
    global _executor, _fork_hook_registered
    with _state_lock:
        if not _fork_hook_registered and hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_forget_pool_after_fork)
            _fork_hook_registered = True
        if _executor is None or _executor._max_workers < threads:
            if _executor is not None:
                _executor.shutdown(wait=False)
            _executor = ThreadPoolExecutor(threads, thread_name_prefix="minires-kernel")
        return _executor


@contextmanager
def _single_threaded_blas():
    """BLAS on one thread while the blocks run; restored when the last running split ends (splits
    from several user threads may overlap)."""
    global _blas_region_depth, _blas_threads_outside
    controls = blas_controls()
    if controls is None:
        yield
        return
    with _state_lock:
        if _blas_region_depth == 0:
            _blas_threads_outside = controls.get()
            controls.set(1)
        _blas_region_depth += 1
    try:
        yield
    finally:
        with _state_lock:
            _blas_region_depth -= 1
            if _blas_region_depth == 0:
                controls.set(_blas_threads_outside)


def _forget_pool_after_fork() -> None:
    global _executor, _blas_region_depth
    _executor = None             # its threads did not come along into the child
    _blas_region_depth = 0

