"""A training step (forward, backward, SGD update) and an evaluation forward (``no_grad``, eval
mode) of minires's ResNets against the same nets in PyTorch, measured in the same run, with the
peak memory of a training step.

    python benchmarks/bench_step.py [--device cpu|cuda] [--cases resnet20:128:32 ...]
                                    [--models resnet20 --batch-sizes 128 --image-size 32]
                                    [--repeat 5] [--no-memory] [--plain-loop] [--json out.json]

A case is ``model:batch:image_size``; the default cases are CIFAR ResNet-20, -56 and -110 at batch
128 on 32x32 images and ImageNet ResNet-18 at batch 8 on 224x224. ``--models``/``--batch-sizes``/
``--image-size`` give the cases as a product instead. The PyTorch twins are built here with the
same layers (3x3 convs without bias, BN, option-A shortcuts for the CIFAR nets; the 7x7 stem, max
pool and projection shortcuts for ImageNet). Ratio = minires time / PyTorch time (lower is
better). On cuda, PyTorch uses cuDNN.

By default the process first calls ``minires.host_allocator.tune_host_allocator()``, as the
``minires`` command and ``fit`` do. ``--plain-loop`` leaves it out: the loop is then a user's own
PyTorch-style program (model, SGD, cross_entropy, zero_grad/backward/step) with no tuning call,
and both frameworks run with malloc's defaults.

Peak memory: each framework runs three training steps in a process of its own (so that neither
sees the other's heap), which reports its peak resident set size (``VmHWM``) and the resident
size just before the first step; the step's own peak is the difference. Not measured on cuda.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import minires as mr  # noqa: E402
import minires.nn.functional as F  # noqa: E402
from minires import backend, models, optim  # noqa: E402
from minires.host_allocator import tune_host_allocator  # noqa: E402

from common import timeit, torch_or_none, write_results  # noqa: E402
from twins import torch_cifar_resnet, torch_imagenet_resnet  # noqa: E402

DEFAULT_CASES = ("resnet20:128:32", "resnet56:128:32", "resnet110:128:32", "resnet18:8:224")
IMAGENET_DEPTHS = (18, 34)


def _depth(name: str) -> int:
    return int("".join(c for c in name if c.isdigit()))


def _classes(name: str) -> int:
    return 1000 if _depth(name) in IMAGENET_DEPTHS else 10


def build_minires(name, batch, size, device):
    """The model, an SGD optimiser, a batch and its labels."""
    mr.manual_seed(0)
    model = models.get_model(name).to(device)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    x = mr.randn(batch, 3, size, size, device=device)
    y = mr.randint(0, _classes(name), (batch,), device=device)
    return model, opt, x, y


def build_torch(torch, name, batch, size, device):
    torch.manual_seed(0)
    dev = "cuda" if device.startswith("cuda") else "cpu"
    depth = _depth(name)
    model = (torch_imagenet_resnet(torch, depth) if depth in IMAGENET_DEPTHS
             else torch_cifar_resnet(torch, depth)).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(batch, 3, size, size, device=dev)
    y = torch.randint(0, _classes(name), (batch,), device=dev)
    return model, opt, x, y


def time_minires(name, batch, size, device, repeat):
    """Median seconds of a training step and of an evaluation forward."""
    model, opt, x, y = build_minires(name, batch, size, device)
    sync = lambda: backend.synchronize(device)  # noqa: E731

    def step():
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()

    def evaluate():
        with mr.no_grad():
            model(x)
    model.train()
    t_step = timeit(step, repeat, warmup=2, sync=sync)
    model.eval()
    return t_step, timeit(evaluate, repeat, warmup=1, sync=sync)


def time_torch(torch, name, batch, size, device, repeat):
    model, opt, x, y = build_torch(torch, name, batch, size, device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else None

    def step():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    def evaluate():
        with torch.no_grad():
            model(x)
    model.train()
    t_step = timeit(step, repeat, warmup=2, sync=sync)
    model.eval()
    return t_step, timeit(evaluate, repeat, warmup=1, sync=sync)


def _rss_mib() -> float:
    """The resident set size of this process now, in MiB (Linux /proc)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mib() -> float:
    """This process's peak resident set size in MiB: ``VmHWM`` of /proc/self/status (unlike
    ``ru_maxrss``, which Linux carries over from the parent through fork and exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024           # kB
    raise RuntimeError("no VmHWM in /proc/self/status")


def peak_memory_child(framework: str, name: str, batch: int, size: int, steps: int = 3,
                      plain_loop: bool = False) -> dict:
    """Run in a fresh process: build the model and a batch, then ``steps`` training steps.
    Returns the process's peak RSS, its RSS before the first step, and their difference."""
    if framework == "minires":
        if not plain_loop:
            tune_host_allocator()
        model, opt, x, y = build_minires(name, batch, size, "cpu")
        loss_fn = F.cross_entropy
    else:
        import torch
        torch.set_num_threads(os.cpu_count() or 1)
        model, opt, x, y = build_torch(torch, name, batch, size, "cpu")
        loss_fn = torch.nn.functional.cross_entropy
    before = _rss_mib()
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
    peak = _peak_rss_mib()
    return {"peak_rss_mib": round(peak, 1), "rss_before_mib": round(before, 1),
            "step_peak_mib": round(peak - before, 1)}


