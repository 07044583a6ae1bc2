"""Checkers for the kernels: im2col/col2im, conv2d, ReLU, max and average pooling, softmax
cross-entropy. The references are the naive kernels of ``minires.kernels.reference`` (loops over
offsets and channels, in the student's own layout and argument order, sharing no code with the
fast kernels), run on the same device as the student's code.
"""
from __future__ import annotations

import numpy

from ..kernels import reference
from .verdict import Checker

GENERIC_CONV = ("compare with the definition: y[n, f, i, j] = b[f] + sum over c, a, b of "
                "w[f, c, a, b] * x_pad[n, c, i*s + a, j*s + b]")
OVERLAP = ("windows overlap (kernel larger than the stride): a pixel under several windows gets "
           "the sum of their gradients, so col2im must add (+=), not assign")
PADDING = ("padding: pad H and W by p on both sides, Ho = (H + 2p - kh) // s + 1, and crop the "
           "padding off dx (dx has x's shape)")
RECTANGLE = ("kh != kw: the kernel's rows (kh) slide along H and its columns (kw) along W; "
             "Ho = (H + 2p - kh) // s + 1, Wo = (W + 2p - kw) // s + 1")
UNEVEN = ("(H + 2p - k) % s != 0: the last rows/columns of the padded input are under no window: "
          "Ho = (H + 2p - k) // s + 1 floors, those pixels get a zero gradient, and dx must still "
          "have x's shape (allocate it from x's shape, not from Ho * s)")
COLUMN_ORDER = ("columns in the wrong order: order them like w.reshape(F, -1), channel first, "
                "then kernel row, then kernel column, so that a convolution is cols @ "
                "w.reshape(F, -1).T")

# (x shape, filters, kh, kw, stride, padding, what the case adds, its trap, numeric check?)
CONV_CASES = [
    ((2, 3, 4, 4), 2, 2, 2, 2, 0, "2x2 windows, stride 2: no overlap, no padding", GENERIC_CONV,
     False),
    ((2, 3, 5, 6), 3, 3, 3, 1, 0, "3x3 windows, stride 1: windows overlap", OVERLAP, False),
    ((2, 2, 5, 5), 3, 3, 3, 1, 1, "padding 1", PADDING, True),
    ((1, 2, 6, 5), 2, 3, 2, 1, 1, "a 3x2 kernel", RECTANGLE, False),
    ((2, 2, 6, 8), 3, 3, 3, 2, 0, "stride 2 with (H + 2p - k) % s != 0", UNEVEN, True),
]


def _conv_cases(ck: Checker):
    """The designed cases, then one with a random shape, kernel, stride and padding."""
    rng = ck.rng
    k = int(rng.integers(1, 4))
    s, p = int(rng.integers(1, 3)), int(rng.integers(0, k))     # padding < kernel
    x_shape = (int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(k, 9)),
               int(rng.integers(k, 9)))
    return CONV_CASES + [(x_shape, int(rng.integers(1, 4)), k, k, s, p, "a random shape",
                          GENERIC_CONV, False)]


def _describe(x_shape, w_shape, stride, padding, adds):
    return f"x {x_shape}, w {w_shape}, stride {stride}, padding {padding} ({adds})"


def reference_im2col(x, kh, kw, s, p):
    """The student's layout: (N*Ho*Wo, C*kh*kw), columns ordered like ``w.reshape(F, -1)``
    (the naive kernel of :mod:`minires.kernels.reference`, a loop over the kernel offsets)."""
    return reference.im2col(x, kh, kw, s, p)


def reference_col2im(cols, x_shape, kh, kw, s, p):
    """The adjoint of :func:`reference_im2col`, from :mod:`minires.kernels.reference`."""
    return reference.col2im(cols, x_shape, kh, kw, s, p)


def _wrong_column_order(cols, c, kh, kw):
    """The patches ordered (kh, kw, C) instead of (C, kh, kw): the columns' classic mix-up."""
    m = cols.shape[0]
    return cols.reshape(m, c, kh, kw).transpose(0, 2, 3, 1).reshape(m, c * kh * kw)


