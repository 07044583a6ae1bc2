"""How this process was launched: by an MPI launcher or by ``torchrun``-style variables, and how
many BLAS threads each rank should get.

Nothing here imports mpi4py or NumPy. OpenBLAS reads ``OPENBLAS_NUM_THREADS`` once, when NumPy
loads it, and the ``minires`` command has imported NumPy by the time it runs; so
:func:`limit_blas_threads` sets the count in the loaded library itself (OpenBLAS's own
``openblas_set_num_threads``, through :mod:`minires.devices.blas`; threadpoolctl for another BLAS
where it is installed).
"""
from __future__ import annotations

import os
import shutil

from .errors import INSTALL_HINT, MPIUnavailableError

# (rank variable, size variable, local-rank variable, local-size variable) as MPI launchers set
# them: MPICH/Hydra (PMI_*, MPI_LOCALRANKID), Open MPI, PMIx, Slurm's srun.
_LAUNCHER_VARIABLES = (
    ("PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS"),
    ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
     "OMPI_COMM_WORLD_LOCAL_SIZE"),
    ("PMIX_RANK", "PMIX_SIZE", "PMIX_LOCAL_RANK", "PMIX_LOCAL_SIZE"),
    ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_NTASKS_PER_NODE"),
)


def launched_by_mpi() -> bool:
    """Whether an MPI launcher (``mpiexec``, ``srun``) started this process."""
    return any(rank in os.environ and size in os.environ
               for rank, size, _, _ in _LAUNCHER_VARIABLES[:3]) or (
        "SLURM_PROCID" in os.environ and "PMI_FD" in os.environ)


def launched_ranks() -> tuple[int, int, int, int]:
    """``(rank, world size, local rank, ranks on this machine)`` as the launcher's variables say
    (``(0, 1, 0, 1)`` for a plain run); ``LOCAL_RANK``, where set, is the local rank (it picks
    the GPU). Read from the environment only: no MPI call."""
    for rank, size, local_rank, local_size in _LAUNCHER_VARIABLES:
        if rank in os.environ and size in os.environ:
            world = int(os.environ[size])
            local = int(os.environ.get("LOCAL_RANK",                # a launcher's choice first
                                       os.environ.get(local_rank, os.environ[rank])))
            local_n = os.environ.get(local_size, "")
            local_n = int(local_n.split("(")[0].split(",")[0]) if local_n[:1].isdigit() else world
            return int(os.environ[rank]), world, local, local_n
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        world = int(os.environ["WORLD_SIZE"])
        return (int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", 0)),
                int(os.environ.get("LOCAL_WORLD_SIZE", world)))
    return 0, 1, 0, 1


def blas_threads_per_rank() -> int:
    """The BLAS threads a rank gets by default: the machine's cores shared by its ranks."""
    _, _, _, local_size = launched_ranks()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // max(1, local_size))


def set_blas_threads_for_ranks() -> int | None:
    """Under an MPI launch with more than one rank on this machine, set the BLAS thread
    variables to cores / ranks unless the user set them; return the count set (None: untouched).
    Effective only before NumPy is imported (OpenBLAS reads them when it loads)."""
    _, world, _, local_size = launched_ranks()
    if world <= 1 or local_size <= 1:
        return None
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    if any(n in os.environ for n in names):
        return None
    threads = blas_threads_per_rank()
    for name in names:
        os.environ[name] = str(threads)
    return threads


def limit_blas_threads(threads: int) -> int | None:
    """Set the BLAS threads of the loaded library to ``threads``; return the count it now
    reports (None when no BLAS that can be set was found)."""
    from ..devices.blas import set_blas_threads     # here, not at the top: it loads NumPy
    found = set_blas_threads(threads)
    if found is not None:
        return found
    try:                                  # not OpenBLAS (MKL, Accelerate): threadpoolctl knows them
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    threadpool_limits(limits=int(threads), user_api="blas")
    return int(threads)


def mpiexec_command(num_processes: int, argv: list[str]) -> list[str]:
    """``[mpiexec, -n, N, *argv]``, or one clear line when no ``mpiexec`` is on the PATH."""
    mpiexec = shutil.which("mpiexec") or shutil.which("mpirun")
    if mpiexec is None:
        raise MPIUnavailableError(f"mpiexec not found on the PATH: {INSTALL_HINT}")
    return [mpiexec, "-n", str(int(num_processes)), *argv]
