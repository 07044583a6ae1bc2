"""``minires.distributed``: a process group over MPI (CPU) or NCCL (GPU), with PyTorch's names.

``import minires.distributed as dist`` then ``dist.init_process_group("mpi")``, ``dist.get_rank()``,
``dist.all_reduce(t)`` ... as ``torch.distributed``. The processes are started by an MPI launcher
(``mpiexec -n 2 python program.py``, ``srun -n 8 ...``); minires has no rendezvous of its own.
Nothing is imported from mpi4py (or CuPy) until a group is made.

* :mod:`.group`: the default process group and its collectives;
* :mod:`.mpi_backend`, :mod:`.nccl_backend`: the two transports;
* :mod:`.launch`: how the process was started (rank variables, BLAS threads per rank);
* :mod:`.errors`: the one-line errors.
"""
from .errors import DistributedError, DistributedTimeoutError, MPIUnavailableError  # noqa: F401
from .group import *  # noqa: F401,F403
from .group import __all__ as _group_names
from .launch import launched_by_mpi  # noqa: F401

__all__ = list(_group_names) + ["DistributedError", "DistributedTimeoutError",
                                "MPIUnavailableError", "launched_by_mpi"]
