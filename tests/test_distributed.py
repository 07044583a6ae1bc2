"""minires.distributed, DistributedDataParallel, SyncBatchNorm and DistributedSampler.

The multi-process checks run small scripts (tests/distributed/*.py) under ``mpiexec -n 2``
on the loopback, each asserting its own results and printing a last line that is checked here
(marked ``mpi``; skipped when mpi4py or mpiexec is missing). The rest runs in this process.
"""
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minires as mr
import minires.distributed as dist
import minires.nn as nn
import minires.nn.functional as F
from minires.distributed import launch
from minires.utils.data import DataLoader, TensorDataset
from minires.utils.data.distributed import DistributedSampler

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = Path(__file__).resolve().parent / "distributed"
HAVE_MPI = importlib.util.find_spec("mpi4py") is not None and shutil.which("mpiexec") is not None
needs_mpi = pytest.mark.skipif(not HAVE_MPI, reason="mpi4py or mpiexec not installed "
                               "(pip install -e '.[distributed]')")

_LAUNCH_VARIABLES = ("PMI_RANK", "PMI_SIZE", "PMI_FD", "OMPI_COMM_WORLD_RANK", "PMIX_RANK",
                     "SLURM_PROCID", "RANK", "WORLD_SIZE", "LOCAL_RANK", "MPI_LOCALNRANKS",
                     "MPI_LOCALRANKID")


def run_under_mpiexec(*argv, timeout=240, one_thread=False):
    """Run ``argv`` under ``mpiexec -n 2`` with this worktree first on the path (and one BLAS
    thread per rank when ``one_thread``, whatever the machine's cores)."""
    env = {k: v for k, v in os.environ.items() if k not in _LAUNCH_VARIABLES}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.setdefault("MINIRES_DEVICE", "cpu")
    if one_thread:
        env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    command = launch.mpiexec_command(2, list(argv))
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=ROOT)


@pytest.fixture
def no_launcher(monkeypatch):
    for name in _LAUNCH_VARIABLES:
        monkeypatch.delenv(name, raising=False)


# --- under mpiexec ---

