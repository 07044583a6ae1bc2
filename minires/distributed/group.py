"""The default process group and its collectives, with PyTorch's names and meanings.

``init_process_group`` joins the ranks that an MPI launcher (``mpiexec``, ``srun``) started;
``all_reduce``, ``broadcast``, ``all_gather`` and ``barrier`` then run across them. Each
collective first exchanges a small row per rank (which collective, the tensor's shape and dtype)
so that ranks that disagree get one line naming the op, the shapes per rank and the fix, instead
of a crash in MPI or silently mixed data. Every wait has a deadline (``timeout``).
"""
from __future__ import annotations

import datetime
import enum
import os

import numpy

from ..devices import backend
from ..devices.strict import StrictArray
from .errors import INSTALL_HINT, DistributedError, MPIUnavailableError
from .launch import launched_by_mpi, launched_ranks

__all__ = ["ReduceOp", "init_process_group", "destroy_process_group", "is_initialized",
           "is_available", "is_mpi_available", "is_nccl_available", "get_rank",
           "get_world_size", "get_backend", "all_reduce", "broadcast", "all_gather", "barrier",
           "all_gather_object", "broadcast_object_list", "default_pg_timeout"]

default_pg_timeout = datetime.timedelta(minutes=30)     # PyTorch's default


class ReduceOp(enum.Enum):
    """How ``all_reduce`` combines the ranks' tensors (PyTorch's ``ReduceOp``); ``AVG`` is the
    sum divided by the world size (floating-point tensors only)."""
    SUM = 0
    AVG = 1
    PRODUCT = 2
    MIN = 3
    MAX = 4
    BAND = 5
    BOR = 6
    BXOR = 7


class _Group:
    def __init__(self, backend_impl, name: str, comm):
        self.impl, self.name, self.comm = backend_impl, name, comm
        self.rank, self.size = backend_impl.rank, backend_impl.size


_group: _Group | None = None


# --- availability and set-up ---

def is_available() -> bool:
    """Whether distributed runs can work here: mpi4py is installed (not imported)."""
    import importlib.util
    return importlib.util.find_spec("mpi4py") is not None


is_mpi_available = is_available


def is_nccl_available() -> bool:
    try:
        from cupy.cuda import nccl
    except Exception:
        return False
    return bool(getattr(nccl, "available", False))


def _import_mpi(what: str):
    try:
        import mpi4py
        mpi4py.rc.thread_level = "single"
        from mpi4py import MPI
    except ImportError as error:
        raise MPIUnavailableError(f"{what}: mpi4py or its MPI library is missing ({error}); "
                                  f"{INSTALL_HINT}") from None
    return MPI


def _seconds(timeout) -> float:
    if isinstance(timeout, datetime.timedelta):
        return timeout.total_seconds()
    return float(timeout)


