"""Run under ``mpiexec -n 2``: DistributedDataParallel (and SyncBatchNorm) on each rank's half of
the batch takes the same steps as one process on the whole batch. Every rank trains its DDP
replica and, beside it, a plain copy on the global batch (the single-process reference), then
compares. Prints ``ddp: ok`` on rank 0 when every check passed."""
import numpy as np

import minires as mr
import minires.distributed as dist
import minires.nn as nn
import minires.nn.functional as F
from minires.nn.parallel import DistributedDataParallel as DDP

dist.init_process_group("mpi")
rank, size = dist.get_rank(), dist.get_world_size()
assert size == 2


def make_net(batch_norm: bool, dtype):
    mr.manual_seed(100 + rank)            # replicas start different: DDP's broadcast evens them
    layers = [nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6) if batch_norm else nn.Identity(),
              nn.ReLU(), nn.Conv2d(6, 8, 3, stride=2, padding=1),
              nn.BatchNorm2d(8) if batch_norm else nn.Identity(), nn.ReLU(),
              nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10)]
    return nn.Sequential(*layers).to(dtype)


def data(step, dtype, device):
    rng = np.random.default_rng([7, step])
    x = rng.standard_normal((16, 3, 8, 8)) * 2 + 0.5
    y = rng.integers(0, 10, 16)
    return mr.tensor(x, dtype=dtype, device=device), mr.tensor(y, device=device)


def compare(batch_norm: bool, dtype, tolerance: float, device="cpu", steps=4):
    net = make_net(batch_norm, dtype).to(device)
    if batch_norm:
        net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
    model = DDP(net)
    reference = make_net(batch_norm, dtype).to(device)
    reference.load_state_dict(model.module.state_dict())     # rank 0's weights, as DDP's
    opt = mr.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    ref_opt = mr.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    for step in range(steps):
        x, y = data(step, dtype, device)
        half = x.shape[0] // size
        opt.zero_grad()
        F.cross_entropy(model(x[rank * half:(rank + 1) * half]),
                        y[rank * half:(rank + 1) * half]).backward()
        opt.step()
        ref_opt.zero_grad()
        F.cross_entropy(reference(x), y).backward()
        ref_opt.step()
    mine, theirs = model.module.state_dict(), reference.state_dict()
    assert list(mine) == list(theirs)
    worst = 0.0
    for key in mine:
        a, b = mine[key].cpu().numpy(), theirs[key].cpu().numpy()
        worst = max(worst, float(np.abs(a.astype(np.float64) - b).max()))
    assert worst <= tolerance, (batch_norm, dtype, device, worst)
    # the replicas agree with each other exactly
    flat = np.concatenate([p.detach().cpu().numpy().ravel() for p in model.parameters()])
    both = [None] * size
    dist.all_gather_object(both, flat)
    np.testing.assert_array_equal(both[0], both[1])
    return worst


def sync_batchnorm_gradients(shape):
    """SyncBatchNorm on each rank's half against batch norm (its kernel is checked by finite
    differences) on the whole batch: outputs, input gradients, weight and bias gradients."""
    rng = np.random.default_rng(3)
    x_all = rng.standard_normal(shape) * 3 + 1
    upstream = rng.standard_normal(shape)
    half = shape[0] // size
    rows = slice(rank * half, (rank + 1) * half)
    mr.manual_seed(0)
    sync = nn.SyncBatchNorm(shape[1]).double()
    plain = nn.BatchNorm2d(shape[1]).double() if len(shape) == 4 else \
        nn.BatchNorm1d(shape[1]).double()
    for layer in (sync, plain):
        layer.weight.array[...] = rng.standard_normal(shape[1])
    plain.load_state_dict(sync.state_dict())
    x = mr.tensor(x_all[rows], requires_grad=True)
    y = sync(x)
    (y * mr.tensor(upstream[rows])).sum().backward()
    x_ref = mr.tensor(x_all, requires_grad=True)
    y_ref = plain(x_ref)
    (y_ref * mr.tensor(upstream)).sum().backward()
    np.testing.assert_allclose(y.numpy(), y_ref.numpy()[rows], rtol=0, atol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), x_ref.grad.numpy()[rows], rtol=0, atol=1e-12)
    for name in ("weight", "bias"):              # each rank's share sums to the whole batch's
        local = getattr(sync, name).grad
        dist.all_reduce(local)
        np.testing.assert_allclose(local.numpy(), getattr(plain, name).grad.numpy(), rtol=0,
                                   atol=1e-11)
    for name in ("running_mean", "running_var"):
        np.testing.assert_allclose(getattr(sync, name).numpy(), getattr(plain, name).numpy(),
                                   rtol=0, atol=1e-13)


sync_batchnorm_gradients((6, 3, 4, 5))
sync_batchnorm_gradients((8, 5))

report = {}
report["no batch norm, float64"] = compare(False, mr.float64, 1e-10)
report["no batch norm, float32"] = compare(False, mr.float32, 1e-5)
report["SyncBatchNorm, float64"] = compare(True, mr.float64, 1e-10)
report["SyncBatchNorm, float32"] = compare(True, mr.float32, 1e-5)
report["no batch norm, float64, strict"] = compare(False, mr.float64, 1e-10, device="strict",
                                                   steps=2)

# no_sync(): two local backward passes, then one averaged one, give the gradient of the sum
net = make_net(False, mr.float64)
model = DDP(net)
reference = make_net(False, mr.float64)
reference.load_state_dict(model.module.state_dict())
xs = [data(10 + k, mr.float64, "cpu") for k in range(3)]
with model.no_sync():
    for x, y in xs[:2]:
        F.cross_entropy(model(x[rank * 8:(rank + 1) * 8]), y[rank * 8:(rank + 1) * 8]).backward()
x, y = xs[2]
F.cross_entropy(model(x[rank * 8:(rank + 1) * 8]), y[rank * 8:(rank + 1) * 8]).backward()
for x, y in xs:
    F.cross_entropy(reference(x), y).backward()
for p, q in zip(model.parameters(), reference.parameters()):
    np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=0, atol=1e-12)

# a parameter that gets no gradient: one line at the next forward, naming it
class WithUnused(nn.Module):
    def __init__(self):
        super().__init__()
        self.net, self.unused = make_net(False, mr.float64), nn.Linear(2, 2).double()

    def forward(self, x):
        return self.net(x)


net = WithUnused()
model = DDP(net)
x, y = data(0, mr.float64, "cpu")
F.cross_entropy(model(x), y).backward()
try:
    model(x)
except dist.DistributedError as error:
    message = str(error)
else:
    raise AssertionError("an unused parameter went unnoticed")
assert "unused.weight" in message and "find_unused_parameters=True" in message, message
model = DDP(net, find_unused_parameters=True)
for _ in range(2):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
assert net.unused.weight.grad is not None and not net.unused.weight.grad.numpy().any()

if rank == 0:
    for name, worst in report.items():
        print(f"{name}: largest difference from one process {worst:.2e}")
    print("unused parameter:", message)
    print("ddp: ok")
