"""The errors of :mod:`minires.distributed`, each raised with one line saying what and how to fix.

They derive from :class:`minires.errors.MiniresError` (the ``minires`` command prints their line)
and from ``RuntimeError``, as PyTorch's process-group errors do.
"""
from __future__ import annotations

from ..errors import MiniresError


class DistributedError(MiniresError, RuntimeError):
    """A process group used wrongly: no group yet, ranks that disagree, a bad launch."""


class DistributedTimeoutError(DistributedError, TimeoutError):
    """A collective waited longer than the group's ``timeout``: another rank died or hangs."""


class MPIUnavailableError(DistributedError, ImportError):
    """mpi4py (or an MPI library under it, or ``mpiexec``) is not installed."""


INSTALL_HINT = "pip install -e '.[distributed]' (brings mpi4py and the mpich wheel's mpiexec)"