def init_process_group(backend: str | None = None, init_method: str | None = None,
                       timeout=default_pg_timeout, world_size: int | None = None,
                       rank: int | None = None, store=None, group_name: str = "",
                       pg_options=None, device_id=None) -> None:
    """Join the default process group.

    ``backend``: ``"mpi"`` (CPU and strict tensors, over mpi4py), ``"nccl"`` (CUDA tensors,
    CuPy's NCCL), ``"gloo"`` (PyTorch's CPU backend: here the MPI one, when an MPI launcher
    started the program), or None (``"nccl"`` when the default device is CUDA, else ``"mpi"``).
    The ranks are MPI's; ``rank``/``world_size`` (or ``RANK``/``WORLD_SIZE``), when given, must
    agree with them. ``init_method`` and ``store`` are accepted and unused: MPI does the
    rendezvous. ``timeout`` bounds every wait (a ``timedelta`` or seconds)."""
    global _group
    if _group is not None:
        raise DistributedError("init_process_group: the default process group is already "
                               "initialised; call destroy_process_group() first")
    if backend is None:
        backend = "nccl" if backend_default_is_cuda() else "mpi"
    name = str(backend).lower()
    if name not in ("mpi", "gloo", "nccl"):
        raise DistributedError(f"init_process_group: unknown backend {backend!r}; minires has "
                               f"'mpi' (CPU), 'nccl' (GPU) and 'gloo' (run as 'mpi')")
    env_rank, env_size, local_rank, _ = launched_ranks()
    asked_size = world_size if world_size is not None else (
        env_size if "WORLD_SIZE" in os.environ or launched_by_mpi() else None)
    if not launched_by_mpi() and asked_size is not None and int(asked_size) > 1:
        raise DistributedError(
            f"init_process_group(backend={backend!r}): world_size is {asked_size} but no MPI "
            f"launcher started this process; minires forms the group over MPI: launch it as "
            f"`mpiexec -n {asked_size} python program.py` ({INSTALL_HINT})")
    if name == "gloo" and not launched_by_mpi() and asked_size is None:
        raise DistributedError(
            "init_process_group(backend='gloo'): minires runs 'gloo' over MPI, and no MPI "
            "launcher started this process; launch it as `mpiexec -n N python program.py` "
            f"({INSTALL_HINT})")
    MPI = _import_mpi("init_process_group")
    comm = MPI.COMM_WORLD
    mpi_rank, mpi_size = comm.Get_rank(), comm.Get_size()
    for what, given, actual in (("rank", rank, mpi_rank), ("world_size", world_size, mpi_size)):
        if given is not None and int(given) != actual:
            raise DistributedError(f"init_process_group: {what}={given} but MPI says {actual}; "
                                   f"leave {what} unset (MPI's launcher decides it)")
    if "RANK" in os.environ and launched_by_mpi() and int(os.environ["RANK"]) != mpi_rank:
        raise DistributedError(f"init_process_group: RANK={os.environ['RANK']} but MPI says "
                               f"{mpi_rank}; unset RANK/WORLD_SIZE under mpiexec")
    seconds = _seconds(timeout)
    if name == "nccl":
        from .nccl_backend import NCCLBackend
        impl = NCCLBackend(comm, seconds, local_rank)
    else:
        from .mpi_backend import MPIBackend
        impl = MPIBackend(comm, seconds)
    _group = _Group(impl, name, comm)


def backend_default_is_cuda() -> bool:
    return backend.default_device().type == "cuda"


def destroy_process_group(group=None) -> None:
    """Leave the default process group (MPI itself is finalised when the process exits)."""
    global _group
    if _group is not None:
        _group.impl.close()
    _group = None


def is_initialized() -> bool:
    return _group is not None


def _the_group(what: str) -> _Group:
    if _group is None:
        raise DistributedError(f"{what}: the default process group is not initialised; call "
                               f"minires.distributed.init_process_group(backend='mpi') first "
                               f"(and launch with `mpiexec -n N ...`)")
    return _group


def get_rank(group=None) -> int:
    return _the_group("get_rank").rank


def get_world_size(group=None) -> int:
    return _the_group("get_world_size").size


def get_backend(group=None) -> str:
    return _the_group("get_backend").name


# --- the rank agreement check ---

_OPS = ("all_reduce", "broadcast", "all_gather", "barrier", "all_gather_object")
_DTYPES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool")
_MAX_DIMS = 8


def _describe(row) -> str:
    ndim = int(row[4])
    if ndim < 0:                                  # a collective without a tensor
        return _OPS[row[0]]
    dims = tuple(int(d) for d in row[5:5 + ndim])
    return f"{_OPS[row[0]]} of {dims} {_DTYPES[row[3]] if row[3] >= 0 else '?'}"


def _agree(group: _Group, what: str, op: str, array=None, reduce_op: int = -1,
           src: int = -1) -> None:
    """Exchange (collective, op, src, dtype, shape) between the ranks; one line if they differ."""
    row = numpy.full(5 + _MAX_DIMS, -1, dtype=numpy.int64)
    row[0], row[1], row[2] = _OPS.index(op), reduce_op, src
    if array is not None:
        if array.ndim > _MAX_DIMS:
            raise DistributedError(f"{what}: tensors of more than {_MAX_DIMS} dims are not "
                                   f"supported; reshape it first")
        row[3] = _DTYPES.index(array.dtype.name) if array.dtype.name in _DTYPES else -1
        row[4] = array.ndim
        row[5:5 + array.ndim] = array.shape
    table = group.impl.allgather_small(row, what)
    if (table == table[0]).all():
        return
    per_rank = "; ".join(f"rank {r}: {_describe(t)}" + (f" src={t[2]}" if t[2] >= 0 else "")
                         for r, t in enumerate(table))
    raise DistributedError(f"{what}: the ranks disagree ({per_rank}); every rank must call the "
                           f"same collectives in the same order on tensors of one shape and dtype")


# --- host buffers ---

