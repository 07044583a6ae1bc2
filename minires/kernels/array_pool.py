"""A caching allocator for the large host arrays a training step makes and drops every step.

Why: a training step builds the same large arrays every iteration (the outputs of every
convolution, batch norm and ReLU, megabytes each), uses them and drops them.
glibc's malloc serves arrays that large with a fresh ``mmap`` and unmaps them when they are
freed, so every step pays the kernel to zero fresh pages again (a page fault per 4 KiB). PyTorch
avoids this with a caching allocator; so does CuPy on the GPU. This module is minires's, for NumPy:
a freed block goes back to a free list and the next request of the same size gets it back, with
its pages already mapped. It changes nothing outside minires (no ``mallopt``): importing it, or
minires, sets no process-wide option.

How: a block is a ``bytearray``. :meth:`ArrayPool.empty` hands out an ndarray over a free
block's buffer and registers a ``weakref.finalize`` on that ndarray which puts the block back on
the free list. Every view of that ndarray (reshape, transpose, slicing) keeps the ndarray itself
alive: NumPy points a view's ``base`` at the first array up the chain that owns its memory or
whose base is not an array, and our ndarray's base is the bytearray. So the block returns only
when the last view of it is gone, and two live arrays never share a block (tests in
``tests/test_array_pool.py``). The block must not be an ndarray: NumPy would then point views
past our ndarray, straight at the block, and free it under them.

What it pools: only NumPy arrays of at least ``min_bytes`` (small ones glibc already recycles from
its heap), and only where a kernel asks for one through :func:`empty` or :func:`zeros`. Other
array modules (CuPy, which has its own pool, and the strict stand-in for a device) get ``xp.empty``
unchanged, so the same kernel code runs everywhere.

The price, as with PyTorch's caching allocator: freed blocks stay in the process, about as many
as a step holds at once (a request takes the smallest free block that fits it without wasting
more than half of it). :meth:`ArrayPool.empty_cache` hands them all
back (``minires.kernels.array_pool.POOL.empty_cache()``), and ``POOL.enabled = False`` turns the
pool off (every request then goes to ``xp.empty``).
"""
from __future__ import annotations

import math
import threading
import weakref

import numpy

__all__ = ["ArrayPool", "POOL", "empty", "empty_like", "zeros"]


class ArrayPool:
    """Free blocks of host memory, kept by size and handed out again for arrays that fit them."""

    def __init__(self, min_bytes: int = 1 << 20, granularity: int = 1 << 16):
        self.enabled = True
        self.min_bytes = min_bytes
        # sizes are rounded up to a multiple of ``granularity`` so that arrays of nearly the same
        # size (a last batch a few images shorter) share blocks
        self.granularity = granularity
        self._free: dict[int, list] = {}
        # re-entrant: the cyclic garbage collector may free a pooled array (and so run
        # _give_back) in the middle of ``empty``, on the same thread, while it holds the lock
        self._lock = threading.RLock()
        self.cached_bytes = 0        # in free blocks
        self.in_use_bytes = 0        # in blocks handed out and not yet returned
        self.hits = 0                # requests served from a free block
        self.misses = 0              # requests that allocated a new block

    def empty(self, shape, dtype) -> numpy.ndarray:
        """An uninitialised C-contiguous NumPy array of ``shape`` and ``dtype``."""
        dtype = numpy.dtype(dtype)
        shape = tuple(int(s) for s in shape)
        nbytes = math.prod(shape) * dtype.itemsize
        if not self.enabled or nbytes < self.min_bytes:
            return numpy.empty(shape, dtype)
        size = -(-nbytes // self.granularity) * self.granularity
        with self._lock:
            fit = self._best_fit(size)
            if fit is not None:
                size = fit
                block = self._free[size].pop()
                self.cached_bytes -= size
                self.hits += 1
            else:
                block = None
                self.misses += 1
            self.in_use_bytes += size
        if block is None:
            block = bytearray(size)
        array = numpy.ndarray(shape, dtype, buffer=block)    # the first nbytes of the block
        weakref.finalize(array, self._give_back, block, size)
        return array

    def _best_fit(self, size: int) -> int | None:
        """The smallest free block size that holds ``size`` bytes without wasting more than half
        of it (a step's arrays come in a few sizes; a larger free block serves a smaller request,
        as one malloc heap would, so the pool holds about what one step needs at once, not one
        block of every size it ever saw)."""
        sizes = [s for s, blocks in list(self._free.items()) if blocks and size <= s <= 2 * size]
        return min(sizes) if sizes else None

    def _give_back(self, block, size: int) -> None:
        with self._lock:
            self.in_use_bytes -= size
            if self.enabled:
                self._free.setdefault(size, []).append(block)
                self.cached_bytes += size

    def empty_cache(self) -> None:
        """Hand every free block back to malloc, as ``torch.cuda.empty_cache()`` does (blocks in
        use are not touched: they come back to the pool when their arrays are freed)."""
        with self._lock:
            self._free.clear()
            self.cached_bytes = 0


POOL = ArrayPool()


def empty(xp, shape, dtype):
    """``xp.empty(shape, dtype)``, from :data:`POOL` when ``xp`` is NumPy."""
    if xp is numpy:
        return POOL.empty(shape, dtype)
    return xp.empty(shape, dtype=dtype)


def zeros(xp, shape, dtype):
    """``xp.zeros(shape, dtype)``, from :data:`POOL` when ``xp`` is NumPy."""
    if xp is numpy:
        out = POOL.empty(shape, dtype)
        out.fill(0)
        return out
    return xp.zeros(shape, dtype=dtype)


def empty_like(xp, a):
    """``xp.empty_like(a)``: ``a``'s shape and dtype, and its memory order (an NCHW view of
    channels-last memory gets channels-last memory too), from :data:`POOL` when ``xp`` is NumPy."""
    if xp is not numpy:
        return xp.empty_like(a)
    outermost_first = sorted(range(a.ndim), key=lambda axis: -abs(a.strides[axis]))
    memory = POOL.empty([a.shape[axis] for axis in outermost_first], a.dtype)
    return memory.transpose(numpy.argsort(outermost_first))