def check_im2col(ck: Checker):
    for x_shape, _, kh, kw, s, p, adds, trap, _ in _conv_cases(ck):
        with ck.case(f"x {x_shape}, kernel {kh}x{kw}, stride {s}, padding {p} ({adds})", trap):
            x = ck.randn(*x_shape)
            x_d = ck.dev(x)
            cols = ck.call("im2col", x_d, kh, kw, s, p)
            cols_ref = reference_im2col(x_d, kh, kw, s, p)
            wrong_order = _wrong_column_order(cols_ref, x_shape[1], kh, kw)
            ck.compare("im2col's cols", cols, cols_ref, wrong=[(wrong_order, COLUMN_ORDER)])
            dcols = ck.randn(*cols_ref.shape)       # col2im is graded even when im2col is not
            dcols_d = ck.dev(dcols)
            dx = ck.call("col2im", dcols_d, x_shape, kh, kw, s, p)
            ck.compare("col2im's dx", dx, reference_col2im(dcols_d, x_shape, kh, kw, s, p))
            # col2im is the adjoint of im2col: the gradient of sum(im2col(x) * dcols)
            ck.numeric("col2im's dx", dx,
                       lambda v: ck.host(ck.call("im2col", ck.dev(v), kh, kw, s, p), "cols"),
                       x, dcols)


def check_conv2d(ck: Checker):
    for x_shape, f, kh, kw, s, p, adds, trap, numeric in _conv_cases(ck):
        w_shape = (f, x_shape[1], kh, kw)
        with ck.case(_describe(x_shape, w_shape, s, p, adds), trap):
            x, w, b = ck.randn(*x_shape), ck.randn(*w_shape), ck.randn(f)
            x_d, w_d, b_d = ck.dev(x), ck.dev(w), ck.dev(b)
            y, cache = ck.unpack(ck.call("conv2d_forward", x_d, w_d, b_d, s, p), 2,
                                 "conv2d_forward", "y, cache")
            y_ref, ref_cache = reference.conv2d_forward(x_d, w_d, b_d, s, p)
            ck.compare("conv2d_forward's y", y, y_ref)
            dy = ck.randn(*ck.host(y_ref, "y").shape)
            grads = ck.unpack(ck.call("conv2d_backward", ck.dev(dy), cache), 3,
                              "conv2d_backward", "dx, dw, db")
            refs = reference.conv2d_backward(ck.dev(dy), ref_cache)
            for name, got, ref in zip(("dx", "dw", "db"), grads, refs):
                ck.compare(f"conv2d_backward's {name}", got, ref)
            if not numeric:
                continue

            def forward(x_, w_, b_):
                return ck.host(ck.call("conv2d_forward", ck.dev(x_), ck.dev(w_), ck.dev(b_), s,
                                       p)[0], "y")
            ck.numeric("conv2d_backward's dx", grads[0], lambda v: forward(v, w, b), x, dy)
            ck.numeric("conv2d_backward's dw", grads[1], lambda v: forward(x, v, b), w, dy)
            ck.numeric("conv2d_backward's db", grads[2], lambda v: forward(x, w, v), b, dy)


RELU_MASK = ("mask the gradient with the input's sign (x > 0, or y > 0), not the gradient's own "
             "sign")
RELU_THROUGH = "ReLU's gradient is zero where x <= 0: dx = dy * (x > 0)"


def check_relu(ck: Checker):
    for shape in ((4, 5), (2, 3, 4, 4)):
        with ck.case(f"x {shape}", "relu: y = max(x, 0), dx = dy * (x > 0)"):
            x, dy = ck.distinct(*shape), ck.randn(*shape)
            y, cache = ck.unpack(ck.call("relu_forward", ck.dev(x)), 2, "relu_forward",
                                 "y, cache")
            ck.compare("relu_forward's y", y, numpy.maximum(x, 0))
            dx = ck.call("relu_backward", ck.dev(dy), cache)
            wrong = [(dy * (dy > 0), RELU_MASK), (dy, RELU_THROUGH)]
            ck.compare("relu_backward's dx", dx, _relu_reference(ck, x, dy), wrong)
            ck.numeric("relu_backward's dx", dx,
                       lambda v: ck.host(ck.call("relu_forward", ck.dev(v))[0], "y"), x, dy)


def _relu_reference(ck, x, dy):
    """minires's ReLU op (it has no separate kernel): its gradient for ``dy``."""
    from ..creation import tensor
    from ..ops import relu
    t = tensor(x, requires_grad=True, device=ck.device)
    relu(t).backward(tensor(dy, device=ck.device))
    return t.grad.array


POOL_GENERIC = ("pool each (kh, kw) window of each channel: y[n, c, i, j] = pool of "
                "x[n, c, i*s:i*s+k, j*s:j*s+k]")
POOL_OVERLAP = ("windows overlap (kernel larger than the stride): an input in several windows "
                "collects the gradient of each, so add (+=) into dx, do not assign")