def _array_of(tensor, what: str):
    from ..autograd import Tensor
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{what}: expected a minires Tensor, got {type(tensor).__name__}")
    return tensor.array


class _HostBuffer:
    """A contiguous writable host array for a tensor's array, written back on ``commit``."""

    def __init__(self, array):
        self.array = array
        if isinstance(array, numpy.ndarray):
            host = array
        elif isinstance(array, StrictArray):
            host = array._a           # the strict device's memory: the backend is its transfer
        else:
            host = backend.to_host(array)
        self.direct = isinstance(array, (numpy.ndarray, StrictArray)) and \
            host.flags.c_contiguous and host.flags.writeable
        self.host = host if self.direct else numpy.ascontiguousarray(host)

    def commit(self) -> None:
        if self.direct:
            return
        if isinstance(self.array, numpy.ndarray):
            self.array[...] = self.host
        elif isinstance(self.array, StrictArray):
            self.array._a[...] = self.host
        else:                          # a device array reduced on the host (mpi on cuda)
            self.array[...] = backend.array_module(self.array).asarray(self.host)


def _on_gpu(group: _Group) -> bool:
    return group.name == "nccl"


def _contiguous_gpu(array):
    """NCCL reads and writes flat memory: a strided view is worked on as a contiguous copy."""
    return array if array.flags.c_contiguous else array.copy(order="C")


def _mpi_op(op: ReduceOp, dtype, what: str):
    from mpi4py import MPI
    if op in (ReduceOp.BAND, ReduceOp.BOR, ReduceOp.BXOR) and dtype.kind not in "iub":
        raise DistributedError(f"{what}: {op.name} needs an integer or bool tensor, got {dtype}")
    if op is ReduceOp.AVG and dtype.kind != "f":
        raise DistributedError(f"{what}: ReduceOp.AVG needs a floating-point tensor, got "
                               f"{dtype}; reduce with SUM and divide")
    if dtype.kind == "b":
        return {ReduceOp.SUM: MPI.LOR, ReduceOp.MAX: MPI.LOR, ReduceOp.BOR: MPI.LOR,
                ReduceOp.PRODUCT: MPI.LAND, ReduceOp.MIN: MPI.LAND, ReduceOp.BAND: MPI.LAND,
                ReduceOp.BXOR: MPI.LXOR}[op]
    return {ReduceOp.SUM: MPI.SUM, ReduceOp.AVG: MPI.SUM, ReduceOp.PRODUCT: MPI.PROD,
            ReduceOp.MIN: MPI.MIN, ReduceOp.MAX: MPI.MAX, ReduceOp.BAND: MPI.BAND,
            ReduceOp.BOR: MPI.BOR, ReduceOp.BXOR: MPI.BXOR}[op]


def _nccl_op(op: ReduceOp, what: str):
    from cupy.cuda import nccl
    table = {ReduceOp.SUM: nccl.NCCL_SUM, ReduceOp.AVG: nccl.NCCL_SUM,
             ReduceOp.PRODUCT: nccl.NCCL_PROD, ReduceOp.MIN: nccl.NCCL_MIN,
             ReduceOp.MAX: nccl.NCCL_MAX}
    if op not in table:
        raise DistributedError(f"{what}: ReduceOp.{op.name} is not supported by nccl")
    return table[op]


def _reducible(host: numpy.ndarray) -> tuple[numpy.ndarray, bool]:
    """MPI has no half type: a float16 buffer is reduced as float32 (and converted back)."""
    if host.dtype == numpy.float16:
        return host.astype(numpy.float32), True
    return host, False


# --- the collectives ---

def all_reduce(tensor, op: ReduceOp = ReduceOp.SUM, group=None, async_op: bool = False):
    """Combine ``tensor`` across the ranks with ``op``; every rank's tensor then holds the result
    (in place, as PyTorch)."""
    what = "all_reduce"
    g = _the_group(what)
    array = _array_of(tensor, what)
    if not isinstance(op, ReduceOp):
        raise DistributedError(f"{what}: op must be a ReduceOp (e.g. ReduceOp.SUM), got {op!r}")
    _agree(g, what, "all_reduce", array, reduce_op=op.value)
    if _on_gpu(g):
        work = _contiguous_gpu(array)
        g.impl.all_reduce(work, _nccl_op(op, what), what)
        if op is ReduceOp.AVG:
            work /= g.size
        if work is not array:
            array[...] = work
        return None
    buffer = _HostBuffer(array)
    mpi_op = _mpi_op(op, buffer.host.dtype, what)
    work, converted = _reducible(buffer.host)
    g.impl.all_reduce(work, mpi_op, what)
    if op is ReduceOp.AVG:
        work /= g.size
    if converted:
        buffer.host[...] = work
    buffer.commit()
    return None