@pytest.mark.mpi
@needs_mpi
def test_collectives_on_every_dtype_and_a_shape_mismatch_under_two_ranks():
    done = run_under_mpiexec(sys.executable, str(SCRIPTS / "collectives.py"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1] == "collectives: ok"
    line = next(s for s in done.stdout.splitlines() if s.startswith("shape mismatch:"))
    assert "rank 0: all_reduce of (3,) float32" in line and "rank 1: all_reduce of (4,)" in line


@pytest.mark.mpi
@needs_mpi
def test_ddp_and_sync_batchnorm_take_the_steps_of_one_process_on_the_whole_batch():
    done = run_under_mpiexec(sys.executable, str(SCRIPTS / "ddp.py"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1] == "ddp: ok"


@pytest.mark.mpi
@needs_mpi
@pytest.mark.parametrize("mode", ["hang", "die"])
def test_a_rank_that_hangs_or_dies_ends_the_job_instead_of_hanging_it(mode):
    done = run_under_mpiexec(sys.executable, str(SCRIPTS / "timeout.py"), mode, timeout=120)
    assert done.returncode != 0
    if mode == "hang":
        line = next(s for s in done.stdout.splitlines() if s.startswith("timeout:"))
        assert "all_reduce: rank 0 waited 2 s" in line and "died or hangs" in line


# --- in this process ---

def test_nothing_is_imported_from_mpi_at_import():
    code = ("import sys, minires, minires.distributed, minires.nn, minires.utils.data; "
            "print('mpi4py' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    assert out.stdout.strip() == "False", out.stderr


def test_a_collective_before_init_process_group_is_one_line():
    assert not dist.is_initialized()
    for call in (lambda: dist.all_reduce(mr.ones(2)), lambda: dist.broadcast(mr.ones(2), 0),
                 lambda: dist.barrier(), lambda: dist.get_rank()):
        with pytest.raises(dist.DistributedError, match="not initialised; call minires.distri"):
            call()
    with pytest.raises(dist.DistributedError, match="init_process_group"):
        nn.parallel.DistributedDataParallel(nn.Linear(2, 2))


def test_gloo_or_several_ranks_without_an_mpi_launcher_say_how_to_launch(no_launcher):
    with pytest.raises(dist.DistributedError, match=r"mpiexec -n N python program.py"):
        dist.init_process_group("gloo")
    with pytest.raises(dist.DistributedError, match=r"`mpiexec -n 4 python program.py`"):
        dist.init_process_group("mpi", world_size=4, rank=0)
    with pytest.raises(dist.DistributedError, match="unknown backend 'tcp'"):
        dist.init_process_group("tcp")
    assert not dist.is_initialized()


def test_mpiexec_or_mpi4py_missing_is_one_line(monkeypatch, no_launcher):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(dist.MPIUnavailableError, match=r"mpiexec not found.*\.\[distributed\]"):
        launch.mpiexec_command(2, ["python"])
    monkeypatch.setitem(sys.modules, "mpi4py", None)          # as if not installed
    with pytest.raises(dist.MPIUnavailableError, match=r"mpi4py.*\.\[distributed\]"):
        dist.init_process_group("mpi")
    assert not dist.is_initialized()


def test_a_group_of_one_process_works_without_a_launcher(no_launcher):
    pytest.importorskip("mpi4py")
    dist.init_process_group("mpi")
    try:
        assert (dist.get_rank(), dist.get_world_size()) == (0, 1)
        t = mr.tensor([1.0, 2.0])
        dist.all_reduce(t, op=dist.ReduceOp.AVG)
        np.testing.assert_array_equal(t.numpy(), [1.0, 2.0])
        with pytest.raises(dist.DistributedError, match="already initialised"):
            dist.init_process_group("mpi")
    finally:
        dist.destroy_process_group()


def test_launch_variables_give_rank_size_and_blas_threads(monkeypatch, no_launcher):
    assert launch.launched_ranks() == (0, 1, 0, 1) and not launch.launched_by_mpi()
    monkeypatch.setenv("PMI_RANK", "1")
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setenv("MPI_LOCALRANKID", "1")
    monkeypatch.setenv("MPI_LOCALNRANKS", "2")
    assert launch.launched_by_mpi() and launch.launched_ranks() == (1, 2, 1, 2)
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert launch.launched_ranks() == (1, 2, 0, 2)           # LOCAL_RANK picks the GPU
    monkeypatch.delenv("LOCAL_RANK")
    monkeypatch.setattr(launch.os, "sched_getaffinity", lambda pid: set(range(8)),
                        raising=False)
    assert launch.blas_threads_per_rank() == 4
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    assert launch.set_blas_threads_for_ranks() == 4 and os.environ["OPENBLAS_NUM_THREADS"] == "4"
    assert launch.set_blas_threads_for_ranks() is None       # set already: left alone


def test_blas_threads_are_set_in_the_loaded_library():
    found = launch.limit_blas_threads(1)
    try:
        assert found in (1, None)              # None: no OpenBLAS in this NumPy to set
    finally:
        launch.limit_blas_threads(int(os.environ.get("OPENBLAS_NUM_THREADS",
                                                     os.cpu_count() or 1)))


# --- DistributedSampler ---

@pytest.mark.parametrize("n, replicas, drop_last", [(10, 3, False), (10, 3, True), (4, 4, False),
                                                     (2, 5, False), (12, 4, True)])
@pytest.mark.parametrize("shuffle", [False, True])
def test_sampler_shards_are_disjoint_and_cover_the_dataset(n, replicas, drop_last, shuffle):
    data = list(range(n))
    shards = []
    for rank in range(replicas):
        sampler = DistributedSampler(data, replicas, rank, shuffle=shuffle, seed=3,
                                     drop_last=drop_last)
        sampler.set_epoch(2)
        shards.append(list(sampler))
        assert len(shards[-1]) == len(sampler)
    assert len({len(s) for s in shards}) == 1                # equal shares: no rank waits
    every = [i for s in shards for i in s]
    if drop_last:
        assert len(set(every)) == len(every) == replicas * (n // replicas)
    else:
        assert set(every) == set(range(n))
        padded = replicas * -(-n // replicas)
        assert len(every) == padded
        if padded - n <= n:                                  # each index at most once extra
            assert len(set(every)) == n


def test_sampler_order_is_pytorchs_rule_and_epochs_reshuffle():
    order = list(range(10))
    shard = list(DistributedSampler(order, 3, 1, shuffle=False))
    assert shard == [1, 4, 7, 0]                             # padded by the start: 10 -> 0
    a, b = (DistributedSampler(order, 2, r, shuffle=True, seed=1) for r in (0, 1))
    first = list(a)
    a.set_epoch(1)
    b.set_epoch(1)
    assert list(a) != first                                  # a new shuffle per epoch ...
    assert sorted(list(a) + list(b)) == order                # ... the same on every rank
    with pytest.raises(ValueError, match="invalid rank 3"):
        DistributedSampler(order, 3, 3)


@pytest.mark.torch
@pytest.mark.parametrize("n, replicas, drop_last", [(10, 3, False), (10, 3, True), (3, 7, False),
                                                     (16, 4, False)])
def test_sampler_indices_are_pytorchs(n, replicas, drop_last):
    torch = pytest.importorskip("torch")
    from torch.utils.data.distributed import DistributedSampler as TorchSampler
    for rank in range(replicas):
        ours = DistributedSampler(range(n), replicas, rank, shuffle=False, drop_last=drop_last)
        theirs = TorchSampler(range(n), replicas, rank, shuffle=False, drop_last=drop_last)
        assert list(ours) == list(theirs) and len(ours) == len(theirs)
    # shuffled: the permutation source differs (NumPy, not randperm); given PyTorch's
    # permutation, the padding and sharding are the same
    sampler = TorchSampler(range(n), replicas, 1, shuffle=True, seed=5, drop_last=drop_last)
    g = torch.Generator()
    g.manual_seed(5)
    permutation = torch.randperm(n, generator=g).numpy()
    ours = DistributedSampler(range(n), replicas, 1, shuffle=False, drop_last=drop_last)
    assert [int(permutation[i]) for i in ours] == list(sampler)


def test_data_loader_serves_the_samplers_indices():
    x = mr.tensor(np.arange(10.0).reshape(10, 1))
    sampler = DistributedSampler(range(10), 2, 1, shuffle=True, seed=0)
    loader = DataLoader(TensorDataset(x), batch_size=2, sampler=sampler)
    assert len(loader) == 3
    served = [int(v) for (batch,) in loader for v in batch.numpy().ravel()]
    assert served == list(sampler)
    sampler.set_epoch(1)
    assert [int(v) for (batch,) in loader for v in batch.numpy().ravel()] == list(sampler)
    with pytest.raises(ValueError, match="mutually exclusive with shuffle"):
        DataLoader(TensorDataset(x), sampler=sampler, shuffle=True)


# --- SyncBatchNorm in one process ---

def test_sync_batchnorm_without_a_group_is_batch_norm_and_converts_state():
    mr.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).double()
    net[1].running_mean.array[...] = 0.5
    reference = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).double()
    reference.load_state_dict(net.state_dict())
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(net)
    assert isinstance(converted[1], nn.SyncBatchNorm)
    assert converted[1].running_mean.numpy()[0] == 0.5
    x = mr.randn(4, 3, 6, 6, dtype=mr.float64)
    np.testing.assert_array_equal(converted(x).numpy(), reference(x).numpy())
    F.relu(converted(x)).sum().backward()
    assert converted[1].weight.grad is not None


# --- the minires command spread out ---

@pytest.mark.mpi
@needs_mpi
def test_degradation_farm_gives_each_net_the_single_process_result(tmp_path):
    flags = ["degradation", "--depths", "8", "--steps", "20", "--image-size", "8", "--width",
             "4", "--num-train", "256", "--batch-size", "32", "--no-progress"]
    env = {k: v for k, v in os.environ.items() if k not in _LAUNCH_VARIABLES}
    env.update(PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS="1", MINIRES_DEVICE="cpu")
    single = subprocess.run([sys.executable, "-m", "minires", *flags, "--out",
                             str(tmp_path / "one")], capture_output=True, text=True, env=env,
                            cwd=ROOT, timeout=240)
    assert single.returncode == 0, single.stderr
    farm = run_under_mpiexec(sys.executable, "-m", "minires", *flags, "--out",
                             str(tmp_path / "two"), one_thread=True)
    assert farm.returncode == 0, farm.stdout + farm.stderr
    assert "2 ranks" in farm.stdout and "resnet8 (rank 1)" in farm.stdout
    assert farm.stdout.count("wrote ") == 1                 # rank 0 alone prints
    import json
    one = json.loads((tmp_path / "one" / "results.json").read_text())
    two = json.loads((tmp_path / "two" / "results.json").read_text())
    assert one["settings"] == two["settings"]
    assert [r["model"] for r in two["runs"]] == ["plain8", "resnet8"]
    for a, b in zip(one["runs"], two["runs"]):
        a.pop("seconds"), b.pop("seconds")
        assert a == b
    assert sorted(p.name for p in (tmp_path / "two" / "models").iterdir()) == \
        ["plain8.npz", "resnet8.npz"]
    assert (tmp_path / "two" / "training_error.png").exists()
    # per net --resume: both nets are listed, so nothing is trained again
    again = run_under_mpiexec(sys.executable, "-m", "minires", *flags, "--out",
                              str(tmp_path / "two"), "--resume", one_thread=True)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "plain8: finished before" in again.stdout
    resumed = json.loads((tmp_path / "two" / "results.json").read_text())["runs"]
    for run in resumed:
        run.pop("seconds")
    assert resumed == two["runs"]


def test_sharded_loader_ranks_share_each_batch_of_one_process():
    from minires.data.loader import DataLoader as Loader, TensorDataset as Images
    from minires.train import ShardedDataLoader
    data = Images(np.arange(20, dtype=np.float32).reshape(20, 1, 1, 1), np.arange(20) % 3)
    one = Loader(data, batch_size=8, shuffle=True, drop_last=True, seed=4)
    shards = [ShardedDataLoader(data, 2, r, batch_size=4, shuffle=True, drop_last=True, seed=4)
              for r in range(2)]
    assert len(one) == len(shards[0]) == len(shards[1]) == 2
    for epoch in range(2):
        for loader in (one, *shards):
            loader.set_epoch(epoch)
        for (whole, _), (a, _), (b, _) in zip(one, *shards):
            assert sorted(whole.numpy().ravel()) == sorted(np.concatenate(
                [a.numpy().ravel(), b.numpy().ravel()]))


@pytest.mark.mpi
@needs_mpi
def test_train_data_parallel_with_sync_bn_takes_the_steps_of_one_process(tmp_path):
    flags = ["train", "--steps", "6", "--image-size", "8", "--width", "4", "--num-train", "256",
             "--batch-size", "32", "--no-progress"]
    env = {k: v for k, v in os.environ.items() if k not in _LAUNCH_VARIABLES}
    env.update(PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS="1", MINIRES_DEVICE="cpu")
    single = subprocess.run([sys.executable, "-m", "minires", *flags, "--out",
                             str(tmp_path / "one")], capture_output=True, text=True, env=env,
                            cwd=ROOT, timeout=240)
    assert single.returncode == 0, single.stderr
    spread = run_under_mpiexec(sys.executable, "-m", "minires", *flags, "--sync-bn", "--out",
                               str(tmp_path / "two"), one_thread=True)
    assert spread.returncode == 0, spread.stdout + spread.stderr
    assert spread.stdout.count("wrote ") == 1                # rank 0 alone prints and writes
    one = mr.load(str(tmp_path / "one" / "checkpoint.npz"))["model"]
    two = mr.load(str(tmp_path / "two" / "checkpoint.npz"))["model"]
    assert sorted("module." + k for k in one) == sorted(two)
    for key, value in one.items():               # weights and running statistics, float32
        np.testing.assert_allclose(two["module." + key].numpy(), value.numpy(), rtol=0,
                                   atol=1e-5, err_msg=key)
    # a batch that does not split over the ranks: one line
    odd = run_under_mpiexec(sys.executable, "-m", "minires", *flags[:-3], "--batch-size", "33",
                            "--out", str(tmp_path / "three"))
    assert odd.returncode == 1
    assert "--batch-size 33 does not split over 2 ranks: give a multiple of 2" in odd.stderr
