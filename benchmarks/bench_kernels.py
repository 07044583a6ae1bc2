"""conv2d, batch_norm and max_pool2d forward+backward at the CIFAR ResNet-20 shapes (batch 128:
16x32x32, 32x16x16, 64x8x8), float32, minires vs PyTorch CPU measured in the same run.

    python benchmarks/bench_kernels.py [--device cpu] [--repeat 5] [--json out.json]

Prints one row per kernel and shape: minires ms, torch ms, and the ratio minires/torch (lower is
better; 1.0 is parity). PyTorch is optional: without it only minires is timed.

Each framework gets its input in the memory layout its own networks produce: channels-last memory
behind the NCHW view for minires (every minires convolution returns that), NCHW-contiguous for
PyTorch (its default). Given an NCHW-contiguous input, minires's kernels first pay a transposing
copy.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy  # noqa: E402

import minires as mr  # noqa: E402
import minires.nn.functional as F  # noqa: E402
from minires import backend  # noqa: E402
from minires.host_allocator import tune_host_allocator  # noqa: E402

from common import timeit, torch_or_none, write_results  # noqa: E402

SHAPES = [(128, 16, 32), (128, 32, 16), (128, 64, 8)]


def minires_cases(device):
    sync = (lambda: backend.synchronize(device))
    for n, c, s in SHAPES:
        rng = numpy.random.default_rng(0)
        x_host = rng.standard_normal((n, c, s, s)).astype(numpy.float32)
        w_host = (rng.standard_normal((c, c, 3, 3)) * 0.1).astype(numpy.float32)
        # channels-last memory, as a convolution inside a minires network leaves it
        x_nhwc = numpy.ascontiguousarray(x_host.transpose(0, 2, 3, 1))
        x = mr.Tensor(backend.to_device(x_nhwc.transpose(0, 3, 1, 2), device), requires_grad=True)
        w = mr.tensor(w_host, device=device, requires_grad=True)
        g = mr.ones(c, device=device, requires_grad=True)
        b = mr.zeros(c, device=device, requires_grad=True)
        rm, rv = mr.zeros(c, device=device), mr.ones(c, device=device)

        def conv():
            F.conv2d(x, w, padding=1).sum().backward()

        def bn():
            F.batch_norm(x, rm, rv, g, b, training=True).sum().backward()

        def pool():
            F.max_pool2d(x, 2).sum().backward()
        yield f"conv2d 3x3 {c}x{s}x{s}", conv, sync
        yield f"batch_norm {c}x{s}x{s}", bn, sync
        yield f"max_pool2d 2x2 {c}x{s}x{s}", pool, sync


def torch_cases(torch, device):
    dev = "cuda" if str(device).startswith("cuda") else "cpu"   # the peer runs where we run
    for n, c, s in SHAPES:
        rng = numpy.random.default_rng(0)
        x = torch.tensor(rng.standard_normal((n, c, s, s)).astype(numpy.float32),
                         requires_grad=True, device=dev)
        w = torch.tensor((rng.standard_normal((c, c, 3, 3)) * 0.1).astype(numpy.float32),
                         requires_grad=True, device=dev)
        g = torch.ones(c, requires_grad=True, device=dev)
        b = torch.zeros(c, requires_grad=True, device=dev)
        rm, rv = torch.zeros(c, device=dev), torch.ones(c, device=dev)
        tf = torch.nn.functional

        def conv():
            tf.conv2d(x, w, padding=1).sum().backward()

        def bn():
            tf.batch_norm(x, rm, rv, g, b, training=True).sum().backward()

        def pool():
            tf.max_pool2d(x, 2).sum().backward()
        yield conv
        yield bn
        yield pool


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    tune_host_allocator()   # as the minires command and fit() do: the speed of a training loop
    torch = torch_or_none()
    if torch is not None:
        torch.set_num_threads(os.cpu_count() or 1)
    rows = []
    torch_fns = list(torch_cases(torch, args.device)) if torch is not None else []
    torch_sync = torch.cuda.synchronize if torch is not None and args.device.startswith("cuda") \
        else None
    print(f"{'kernel (fwd+bwd), batch 128':<32} {'minires ms':>11} {'torch ms':>9} {'ratio':>6}")
    for i, (name, fn, sync) in enumerate(minires_cases(args.device)):
        t_mr = timeit(fn, args.repeat, sync=sync)
        t_torch = timeit(torch_fns[i], args.repeat, sync=torch_sync) if torch_fns else None
        ratio = t_mr / t_torch if t_torch else None
        rows.append({"kernel": name, "minires_ms": t_mr * 1e3,
                     "torch_ms": t_torch * 1e3 if t_torch else None, "ratio": ratio})
        print(f"{name:<32} {t_mr * 1e3:>11.1f} "
              f"{(f'{t_torch * 1e3:.1f}' if t_torch else '-'):>9} "
              f"{(f'{ratio:.2f}' if ratio else '-'):>6}", flush=True)
    if args.json:
        write_results(args.json, args.device, rows)


if __name__ == "__main__":
    main()
