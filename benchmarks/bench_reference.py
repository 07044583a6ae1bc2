"""The plain path against the fast kernel: each kernel of minires.kernels.reference and its fast
counterpart in minires.kernels, forward + backward, at the CIFAR ResNet-20 shapes (16x32x32,
32x16x16, 64x8x8), float32, measured in the same run.

    python benchmarks/bench_reference.py [--device cpu] [--batch 128] [--repeat 3] [--json out.json]

Prints one row per kernel and shape: the reference's ms, the fast kernel's ms and the speed-up
(reference / fast): what the speed steps of each kernel file bought together. Both get the same
input: channels-last memory behind the NCHW view, as a minires convolution leaves it. Each row
records the machine's one-minute load average, since a busy machine slows both sides unevenly,
and ``OPENBLAS_NUM_THREADS``: on a machine busy with other processes, OpenBLAS's threads spin
against them and a matrix-vector product can take a hundred times longer, so there run it as
``OPENBLAS_NUM_THREADS=1 python benchmarks/bench_reference.py``.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy  # noqa: E402

from minires import backend  # noqa: E402
from minires.host_allocator import tune_host_allocator  # noqa: E402
from minires.kernels import conv, loss, norm, pool  # noqa: E402
from minires.kernels import reference as ref  # noqa: E402

from common import timeit, write_results  # noqa: E402

SHAPES = [(16, 32), (32, 16), (64, 8)]          # (channels, height = width)


def cases(device, batch):
    """(name, reference fn, fast fn): each fn runs one forward and one backward."""
    for c, s in SHAPES:
        rng = numpy.random.default_rng(0)
        x_nhwc = rng.standard_normal((batch, s, s, c)).astype(numpy.float32)
        x = backend.to_device(x_nhwc, device).transpose(0, 3, 1, 2)
        w = backend.to_device((rng.standard_normal((c, c, 3, 3)) * 0.1).astype(numpy.float32),
                              device)
        g, b = (backend.to_device(numpy.full(c, v, numpy.float32), device) for v in (1.0, 0.0))
        dy = x                                  # any array of the output's shape and layout
        pooled = backend.to_device(rng.standard_normal((batch, s // 2, s // 2, c))
                                   .astype(numpy.float32), device).transpose(0, 3, 1, 2)

        def conv_ref():
            y, cache = ref.conv2d_forward(x, w, None, 1, 1)
            ref.conv2d_backward(dy, cache)

        def conv_fast():
            y, cache = conv.conv2d_forward(x, w, None, (1, 1), (1, 1), (1, 1))
            conv.conv2d_backward(dy, cache)

        def bn_ref():
            y, cache = ref.batch_norm_forward(x, g, b, 1e-5)
            ref.batch_norm_backward(dy, cache)

        def bn_fast():
            y, cache = norm.batch_norm_forward(x, None, None, g, b, True)
            norm.batch_norm_backward(dy, cache)

        def pool_ref():
            y, cache = ref.max_pool_forward(x, 2, 2)
            ref.max_pool_backward(pooled, cache)

        def pool_fast():
            y, cache = pool.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0))
            pool.max_pool2d_backward(pooled, cache)
        yield f"conv2d 3x3 {c}x{s}x{s}", conv_ref, conv_fast
        yield f"batch_norm {c}x{s}x{s}", bn_ref, bn_fast
        yield f"max_pool2d 2x2 {c}x{s}x{s}", pool_ref, pool_fast

    rng = numpy.random.default_rng(0)
    logits = backend.to_device(rng.standard_normal((batch, 10)).astype(numpy.float32), device)
    labels = backend.to_device(rng.integers(0, 10, batch), device)
    one = backend.to_device(numpy.array(1.0, numpy.float32), device)

    def ce_ref():
        ref.softmax_cross_entropy(logits, labels)

    def ce_fast():
        value, cache = loss.cross_entropy_forward(logits, labels)
        loss.cross_entropy_backward(one, cache)
    yield "cross_entropy 10 classes", ce_ref, ce_fast


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    tune_host_allocator()
    sync = (lambda: backend.synchronize(args.device))
    rows = []
    print(f"{f'kernel (fwd+bwd), batch {args.batch}':<32} {'reference ms':>13} {'fast ms':>9} "
          f"{'speed-up':>9}")
    for name, plain, fast in cases(args.device, args.batch):
        t_ref = timeit(plain, args.repeat, sync=sync)
        t_fast = timeit(fast, args.repeat, sync=sync)
        rows.append({"kernel": name, "batch": args.batch, "reference_ms": t_ref * 1e3,
                     "fast_ms": t_fast * 1e3, "speedup": t_ref / t_fast,
                     "load_1min": os.getloadavg()[0],    # a shared machine: say how busy
                     "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS")})
        print(f"{name:<32} {t_ref * 1e3:>13.1f} {t_fast * 1e3:>9.1f} {t_ref / t_fast:>8.1f}x",
              flush=True)
    if args.json:
        write_results(args.json, args.device, rows)


if __name__ == "__main__":
    main()
