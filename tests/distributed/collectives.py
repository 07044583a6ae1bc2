"""Run under ``mpiexec -n 2``: every collective on every dtype, then the bad-input lines.
Prints ``collectives: ok`` on rank 0 when every check passed (test_distributed.py reads it)."""
import numpy as np

import minires as mr
import minires.distributed as dist
from minires.distributed import ReduceOp

dist.init_process_group("gloo")          # PyTorch's CPU backend: the MPI one under mpiexec
rank, size = dist.get_rank(), dist.get_world_size()
assert size == 2 and dist.is_initialized() and dist.get_backend() == "gloo"

for device in ("cpu", "strict"):
    for dtype in (mr.float16, mr.float32, mr.float64, mr.int32, mr.int64):
        base = np.arange(6).reshape(2, 3)
        t = mr.tensor(base * (rank + 1), dtype=dtype, device=device)
        dist.all_reduce(t)
        np.testing.assert_array_equal(t.cpu().numpy(), base * 3)
        t = mr.tensor(base + rank, dtype=dtype, device=device)
        dist.all_reduce(t, op=ReduceOp.MAX)
        np.testing.assert_array_equal(t.cpu().numpy(), base + 1)
        t = mr.tensor(base + rank, dtype=dtype, device=device)
        dist.all_reduce(t, op=ReduceOp.MIN)
        np.testing.assert_array_equal(t.cpu().numpy(), base)
        t = mr.tensor(base + rank + 1, dtype=dtype, device=device)
        dist.all_reduce(t, op=ReduceOp.PRODUCT)
        np.testing.assert_array_equal(t.cpu().numpy(), (base + 1) * (base + 2))
        if dtype in (mr.float32, mr.float64):
            t = mr.tensor(base * (rank + 1), dtype=dtype, device=device)
            dist.all_reduce(t, op=ReduceOp.AVG)
            np.testing.assert_allclose(t.cpu().numpy(), base * 1.5)
        t = mr.tensor(base * (rank + 5), dtype=dtype, device=device)
        dist.broadcast(t, src=1)
        np.testing.assert_array_equal(t.cpu().numpy(), base * 6)
        parts = [mr.zeros(2, 3, dtype=dtype, device=device) for _ in range(size)]
        dist.all_gather(parts, mr.tensor(base + 10 * rank, dtype=dtype, device=device))
        for r in range(size):
            np.testing.assert_array_equal(parts[r].cpu().numpy(), base + 10 * r)
    flags = mr.tensor(np.array([rank == 0, False, True]), device=device)
    dist.all_reduce(flags)                        # bool: SUM is "any", as PyTorch
    np.testing.assert_array_equal(flags.cpu().numpy(), [True, False, True])

# a non-contiguous tensor (a channels-last view) is reduced in place too
x = mr.tensor(np.arange(24.0).reshape(2, 3, 4) * (rank + 1)).permute(0, 2, 1)
dist.all_reduce(x)
np.testing.assert_array_equal(x.numpy(), np.arange(24.0).reshape(2, 3, 4).transpose(0, 2, 1) * 3)

gathered = [None] * size
dist.all_gather_object(gathered, {"rank": rank, "name": "x" * (rank * 100)})
assert gathered == [{"rank": 0, "name": ""}, {"rank": 1, "name": "x" * 100}]
dist.barrier()

# ranks that disagree on a shape: one line on every rank, naming the op and each rank's shape
try:
    dist.all_reduce(mr.zeros(3 + rank))
except dist.DistributedError as error:
    message = str(error)
else:
    raise AssertionError("a shape mismatch went through")
assert "\n" not in message
assert "all_reduce" in message and "rank 0: all_reduce of (3,)" in message, message
assert "rank 1: all_reduce of (4,)" in message, message

# ranks that call different collectives: one line too
try:
    dist.barrier() if rank == 0 else dist.all_reduce(mr.zeros(2, dtype=mr.int64))
except dist.DistributedError as error:
    order = str(error)
else:
    raise AssertionError("different collectives went through")
assert "rank 0: barrier; rank 1: all_reduce of (2,) int64" in order, order

# after the refusal the group still works
t = mr.ones(2)
dist.all_reduce(t)
np.testing.assert_array_equal(t.numpy(), [2.0, 2.0])
dist.destroy_process_group()
assert not dist.is_initialized()
if rank == 0:
    print("shape mismatch:", message)
    print("collectives: ok")
