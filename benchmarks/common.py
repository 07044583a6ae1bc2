"""Shared timing helpers for the benchmarks (never used by tests: timings are not asserted)."""
from __future__ import annotations

import json
import os
import platform
import statistics
import time


def timeit(fn, repeat: int = 5, warmup: int = 1, sync=None) -> float:
    """Median wall time of ``fn()`` in seconds (after ``warmup`` calls)."""
    for _ in range(warmup):
        fn()
        if sync:
            sync()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def machine() -> dict:
    info = {"python": platform.python_version(), "machine": platform.machine(),
            "processor": platform.processor() or "", "cpus": os.cpu_count()}
    try:
        import numpy
        info["numpy"] = numpy.__version__
    except ImportError:
        pass
    try:
        import torch
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        info["torch"] = None
    return info


def torch_or_none():
    try:
        import torch
        return torch
    except Exception:
        return None


def write_results(path: str, device: str, rows: list, run: dict | None = None) -> None:
    """The rows of a benchmark, with the device and the machine (and, if given, how the run was
    made: ``run``), as JSON."""
    data = {"device": device, "machine": machine(), "rows": rows}
    if run is not None:
        data["run"] = run
    with open(path, "w") as f:
        json.dump(data, f, indent=1)
