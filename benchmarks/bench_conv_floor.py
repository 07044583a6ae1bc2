"""Where the time of a NumPy convolution goes, and how low it could go (CPU only).

    python benchmarks/bench_conv_floor.py [--channels 16] [--size 32] [--repeat 7] [--json out.json]

The first 3x3 convolution of a CIFAR ResNet (batch 128, 16 -> 16 channels, 32x32, stride 1, pad 1)
is where minires is furthest from PyTorch (docs/benchmarks.md). This script takes that convolution
apart and times each piece on its own, in float32, with PyTorch's fused forward + backward measured
in the same run as the yardstick:

- ``minires``: the kernels' own ``conv2d_forward`` + ``conv2d_backward`` (no autograd around them);
- ``im2col``: one patch matrix (N*H*W, 9*C), copied from a channels-last padded image;
- ``write``: filling an array of the patch matrix's size: what writing any 9x patch matrix costs;
- ``3 GEMMs, rows x K``: the three matrix products of im2col (Y, dW, dX) with the patch matrix
  stored one patch per row, as minires stores it (the output is channels-last);
- ``3 GEMMs, K x rows``: the same products with the patch matrix transposed (channels-first), the
  orientation in which OpenBLAS runs these thin shapes fastest;
- ``Winograd F(2x2,3x3)``: the input and output transforms of Lavin and Gray's minimal filtering,
  written as NumPy elementwise passes, and the 16 small matrix products that replace the im2col
  GEMM (2.25x fewer multiplies).

The last line adds the cheapest pieces an im2col convolution cannot avoid (the three GEMMs in
their best orientation and two patch-matrix writes, one for x and one for dY) and compares that
floor with PyTorch. PyTorch runs in this process, after ``tune_host_allocator`` (as in the other
benchmarks): the same malloc settings for both. Nothing here is asserted: timings depend on the
machine.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from minires.host_allocator import tune_host_allocator  # noqa: E402
from minires.kernels import conv as K  # noqa: E402

from common import timeit, torch_or_none, write_results  # noqa: E402

# Winograd F(2x2, 3x3): y = A^T [(G g G^T) * (B^T d B)] A on 4x4 input tiles with stride 2.
WINOGRAD_G = np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]])


def winograd_input_transform(x_pad, tiles_h, tiles_w):
    """(N, 2th+2, 2tw+2, C) -> V (4, 4, N, th, tw, C): B^T d B for every tile, rows then columns."""
    n, _, wp, c = x_pad.shape
    rows = [x_pad[:, u:u + 2 * tiles_h:2] for u in range(4)]
    t = np.empty((4, n, tiles_h, wp, c), x_pad.dtype)
    np.subtract(rows[0], rows[2], out=t[0])
    np.add(rows[1], rows[2], out=t[1])
    np.subtract(rows[2], rows[1], out=t[2])
    np.subtract(rows[1], rows[3], out=t[3])
    cols = [t[:, :, :, v:v + 2 * tiles_w:2] for v in range(4)]
    v = np.empty((4, 4, n, tiles_h, tiles_w, c), x_pad.dtype)
    np.subtract(cols[0], cols[2], out=v[:, 0])
    np.add(cols[1], cols[2], out=v[:, 1])
    np.subtract(cols[2], cols[1], out=v[:, 2])
    np.subtract(cols[1], cols[3], out=v[:, 3])
    return v


def winograd_output_transform(m, y):
    """M (4, 4, N, th, tw, F) -> y (N, 2th, 2tw, F): A^T M A for every tile."""
    n, th, tw, f = m.shape[2:]
    q = np.empty((2,) + m.shape[1:], m.dtype)
    np.add(m[0], m[1], out=q[0])
    q[0] += m[2]
    np.subtract(m[1], m[2], out=q[1])
    q[1] -= m[3]
    out = y.reshape(n, th, 2, tw, 2, f).transpose(2, 4, 0, 1, 3, 5)     # (p, q, N, th, tw, F)
    np.add(q[:, 0], q[:, 1], out=out[:, 0])
    out[:, 0] += q[:, 2]
    np.subtract(q[:, 1], q[:, 2], out=out[:, 1])
    out[:, 1] -= q[:, 3]
    return y


def pieces(n, c, s, repeat):
    """Yield ``(name, seconds)`` for every piece of the convolution."""
    rng = np.random.default_rng(0)
    x_nhwc = rng.standard_normal((n, s, s, c), dtype=np.float32)
    dy_nhwc = rng.standard_normal((n, s, s, c), dtype=np.float32)
    w = rng.standard_normal((c, c, 3, 3), dtype=np.float32)
    x, dy = x_nhwc.transpose(0, 3, 1, 2), dy_nhwc.transpose(0, 3, 1, 2)

    _, cache = K.conv2d_forward(x, w, None, (1, 1), (1, 1))
    yield "minires forward", timeit(lambda: K.conv2d_forward(x, w, None, (1, 1), (1, 1)), repeat)
    yield "minires backward", timeit(lambda: K.conv2d_backward(dy, cache, need_db=False), repeat)

    x_pad = K.pad_nhwc(x_nhwc, 1, 1)
    yield "im2col (one patch matrix)", timeit(
        lambda: K.im2col(x_pad, 3, 3, (1, 1), (1, 1), s, s), repeat)
    cols = K.im2col(x_pad, 3, 3, (1, 1), (1, 1), s, s).reshape(n * s * s, 9 * c)
    target = np.empty_like(cols)
    yield "write of as many bytes", timeit(lambda: target.fill(1.0), repeat)

    w_col = w.transpose(2, 3, 1, 0).reshape(9 * c, c)
    dy_rows = dy_nhwc.reshape(n * s * s, c)

    def gemms_rows_by_k():
        cols @ w_col, cols.T @ dy_rows, dy_rows @ w_col.T
    yield "3 GEMMs, rows x K (minires)", timeit(gemms_rows_by_k, repeat)

    cols_t = np.ascontiguousarray(cols.T)
    dy_t = np.ascontiguousarray(dy_rows.T)

    def gemms_k_by_rows():
        w_col.T @ cols_t, cols_t @ dy_t.T, w_col @ dy_t
    yield "3 GEMMs, K x rows", timeit(gemms_k_by_rows, repeat)

    th = tw = (s + 1) // 2
    x_tiles = np.zeros((n, 2 * th + 2, 2 * tw + 2, c), np.float32)
    x_tiles[:, 1:1 + s, 1:1 + s] = x_nhwc
    u = np.einsum("ai,fcij,bj->abcf", WINOGRAD_G, w, WINOGRAD_G).reshape(16, c, c).astype(np.float32)
    yield "Winograd input transform", timeit(
        lambda: winograd_input_transform(x_tiles, th, tw), repeat)
    v = winograd_input_transform(x_tiles, th, tw).reshape(16, n * th * tw, c)
    yield "Winograd 16 GEMMs", timeit(lambda: np.matmul(v, u), repeat)
    m = np.matmul(v, u).reshape(4, 4, n, th, tw, c)
    y = np.empty((n, 2 * th, 2 * tw, c), np.float32)
    yield "Winograd output transform", timeit(lambda: winograd_output_transform(m, y), repeat)
    # the transforms compute the same convolution: a wrong one would make the timing meaningless
    y_ref, _ = K.conv2d_forward(x, w, None, (1, 1), (1, 1))
    error = np.abs(y[:, :s, :s] - y_ref.transpose(0, 2, 3, 1)).max()
    if error > 1e-3 * np.abs(y_ref).max():
        raise AssertionError(f"Winograd forward differs from conv2d by {error}")


def torch_conv(torch, n, c, s, repeat):
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.standard_normal((n, c, s, s), dtype=np.float32), requires_grad=True)
    w = torch.tensor(rng.standard_normal((c, c, 3, 3), dtype=np.float32), requires_grad=True)
    dy = torch.tensor(rng.standard_normal((n, c, s, s), dtype=np.float32))

    def step():
        torch.nn.functional.conv2d(x, w, padding=1).backward(dy)
    return timeit(step, repeat)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    tune_host_allocator()
    n, c, s = args.batch, args.channels, args.size
    torch = torch_or_none()
    t_torch = None
    if torch is not None:
        torch.set_num_threads(os.cpu_count() or 1)
        t_torch = torch_conv(torch, n, c, s, args.repeat)
    print(f"conv2d 3x3, batch {n}, {c}->{c} channels, {s}x{s}, float32")
    rows = {}
    for name, seconds in pieces(n, c, s, args.repeat):
        rows[name] = seconds * 1e3
        print(f"  {name:<34} {seconds * 1e3:7.1f} ms", flush=True)
    floor = min(rows["3 GEMMs, rows x K (minires)"], rows["3 GEMMs, K x rows"]) \
        + 2 * rows["write of as many bytes"]
    rows["im2col floor (best GEMMs + 2 writes)"] = floor
    print(f"  {'im2col floor (best GEMMs + 2 writes)':<34} {floor:7.1f} ms")
    if t_torch is not None:
        rows["torch forward + backward"] = t_torch * 1e3
        mr_total = rows["minires forward"] + rows["minires backward"]
        print(f"  {'torch forward + backward':<34} {t_torch * 1e3:7.1f} ms")
        print(f"minires / torch {mr_total / (t_torch * 1e3):.2f}; "
              f"im2col floor / torch {floor / (t_torch * 1e3):.2f}")
    if args.json:
        write_results(args.json, "cpu", [{"piece": k, "ms": v} for k, v in rows.items()])


if __name__ == "__main__":
    main()
