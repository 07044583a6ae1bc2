"""The measuring scripts of benchmarks/ that the docs' generated tables come from: they run, they
write what the tables read, and the sweep computes what minires's own recipe does. (Timings are
never asserted.)"""
import importlib.util
import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARKS = os.path.join(ROOT, "benchmarks")


def _script(name):
    sys.path.insert(0, BENCHMARKS)
    try:
        spec = importlib.util.spec_from_file_location(name, os.path.join(BENCHMARKS, f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(BENCHMARKS)


def test_profile_step_accounts_for_the_whole_step(tmp_path):
    profile = _script("profile_step")
    out = tmp_path / "profile.json"
    assert profile.main(["--batch", "2", "--image-size", "8", "--steps", "1",
                         "--json", str(out)]) == 0
    case = json.loads(out.read_text())["rows"][0]
    ops = {r["op"]: r for r in case["ops"]}
    assert {"Conv2d", "BatchNorm", "ReLU"} <= set(ops), "the ResNet's ops are all clocked"
    assert ops["Conv2d"]["forward_ms"] > 0 and ops["Conv2d"]["backward_ms"] > 0
    assert sum(r["share"] for r in case["ops"]) == pytest.approx(1.0)
    assert sum(r["total_ms"] for r in case["ops"]) == pytest.approx(case["step_ms"])


def test_bench_reference_writes_what_the_kernel_pages_read(tmp_path):
    bench = _script("bench_reference")
    out = tmp_path / "reference.json"
    bench.main(["--batch", "1", "--repeat", "1", "--json", str(out)])
    rows = json.loads(out.read_text())["rows"]
    committed = json.load(open(os.path.join(BENCHMARKS, "results", "bench_reference_cpu.json")))
    assert [r["kernel"] for r in rows] == [r["kernel"] for r in committed["rows"]]
    for r in rows:
        assert r["reference_ms"] > 0 and r["fast_ms"] > 0
        assert r["speedup"] == pytest.approx(r["reference_ms"] / r["fast_ms"])


def test_the_sweeps_schedule_is_the_papers():
    sweep = _script("depth_sweep")
    factors = sweep.lr_factors(40, 10, decay=True)
    assert factors[0] == pytest.approx(0.1) and factors[10] == pytest.approx(1.0)   # warm-up
    assert factors[19] == pytest.approx(1.0) and factors[20] == pytest.approx(0.1)  # /10 at 50%
    assert factors[29] == pytest.approx(0.1) and factors[30] == pytest.approx(0.01)  # and 75%
    assert sweep.lr_factors(40, 10, decay=False)[10:] == pytest.approx([1.0] * 30)


def test_the_sweep_writes_each_run_and_continues(tmp_path, capsys):
    pytest.importorskip("torch")
    sweep = _script("depth_sweep")
    out = tmp_path / "sweep.json"
    args = ["--json", str(out), "--widths", "2", "--steps", "8", "--depths", "8", "--jobs", "1",
            "--image-size", "8"]
    assert sweep.main(args) == 0
    runs = json.loads(out.read_text())["runs"]
    assert [(r["width"], r["steps"], r["depth"], r["residual"]) for r in runs] == [(2, 8, 8, True)]
    assert 0 <= runs[0]["train_error"] <= 100 and len(runs[0]["train_error_by_quarter"]) == 4
    assert sweep.main(args + ["--plain"]) == 0              # continues: only the plain twin
    assert "1 runs to go (1 already" in capsys.readouterr().out
    assert len(json.loads(out.read_text())["runs"]) == 2
    with pytest.raises(SystemExit):                          # other settings: refused
        sweep.main(args + ["--schedule", "constant"])
    assert "other settings" in capsys.readouterr().err


@pytest.mark.parametrize("residual", [True, False])
def test_the_twin_computes_what_minires_computes(residual):
    """The sweep's claim "the same layers": minires's net and its twin, given the same weights,
    give the same outputs (training mode, so batch norm uses the batch) and the same gradients."""
    torch = pytest.importorskip("torch")
    import numpy as np
    import minires as mr
    import minires.nn.functional as F
    from minires import models
    twins = _script("twins")
    mr.manual_seed(0)
    ours = models.cifar_resnet(8, residual=residual, width=4)
    twin = twins.torch_cifar_resnet(torch, 8, width=4, residual=residual)
    ours_params, twin_params = list(ours.parameters()), list(twin.parameters())
    assert [tuple(p.shape) for p in ours_params] == [tuple(p.shape) for p in twin_params]
    with torch.no_grad():
        for a, b in zip(ours_params, twin_params):
            b.copy_(torch.from_numpy(a.numpy()))
    x = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)
    y = np.array([0, 1, 2, 3])
    out = ours(mr.tensor(x))
    F.cross_entropy(out, mr.tensor(y)).backward()
    twin_out = twin(torch.from_numpy(x))
    torch.nn.functional.cross_entropy(twin_out, torch.from_numpy(y)).backward()
    np.testing.assert_allclose(out.detach().numpy(), twin_out.detach().numpy(), rtol=1e-4,
                               atol=1e-5)
    for a, b in zip(ours_params, twin_params):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-3, atol=1e-5)


def test_bench_step_plain_loop_makes_no_tuning_call(tmp_path, monkeypatch):
    bench = _script("bench_step")
    calls = []
    monkeypatch.setattr(bench, "tune_host_allocator", lambda: calls.append(1))
    out = tmp_path / "plain.json"
    bench.main(["--cases", "resnet20:2:8", "--repeat", "1", "--no-memory", "--plain-loop",
                "--json", str(out)])
    assert calls == [], "a user's own loop makes no tune_host_allocator() call"
    data = json.loads(out.read_text())
    assert data["run"]["plain_loop"] is True
    assert len(data["run"]["load_average_before"]) == 3
    row, = data["rows"]
    assert row["model"] == "resnet20" and row["minires_s"] > 0
