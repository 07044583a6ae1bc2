"""One SGD training step (forward, backward, update) of CIFAR ResNet-20 and ResNet-56 at batch
128, float32, minires vs the same nets in PyTorch measured in the same run.

    python benchmarks/bench_step.py [--device cpu|cuda] [--models resnet20 resnet56]
                                    [--batch-sizes 128] [--image-size 32] [--json out.json]
                                    [--no-memory]

The PyTorch twin is built here with the same layers (3x3 convs without bias, BN, option-A
shortcuts). Ratio = minires time / PyTorch time (lower is better). On cuda, PyTorch uses cuDNN.

Peak memory: each framework runs three training steps in a process of its own (so that neither
sees the other's heap), which reports its peak resident set size (``ru_maxrss``) and the resident
size just before the first step; the step's own peak is the difference. On cuda, the peak of the
device memory pool is reported instead.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import minires as mr  # noqa: E402
import minires.nn.functional as F  # noqa: E402
from minires import backend, models, optim  # noqa: E402
from minires.host_allocator import tune_host_allocator  # noqa: E402

from common import timeit, torch_or_none, write_results  # noqa: E402


def torch_cifar_resnet(torch, depth: int, width: int = 16):
    nn, tf = torch.nn, torch.nn.functional

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.b1 = nn.BatchNorm2d(cout)
            self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.b2 = nn.BatchNorm2d(cout)
            self.cin, self.cout, self.stride = cin, cout, stride

        def forward(self, x):
            out = self.b2(self.c2(tf.relu(self.b1(self.c1(x)))))
            sc = x
            if self.stride != 1 or self.cin != self.cout:
                sc = tf.pad(x[:, :, ::self.stride, ::self.stride],
                            (0, 0, 0, 0, 0, self.cout - self.cin))
            return tf.relu(out + sc)

    n = (depth - 2) // 6
    layers = [nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
    cin = width
    for cout, stride in ((width, 1), (2 * width, 2), (4 * width, 2)):
        for i in range(n):
            layers.append(Block(cin, cout, stride if i == 0 else 1))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 10)]
    return nn.Sequential(*layers)


def time_minires(name, batch, size, device, repeat):
    mr.manual_seed(0)
    model = models.get_model(name).to(device)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    x = mr.randn(batch, 3, size, size, device=device)
    y = mr.randint(0, 10, (batch,), device=device)

    def step():
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return timeit(step, repeat, warmup=2, sync=lambda: backend.synchronize(device))


def time_torch(torch, name, batch, size, device, repeat):
    torch.manual_seed(0)
    depth = int("".join(c for c in name if c.isdigit()))
    dev = "cuda" if device.startswith("cuda") else "cpu"
    model = torch_cifar_resnet(torch, depth).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(batch, 3, size, size, device=dev)
    y = torch.randint(0, 10, (batch,), device=dev)

    def step():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    sync = torch.cuda.synchronize if dev == "cuda" else None
    return timeit(step, repeat, warmup=2, sync=sync)


def _rss_mib() -> float:
    """The resident set size of this process now, in MiB (Linux /proc)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_memory_child(framework: str, name: str, batch: int, size: int, steps: int = 3) -> dict:
    """Run in a fresh process: build the model and a batch, then ``steps`` training steps.
    Returns the process's peak RSS, its RSS before the first step, and their difference."""
    if framework == "minires":
        tune_host_allocator()
        mr.manual_seed(0)
        model = models.get_model(name)
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        x = mr.randn(batch, 3, size, size)
        y = mr.randint(0, 10, (batch,))
        loss_fn = F.cross_entropy
    else:
        import torch
        torch.set_num_threads(os.cpu_count() or 1)
        torch.manual_seed(0)
        depth = int("".join(c for c in name if c.isdigit()))
        model = torch_cifar_resnet(torch, depth)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        x = torch.randn(batch, 3, size, size)
        y = torch.randint(0, 10, (batch,))
        loss_fn = torch.nn.functional.cross_entropy
    before = _rss_mib()
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024    # KiB on Linux
    return {"peak_rss_mib": round(peak, 1), "rss_before_mib": round(before, 1),
            "step_peak_mib": round(peak - before, 1)}


def peak_memory(framework: str, name: str, batch: int, size: int) -> dict | None:
    """:func:`peak_memory_child` in a process of its own; None if that process failed."""
    cmd = [sys.executable, os.path.abspath(__file__), "--peak-memory-child", framework, name,
           str(batch), str(size)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"peak memory of {framework} {name} failed: {done.stderr.strip()[-300:]}")
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", nargs="+", default=["resnet20", "resnet56"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[128])
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json")
    parser.add_argument("--no-memory", action="store_true",
                        help="skip the peak-memory measurement (one process per framework)")
    parser.add_argument("--peak-memory-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peak_memory_child:
        framework, name, batch, size = args.peak_memory_child
        print(json.dumps(peak_memory_child(framework, name, int(batch), int(size))))
        return
    tune_host_allocator()   # as the minires command and fit() do: the speed of a training loop
    torch = torch_or_none()
    if torch is not None and not args.device.startswith("cuda"):
        torch.set_num_threads(os.cpu_count() or 1)
    rows = []
    print(f"{'model':<10} {'batch':>5} {'minires s':>10} {'torch s':>9} {'ratio':>6}")
    for name in args.models:
        for batch in args.batch_sizes:
            t_mr = time_minires(name, batch, args.image_size, args.device, args.repeat)
            t_torch = time_torch(torch, name, batch, args.image_size, args.device, args.repeat) \
                if torch is not None else None
            ratio = t_mr / t_torch if t_torch else None
            row = {"model": name, "batch": batch, "image_size": args.image_size,
                   "minires_s": t_mr, "torch_s": t_torch, "ratio": ratio}
            line = (f"{name:<10} {batch:>5} {t_mr:>10.3f} "
                    f"{(f'{t_torch:.3f}' if t_torch else '-'):>9} "
                    f"{(f'{ratio:.2f}' if ratio else '-'):>6}")
            if not args.no_memory and not args.device.startswith("cuda"):
                row["minires_memory"] = peak_memory("minires", name, batch, args.image_size)
                row["torch_memory"] = peak_memory("torch", name, batch, args.image_size) \
                    if torch is not None else None
                if row["minires_memory"] and row["torch_memory"]:
                    row["peak_rss_ratio"] = (row["minires_memory"]["peak_rss_mib"]
                                             / row["torch_memory"]["peak_rss_mib"])
                    line += (f"   peak RSS {row['minires_memory']['peak_rss_mib']:.0f} MiB vs "
                             f"{row['torch_memory']['peak_rss_mib']:.0f} "
                             f"({row['peak_rss_ratio']:.2f}x)")
            rows.append(row)
            print(line, flush=True)
    if args.json:
        write_results(args.json, args.device, rows)


if __name__ == "__main__":
    main()
