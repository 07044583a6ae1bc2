"""The ``"nccl"`` backend: collectives between GPUs through CuPy's NCCL bindings.

As ChainerMN's pure-NCCL communicator: rank 0 makes an NCCL unique id, MPI broadcasts it, and
every rank opens an ``NcclCommunicator`` with it on the GPU that ``LOCAL_RANK`` (or the MPI local
rank) picked. Collectives run on the current CuPy stream, in place on the tensors' device
arrays; MPI is kept for the small host-side exchanges (the shape check, objects).

This path needs a GPU and is not exercised by the CPU test suite.
"""
from __future__ import annotations

import time

from .errors import DistributedError, DistributedTimeoutError
from .mpi_backend import MPIBackend


class NCCLBackend:
    name = "nccl"

    def __init__(self, comm, timeout: float, local_rank: int):
        import cupy
        from cupy.cuda import nccl
        if not nccl.available:
            raise DistributedError("init_process_group(backend='nccl'): this CuPy has no NCCL; "
                                   "install a CuPy wheel with NCCL (cupy-cuda12x) or use 'mpi'")
        self.cupy, self.nccl = cupy, nccl
        self.host = MPIBackend(comm, timeout)          # shape checks and objects go over MPI
        self.rank, self.size, self.timeout = self.host.rank, self.host.size, float(timeout)
        cupy.cuda.Device(local_rank % cupy.cuda.runtime.getDeviceCount()).use()
        uid = nccl.get_unique_id() if self.rank == 0 else None
        uid = comm.bcast(uid, root=0)
        self.comm = nccl.NcclCommunicator(self.size, uid, self.rank)

    _DTYPES = {"float16": "NCCL_FLOAT16", "float32": "NCCL_FLOAT32", "float64": "NCCL_FLOAT64",
               "int32": "NCCL_INT32", "int64": "NCCL_INT64", "uint8": "NCCL_UINT8",
               "int8": "NCCL_INT8"}

    def _nccl_dtype(self, array):
        name = self._DTYPES.get(array.dtype.name)
        if name is None:
            raise DistributedError(f"nccl: dtype {array.dtype} has no NCCL type; convert the "
                                   f"tensor (.float()) first")
        return getattr(self.nccl, name)

    def _sync(self, what: str) -> None:
        stream = self.cupy.cuda.get_current_stream()
        deadline = time.monotonic() + self.timeout
        while not stream.done:
            if time.monotonic() > deadline:
                raise DistributedTimeoutError(
                    f"{what}: rank {self.rank} waited {self.timeout:g} s for the other GPUs' "
                    f"ranks; one of them died or hangs")
            time.sleep(1e-4)

    def all_reduce(self, array, nccl_op, what: str) -> None:
        stream = self.cupy.cuda.get_current_stream().ptr
        self.comm.allReduce(array.data.ptr, array.data.ptr, array.size, self._nccl_dtype(array),
                            nccl_op, stream)
        self._sync(what)

    def broadcast(self, array, src: int, what: str) -> None:
        stream = self.cupy.cuda.get_current_stream().ptr
        self.comm.bcast(array.data.ptr, array.size, self._nccl_dtype(array), src, stream)
        self._sync(what)

    def all_gather(self, out, array, what: str) -> None:
        stream = self.cupy.cuda.get_current_stream().ptr
        self.comm.allGather(array.data.ptr, out.data.ptr, array.size, self._nccl_dtype(array),
                            stream)
        self._sync(what)

    def allgather_small(self, row, what: str):
        return self.host.allgather_small(row, what)

    def barrier(self, what: str) -> None:
        self.host.barrier(what)

    def close(self) -> None:
        self.comm.destroy()