def peak_memory(framework: str, name: str, batch: int, size: int,
                plain_loop: bool = False) -> dict | None:
    """:func:`peak_memory_child` in a process of its own; None if that process failed."""
    cmd = [sys.executable, os.path.abspath(__file__), "--peak-memory-child", framework, name,
           str(batch), str(size)] + (["--plain-loop"] if plain_loop else [])
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"peak memory of {framework} {name} failed: {done.stderr.strip()[-300:]}")
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def parse_cases(args) -> list[tuple[str, int, int]]:
    if args.models or args.batch_sizes or args.image_size:
        return [(m, b, args.image_size or 32) for m in (args.models or ["resnet20", "resnet56"])
                for b in (args.batch_sizes or [128])]
    cases = []
    for case in args.cases or DEFAULT_CASES:
        try:
            name, batch, size = case.split(":")
            cases.append((name, int(batch), int(size)))
        except ValueError:
            raise SystemExit(f"bench_step: a case is model:batch:image_size, got {case!r}")
    return cases


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cases", nargs="+", help=f"model:batch:size (default {DEFAULT_CASES})")
    parser.add_argument("--models", nargs="+")
    parser.add_argument("--batch-sizes", nargs="+", type=int)
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json")
    parser.add_argument("--no-memory", action="store_true",
                        help="skip the peak-memory measurement (one process per framework)")
    parser.add_argument("--plain-loop", action="store_true",
                        help="a user's own loop: no tune_host_allocator() call, malloc's defaults")
    parser.add_argument("--peak-memory-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peak_memory_child:
        framework, name, batch, size = args.peak_memory_child
        print(json.dumps(peak_memory_child(framework, name, int(batch), int(size),
                                           plain_loop=args.plain_loop)))
        return
    if not args.plain_loop:
        tune_host_allocator()   # as the minires command and fit() do
    torch = torch_or_none()
    if torch is not None and not args.device.startswith("cuda"):
        torch.set_num_threads(os.cpu_count() or 1)
    rows = []
    load_before = os.getloadavg()   # the machine's load (1, 5, 15 min): other work skews times
    print(f"{'model':<10} {'batch':>5} {'size':>4} | {'step s':>7} {'torch':>7} {'ratio':>5} | "
          f"{'eval s':>7} {'torch':>7} {'ratio':>5} | peak RSS MiB (torch, ratio)")
    for name, batch, size in parse_cases(args):
        t_mr, e_mr = time_minires(name, batch, size, args.device, args.repeat)
        t_torch, e_torch = time_torch(torch, name, batch, size, args.device, args.repeat) \
            if torch is not None else (None, None)
        row = {"model": name, "batch": batch, "image_size": size,
               "minires_s": t_mr, "torch_s": t_torch,
               "ratio": t_mr / t_torch if t_torch else None,
               "minires_eval_s": e_mr, "torch_eval_s": e_torch,
               "eval_ratio": e_mr / e_torch if e_torch else None}
        memory = "-"
        if not args.no_memory and not args.device.startswith("cuda"):
            row["minires_memory"] = peak_memory("minires", name, batch, size, args.plain_loop)
            row["torch_memory"] = peak_memory("torch", name, batch, size, args.plain_loop) \
                if torch is not None else None
            if row["minires_memory"] and row["torch_memory"]:
                row["peak_rss_ratio"] = (row["minires_memory"]["peak_rss_mib"]
                                         / row["torch_memory"]["peak_rss_mib"])
                memory = (f"{row['minires_memory']['peak_rss_mib']:.0f} "
                          f"({row['torch_memory']['peak_rss_mib']:.0f}, "
                          f"{row['peak_rss_ratio']:.2f})")
        rows.append(row)

        def fmt(v, spec):
            return "-" if v is None else format(v, spec)
        print(f"{name:<10} {batch:>5} {size:>4} | {t_mr:>7.3f} {fmt(t_torch, '>7.3f')} "
              f"{fmt(row['ratio'], '>5.2f')} | {e_mr:>7.3f} {fmt(e_torch, '>7.3f')} "
              f"{fmt(row['eval_ratio'], '>5.2f')} | {memory}", flush=True)
    if args.json:
        write_results(args.json, args.device, rows,
                      {"plain_loop": args.plain_loop, "load_average_after": os.getloadavg(),
                       "load_average_before": load_before})


if __name__ == "__main__":
    main()
