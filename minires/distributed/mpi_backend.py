"""The ``"mpi"`` backend: collectives through mpi4py on host (NumPy) buffers.

A ``cpu`` tensor's array is the buffer itself (``Allreduce`` in place, no copy); a ``strict``
tensor's host array is reached the way the strict device's own transfers reach it; a ``cuda``
tensor is copied to the host and back (use the ``"nccl"`` backend for GPUs).

Every wait is a non-blocking request polled against a deadline, so a rank that died or hangs
makes the others raise :class:`DistributedTimeoutError` after ``timeout`` seconds instead of
waiting forever. A collective that timed out cannot be taken back, so the process then ends the
whole job (``MPI_Abort``) when it exits, rather than hang in ``MPI_Finalize``.
"""
from __future__ import annotations

import atexit
import time

import numpy

from .errors import DistributedTimeoutError

_aborting = False


def _abort_at_exit(comm) -> None:
    if _aborting:
        comm.Abort(1)


class MPIBackend:
    name = "mpi"

    def __init__(self, comm, timeout: float):
        self.comm = comm
        self.timeout = float(timeout)
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.host = self                  # where host-side exchanges (objects) go
        # registered after mpi4py's own exit handler, so it runs first (atexit is LIFO)
        atexit.register(_abort_at_exit, comm)

    # --- waiting with a deadline ---
    def wait(self, request, what: str) -> None:
        """Poll ``request`` until it completes or ``self.timeout`` seconds pass."""
        start = time.monotonic()
        deadline = start + self.timeout
        pause = 0.0
        while not request.Test():
            now = time.monotonic()
            if now > deadline:
                global _aborting
                _aborting = True
                raise DistributedTimeoutError(
                    f"{what}: rank {self.rank} waited {self.timeout:g} s for the other ranks; one "
                    f"of them died or hangs (its own error, above, says why); the job is aborted "
                    f"(a longer timeout: init_process_group(..., timeout=timedelta(...)))")
            time.sleep(pause)
            # spin briefly, then yield the core; after a second (a rank still training its
            # net, say), check 20 times a second
            pause = min(1e-3, pause + 1e-5) if now - start < 1.0 else 0.05

    # --- collectives on host arrays (contiguous, writable) ---
    def allgather_small(self, row: numpy.ndarray, what: str) -> numpy.ndarray:
        table = numpy.empty((self.size, row.size), dtype=row.dtype)
        self.wait(self.comm.Iallgather(row, table), what)
        return table

    def all_reduce(self, array: numpy.ndarray, mpi_op, what: str) -> None:
        from mpi4py import MPI
        self.wait(self.comm.Iallreduce(MPI.IN_PLACE, array, op=mpi_op), what)

    def broadcast(self, array: numpy.ndarray, src: int, what: str) -> None:
        self.wait(self.comm.Ibcast(array, root=src), what)

    def all_gather(self, out: numpy.ndarray, array: numpy.ndarray, what: str) -> None:
        self.wait(self.comm.Iallgather(array, out), what)

    def barrier(self, what: str) -> None:
        self.wait(self.comm.Ibarrier(), what)

    def close(self) -> None:
        pass