POOL_UNEVEN = ("(H - k) % s != 0: the last rows/columns are in no window: Ho = (H - k) // s + 1 "
               "floors, those inputs get a zero gradient, and dx has x's shape")
MAX_ROUTE = ("max pooling routes each dy to the single input that won its window (the argmax), "
             "not to every input of the window")
AVG_SCALE = ("average pooling spreads dy / (kh * kw) over its window: divide by the window's "
             "size")
AVG_FORWARD = "average pooling divides each window's sum by kh * kw"

# (x shape, kernel, stride, what the case adds, its trap)
POOL_CASES = [
    ((2, 3, 4, 4), 2, 2, "2x2 windows, stride 2: no overlap", POOL_GENERIC),
    ((2, 2, 5, 5), 3, 1, "3x3 windows, stride 1: windows overlap", POOL_OVERLAP),
    ((2, 2, 5, 7), 2, 2, "H = 5, W = 7 with k = 2, s = 2: (H - k) % s != 0", POOL_UNEVEN),
]


def _check_pool(ck: Checker, kind: str):
    fwd, bwd = f"{kind}_pool_forward", f"{kind}_pool_backward"
    for x_shape, k, s, adds, trap in POOL_CASES:
        with ck.case(f"x {x_shape}, kernel {k}, stride {s} ({adds})", trap):
            x = ck.distinct(*x_shape)
            x_d = ck.dev(x)
            y, cache = ck.unpack(ck.call(fwd, x_d, k, s), 2, fwd, "y, cache")
            max_ref, max_cache = reference.max_pool_forward(x_d, k, s)
            avg_ref, avg_cache = reference.avg_pool_forward(x_d, k, s)
            y_ref = max_ref if kind == "max" else avg_ref
            ck.compare(f"{fwd}'s y", y, y_ref,
                       wrong=[] if kind == "max" else [(avg_ref * (k * k), AVG_FORWARD)])
            dy = ck.randn(*ck.host(y_ref, "y").shape)
            dx = ck.call(bwd, ck.dev(dy), cache)
            avg_dx = reference.avg_pool_backward(ck.dev(dy), avg_cache)
            if kind == "max":
                ref = reference.max_pool_backward(ck.dev(dy), max_cache)
                wrong = [(avg_dx, MAX_ROUTE), (avg_dx * (k * k), MAX_ROUTE)]
            else:
                ref, wrong = avg_dx, [(avg_dx * (k * k), AVG_SCALE)]
            ck.compare(f"{bwd}'s dx", dx, ref, wrong)
            ck.numeric(f"{bwd}'s dx", dx,
                       lambda v: ck.host(ck.call(fwd, ck.dev(v), k, s)[0], "y"), x, dy)


def check_max_pool(ck: Checker):
    _check_pool(ck, "max")


def check_avg_pool(ck: Checker):
    _check_pool(ck, "avg")


CE_GENERIC = ("loss = mean over the batch of -log softmax(logits)[n, y[n]]; dlogits = "
              "(softmax(logits) - onehot(y)) / N")
CE_STABLE = ("large logits: exp overflows to inf: subtract each row's max before exp (it does "
             "not change the softmax)")
CE_MEAN = "the loss is the batch mean, so dlogits = (softmax - onehot(y)) / N: divide by N"


def check_softmax_cross_entropy(ck: Checker):
    for (n, k), scale, adds, trap in (((5, 4), 1.0, "small logits", CE_GENERIC),
                                      ((6, 10), 1000.0, "logits around +-1000", CE_STABLE)):
        with ck.case(f"logits ({n}, {k}) ({adds})", trap):
            logits = ck.randn(n, k) * scale
            labels = ck.rng.integers(0, k, n)
            z_d, y_d = ck.dev(logits), ck.dev(labels)
            loss, dz = ck.unpack(ck.call("softmax_cross_entropy", z_d, y_d), 2,
                                 "softmax_cross_entropy", "loss, dlogits")
            ref_loss, ref_dz = reference.softmax_cross_entropy(z_d, y_d)
            ck.compare("the loss", loss, ref_loss)
            ck.compare("dlogits", dz, ref_dz, wrong=[(ref_dz * n, CE_MEAN)])
            if scale == 1.0:
                ck.numeric("dlogits", dz, lambda v: ck.host(
                    ck.call("softmax_cross_entropy", ck.dev(v), y_d)[0], "loss"), logits, 1.0)