def broadcast(tensor, src: int, group=None, async_op: bool = False):
    """Copy rank ``src``'s ``tensor`` into every rank's ``tensor`` (in place)."""
    what = "broadcast"
    g = _the_group(what)
    if not 0 <= int(src) < g.size:
        raise DistributedError(f"{what}: src={src} is not a rank of this group of {g.size}")
    array = _array_of(tensor, what)
    _agree(g, what, "broadcast", array, src=int(src))
    if _on_gpu(g):
        work = _contiguous_gpu(array)
        g.impl.broadcast(work, int(src), what)
        if work is not array:
            array[...] = work
        return None
    buffer = _HostBuffer(array)
    g.impl.broadcast(buffer.host, int(src), what)
    buffer.commit()
    return None


def all_gather(tensor_list: list, tensor, group=None, async_op: bool = False):
    """Every rank's ``tensor`` into ``tensor_list[rank]``, on every rank (as PyTorch: the list
    holds ``world_size`` tensors of ``tensor``'s shape and dtype, written in place)."""
    what = "all_gather"
    g = _the_group(what)
    array = _array_of(tensor, what)
    if len(tensor_list) != g.size:
        raise DistributedError(f"{what}: tensor_list has {len(tensor_list)} tensors, the group "
                               f"{g.size} ranks; give one tensor per rank")
    for i, t in enumerate(tensor_list):
        out = _array_of(t, what)
        if tuple(out.shape) != tuple(array.shape) or out.dtype != array.dtype:
            raise DistributedError(f"{what}: tensor_list[{i}] is {tuple(out.shape)} {out.dtype} "
                                   f"but the tensor is {tuple(array.shape)} {array.dtype}; give "
                                   f"tensors of the input's shape and dtype")
    _agree(g, what, "all_gather", array)
    if _on_gpu(g):
        xp = backend.array_module(array)
        stacked = xp.empty((g.size,) + tuple(array.shape), dtype=array.dtype)
        g.impl.all_gather(stacked, xp.ascontiguousarray(array), what)
        for t, part in zip(tensor_list, stacked):
            t.array[...] = part
        return None
    source = _HostBuffer(array).host
    stacked = numpy.empty((g.size,) + source.shape, dtype=source.dtype)
    g.impl.all_gather(stacked, source, what)
    for t, part in zip(tensor_list, stacked):
        out = _HostBuffer(t.array)
        out.host[...] = part
        out.commit()
    return None


def barrier(group=None, async_op: bool = False, device_ids=None):
    """Wait until every rank reaches the barrier (or the timeout passes)."""
    g = _the_group("barrier")
    _agree(g, "barrier", "barrier")
    g.impl.barrier("barrier")


def all_gather_object(object_list: list, obj, group=None) -> None:
    """Every rank's picklable ``obj`` into ``object_list[rank]`` (PyTorch's name)."""
    what = "all_gather_object"
    g = _the_group(what)
    if len(object_list) != g.size:
        raise DistributedError(f"{what}: object_list has {len(object_list)} slots, the group "
                               f"{g.size} ranks; give [None] * world_size")
    import pickle
    _agree(g, what, "all_gather_object")
    payload = numpy.frombuffer(pickle.dumps(obj), dtype=numpy.uint8)
    sizes = g.impl.host.allgather_small(numpy.asarray([payload.size], dtype=numpy.int64),
                                        what)[:, 0]
    stacked = numpy.zeros((g.size, int(sizes.max())), dtype=numpy.uint8)
    padded = numpy.zeros(int(sizes.max()), dtype=numpy.uint8)
    padded[:payload.size] = payload
    g.impl.host.all_gather(stacked, padded, what)
    for r in range(g.size):
        object_list[r] = pickle.loads(stacked[r, :sizes[r]].tobytes())


def broadcast_object_list(object_list: list, src: int = 0, group=None, device=None) -> None:
    """Rank ``src``'s picklable objects into every rank's ``object_list`` (in place)."""
    g = _the_group("broadcast_object_list")
    gathered: list = [None] * g.size
    all_gather_object(gathered, list(object_list) if g.rank == src else None)
    object_list[:] = gathered[int(src)]
