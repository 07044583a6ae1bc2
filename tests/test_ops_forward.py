"""Forward passes against slow, obviously correct references written here with explicit loops
(CS231n's "naive" layers), in float64 and float32, on every device."""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minires as mr

DTYPES = [np.float64, np.float32]
HYPOTHESIS = settings(deadline=None, max_examples=12, derandomize=True, database=None,
                      suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(params=DTYPES, ids=["float64", "float32"])
def dtype(request):
    return np.dtype(request.param)


def tol(dtype):
    return dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=2e-5)


def make(array, dtype, device):
    """The test data in ``dtype`` as a tensor, and the same (rounded) values in float64 on the
    host for the reference."""
    a = np.asarray(array).astype(dtype)
    return mr.tensor(a, device=device), a.astype(np.float64)


def assert_close(t, expected, dtype):
    assert t.dtype == dtype, f"{t.dtype} != {dtype}"
    assert t.shape == expected.shape
    np.testing.assert_allclose(t.numpy(), expected, **tol(dtype))


def pair(v):
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


# ---------------------------------------------------------------------------------------------
# Naive references
# ---------------------------------------------------------------------------------------------

def conv2d_ref(x, w, b=None, stride=1, padding=0, dilation=1):
    (sh, sw), (ph, pw), (dh, dw) = pair(stride), pair(padding), pair(dilation)
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, f, oh, ow))
    for ni in range(n):
        for fi in range(f):
            for i in range(oh):
                for j in range(ow):
                    window = xp[ni, :, i * sh:i * sh + dh * (kh - 1) + 1:dh,
                                j * sw:j * sw + dw * (kw - 1) + 1:dw]
                    out[ni, fi, i, j] = (window * w[fi]).sum() + (b[fi] if b is not None else 0)
    return out


def pool_ref(x, kernel, stride=None, padding=0, kind="max"):
    (kh, kw), (ph, pw) = pair(kernel), pair(padding)
    sh, sw = pair(stride if stride is not None else kernel)
    n, c, h, w = x.shape
    fill = -np.inf if kind == "max" else 0.0
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    out = np.zeros((n, c, oh, ow))
    for ni in range(n):
        for ci in range(c):
            for i in range(oh):
                for j in range(ow):
                    window = xp[ni, ci, i * sh:i * sh + kh, j * sw:j * sw + kw]
                    out[ni, ci, i, j] = window.max() if kind == "max" else window.sum() / (kh * kw)
    return out


def adaptive_avg_pool_ref(x, output_size):
    oh, ow = pair(output_size)
    n, c, h, w = x.shape
    out = np.zeros((n, c, oh, ow))
    for i in range(oh):
        h0, h1 = (i * h) // oh, -(-((i + 1) * h) // oh)          # floor and ceil
        for j in range(ow):
            w0, w1 = (j * w) // ow, -(-((j + 1) * w) // ow)
            for ni in range(n):
                for ci in range(c):
                    cell = x[ni, ci, h0:h1, w0:w1]
                    out[ni, ci, i, j] = cell.sum() / cell.size
    return out


def batch_norm_ref(x, running_mean, running_var, weight, bias, training, momentum=0.1, eps=1e-5):
    """Returns (y, new_running_mean, new_running_var), channel by channel from the formulas."""
    c = x.shape[1]
    y = np.empty_like(x)
    rm, rv = running_mean.copy(), running_var.copy()
    for ci in range(c):
        values = x[:, ci]
        m = values.size
        if training:
            mu = values.sum() / m
            var = ((values - mu) ** 2).sum() / m                 # biased: normalises
            unbiased = ((values - mu) ** 2).sum() / (m - 1)      # unbiased: running_var
            rm[ci] = (1 - momentum) * rm[ci] + momentum * mu
            rv[ci] = (1 - momentum) * rv[ci] + momentum * unbiased
        else:
            mu, var = running_mean[ci], running_var[ci]
        out = (values - mu) / math.sqrt(var + eps)
        if weight is not None:
            out = out * weight[ci]
        if bias is not None:
            out = out + bias[ci]
        y[:, ci] = out
    return y, rm, rv


def cross_entropy_ref(z, target, reduction="mean"):
    losses = np.array([-math.log(math.exp(z[n, target[n]]) / sum(math.exp(v) for v in z[n]))
                       for n in range(z.shape[0])])
    return {"mean": losses.mean(), "sum": losses.sum(), "none": losses}[reduction]


def log_softmax_ref(z, dim):
    z = np.moveaxis(z, dim, -1)
    out = np.empty_like(z)
    for idx in np.ndindex(z.shape[:-1]):
        row = z[idx]
        out[idx] = [math.log(math.exp(v) / sum(math.exp(u) for u in row)) for v in row]
    return np.moveaxis(out, -1, dim)


# ---------------------------------------------------------------------------------------------
# conv2d
# ---------------------------------------------------------------------------------------------

CONV_CASES = {
    "basic": ((2, 3, 6, 6), (4, 3, 3, 3), 1, 1, 1, True),
    "stride2": ((2, 3, 7, 7), (4, 3, 3, 3), 2, 1, 1, False),
    "remainder": ((1, 2, 6, 7), (2, 2, 3, 3), 2, 0, 1, True),
    "non-square": ((2, 2, 6, 5), (3, 2, 3, 2), (2, 1), (1, 0), 1, True),
    "dilation": ((1, 2, 7, 8), (2, 2, 3, 2), 1, (2, 1), (2, 3), True),
    "1x1-stride2": ((2, 4, 5, 5), (3, 4, 1, 1), 2, 0, 1, True),
    "kernel-is-padded-input": ((1, 1, 3, 3), (2, 1, 5, 5), 1, 1, 1, True),
    "stride-gt-kernel": ((1, 1, 8, 8), (1, 1, 2, 2), 3, 0, 1, False),
}


@pytest.mark.parametrize("name", list(CONV_CASES))
def test_conv2d_forward(device, dtype, name):
    xs, ws, stride, padding, dilation, bias = CONV_CASES[name]
    rng = np.random.default_rng(len(name))
    x, xr = make(rng.standard_normal(xs), dtype, device)
    w, wr = make(rng.standard_normal(ws), dtype, device)
    b, br = make(rng.standard_normal(ws[0]), dtype, device) if bias else (None, None)
    y = mr.ops.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation)
    assert_close(y, conv2d_ref(xr, wr, br, stride, padding, dilation), dtype)


@st.composite
def conv_params(draw):
    n, c, f = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kh = draw(st.integers(1, min(5, (h + 2 * ph - 1) // dh + 1)))
    kw = draw(st.integers(1, min(5, (w + 2 * pw - 1) // dw + 1)))
    sh, sw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    return (n, c, h, w), (f, c, kh, kw), (sh, sw), (ph, pw), (dh, dw)


@HYPOTHESIS
@given(params=conv_params())
def test_conv2d_forward_random_shapes(device, params):
    xs, ws, stride, padding, dilation = params
    rng = np.random.default_rng(0)
    x, xr = make(rng.standard_normal(xs), np.float64, device)
    w, wr = make(rng.standard_normal(ws), np.float64, device)
    b, br = make(rng.standard_normal(ws[0]), np.float64, device)
    y = mr.ops.conv2d(x, w, b, stride, padding, dilation)
    assert_close(y, conv2d_ref(xr, wr, br, stride, padding, dilation), np.dtype(np.float64))


def test_conv_conv_batch_norm_chain(device, dtype):
    # conv2d returns an NCHW view of NHWC memory: the next conv, batch norm, flatten and
    # arithmetic must all read it correctly
    rng = np.random.default_rng(7)
    x, xr = make(rng.standard_normal((2, 3, 7, 7)), dtype, device)
    w1, w1r = make(rng.standard_normal((4, 3, 3, 3)) * 0.3, dtype, device)
    b1, b1r = make(rng.standard_normal(4), dtype, device)
    w2, w2r = make(rng.standard_normal((5, 4, 3, 3)) * 0.3, dtype, device)
    g, gr = make(rng.uniform(0.5, 1.5, 5), dtype, device)
    beta, betar = make(rng.standard_normal(5), dtype, device)
    rm, rmr = make(np.zeros(5), dtype, device)
    rv, rvr = make(np.ones(5), dtype, device)

    h1 = mr.ops.conv2d(x, w1, b1, padding=1)
    h2 = mr.ops.conv2d(h1, w2, stride=2, padding=1)
    y = mr.ops.batch_norm(h2, rm, rv, g, beta, True, 0.1, 1e-5)

    h1r = conv2d_ref(xr, w1r, b1r, 1, 1)
    h2r = conv2d_ref(h1r, w2r, None, 2, 1)
    yr, rm_new, rv_new = batch_norm_ref(h2r, rmr, rvr, gr, betar, True)
    loose = dict(rtol=1e-9, atol=1e-9) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-4)
    assert y.dtype == dtype
    np.testing.assert_allclose(h1.numpy(), h1r, **loose)
    np.testing.assert_allclose(y.numpy(), yr, **loose)
    np.testing.assert_allclose(rm.numpy(), rm_new, **loose)
    np.testing.assert_allclose(rv.numpy(), rv_new, **loose)
    np.testing.assert_allclose(h1.flatten(1).numpy(), h1r.reshape(2, -1), **loose)
    np.testing.assert_allclose(h1.reshape(-1).numpy(), h1r.reshape(-1), **loose)
    np.testing.assert_allclose(h1[:, 1:3, ::2].numpy(), h1r[:, 1:3, ::2], **loose)
    np.testing.assert_allclose((h1 + h1.relu()).sum(dim=(2, 3)).numpy(),
                               (h1r + np.maximum(h1r, 0)).sum(axis=(2, 3)), **loose)
    pooled = mr.ops.max_pool2d(h1, 2)
    np.testing.assert_allclose(pooled.numpy(), pool_ref(h1r, 2), **loose)


# ---------------------------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------------------------

POOL_CASES = {
    "2x2": ((2, 3, 4, 4), 2, None, 0),
    "3x3-s2-p1": ((2, 2, 7, 7), 3, 2, 1),
    "remainder": ((1, 2, 5, 6), 2, 2, 0),
    "stride-gt-kernel": ((1, 1, 8, 8), 2, 3, 0),
    "non-square": ((2, 1, 6, 5), (3, 2), (2, 1), (1, 0)),
    "all-negative-with-padding": ((1, 1, 4, 4), 3, 1, 1),
}


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("name", list(POOL_CASES))
def test_pool_forward(device, dtype, kind, name):
    xs, k, s, p = POOL_CASES[name]
    rng = np.random.default_rng(len(name))
    data = rng.standard_normal(xs)
    if name.startswith("all-negative"):
        data = -np.abs(data) - 1          # max padding must be -inf, not 0
    x, xr = make(data, dtype, device)
    fn = mr.ops.max_pool2d if kind == "max" else mr.ops.avg_pool2d
    assert_close(fn(x, k, s, p), pool_ref(xr, k, s, p, kind), dtype)


@st.composite
def pool_params(draw):
    h, w = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    kh, kw = min(kh, h + 2 * ph), min(kw, w + 2 * pw)
    ph, pw = min(ph, kh // 2), min(pw, kw // 2)
    return (draw(st.integers(1, 2)), 2, h, w), (kh, kw), \
        (draw(st.integers(1, 4)), draw(st.integers(1, 4))), (ph, pw)


@pytest.mark.parametrize("kind", ["max", "avg"])
@HYPOTHESIS
@given(params=pool_params())
def test_pool_forward_random_shapes(device, kind, params):
    xs, k, s, p = params
    x, xr = make(np.random.default_rng(1).standard_normal(xs), np.float64, device)
    fn = mr.ops.max_pool2d if kind == "max" else mr.ops.avg_pool2d
    assert_close(fn(x, k, s, p), pool_ref(xr, k, s, p, kind), np.dtype(np.float64))


@pytest.mark.parametrize("in_hw, out", [((4, 4), 1), ((5, 7), (2, 3)), ((7, 5), 3), ((3, 3), 3),
                                        ((4, 5), (6, 2)), ((8, 8), (1, 4))])
def test_adaptive_avg_pool2d_forward(device, dtype, in_hw, out):
    x, xr = make(np.random.default_rng(3).standard_normal((2, 3) + in_hw), dtype, device)
    assert_close(mr.ops.adaptive_avg_pool2d(x, out), adaptive_avg_pool_ref(xr, out), dtype)


# ---------------------------------------------------------------------------------------------
# Batch norm
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(4, 3), (3, 2, 2, 3), (6, 5, 4, 4), (2, 3, 5, 3)],
                         ids=["2d", "4d", "4d-wide-rows", "4d-odd-M"])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("momentum", [0.1, 0.5])
def test_batch_norm_running_stats_then_eval(device, dtype, shape, affine, momentum):
    rng = np.random.default_rng(11)
    c = shape[1]
    w, wr = make(rng.uniform(0.5, 1.5, c), dtype, device) if affine else (None, None)
    b, br = make(rng.standard_normal(c), dtype, device) if affine else (None, None)
    rm, rmr = make(np.zeros(c), dtype, device)
    rv, rvr = make(np.ones(c), dtype, device)
    loose = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-5)
    for step in range(3):
        x, xr = make(rng.standard_normal(shape) * (step + 1) + step, dtype, device)
        y = mr.ops.batch_norm(x, rm, rv, w, b, True, momentum, 1e-5)
        yr, rmr, rvr = batch_norm_ref(xr, rmr, rvr, wr, br, True, momentum)
        assert_close(y, yr, dtype)
        np.testing.assert_allclose(rm.numpy(), rmr, **loose)
        np.testing.assert_allclose(rv.numpy(), rvr, **loose)
        assert rm.dtype == dtype and rv.dtype == dtype
    x, xr = make(rng.standard_normal(shape), dtype, device)
    y = mr.ops.batch_norm(x, rm, rv, w, b, False, momentum, 1e-5)
    assert_close(y, batch_norm_ref(xr, rmr, rvr, wr, br, False)[0], dtype)
    np.testing.assert_allclose(rv.numpy(), rvr, **loose)     # evaluation changes no buffer


def test_batch_norm_running_var_is_unbiased(device):
    # one channel, values 0 and 2: biased variance 1, unbiased 2
    x = mr.tensor(np.array([[0.0], [2.0]]), device=device)
    rm = mr.tensor(np.zeros(1), device=device)
    rv = mr.tensor(np.ones(1), device=device)
    y = mr.ops.batch_norm(x, rm, rv, None, None, True)
    np.testing.assert_allclose(y.numpy(), [[-1 / math.sqrt(1 + 1e-5)], [1 / math.sqrt(1 + 1e-5)]])
    np.testing.assert_allclose(rm.numpy(), [0.1])
    np.testing.assert_allclose(rv.numpy(), [0.9 + 0.1 * 2.0])


# ---------------------------------------------------------------------------------------------
# Losses, softmax, linear, elementwise
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_forward(device, dtype, reduction):
    z, zr = make(np.random.default_rng(5).standard_normal((6, 4)) * 3, dtype, device)
    target = [0, 3, 3, 1, 2, 0]
    loss = mr.ops.cross_entropy(z, mr.tensor(target, device=device), reduction=reduction)
    expected = np.asarray(cross_entropy_ref(zr, target, reduction))
    assert_close(loss, expected, dtype)


def test_cross_entropy_is_stable_for_large_logits(device, dtype):
    z = mr.tensor(np.array([[1000.0, 0.0], [0.0, -1000.0], [500.0, 500.0]], dtype=dtype),
                  device=device, requires_grad=True)
    loss = mr.ops.cross_entropy(z, mr.tensor([0, 1, 1], device=device), reduction="none")
    np.testing.assert_allclose(loss.numpy(), [0.0, 1000.0, math.log(2)], rtol=1e-6)
    loss.sum().backward()
    np.testing.assert_allclose(z.grad.numpy(), [[0, 0], [1, -1], [0.5, -0.5]], atol=1e-6)


@pytest.mark.parametrize("shape, dim", [((3, 4), 1), ((3, 4), 0), ((2, 3, 4), -1)])
def test_log_softmax_and_softmax_forward(device, dtype, shape, dim):
    z, zr = make(np.random.default_rng(2).standard_normal(shape) * 2, dtype, device)
    expected = log_softmax_ref(zr, dim)
    assert_close(mr.ops.log_softmax(z, dim), expected, dtype)
    s = mr.ops.softmax(z, dim)
    assert_close(s, np.exp(expected), dtype)
    np.testing.assert_allclose(s.sum(dim=dim).numpy(), 1.0, rtol=1e-6)


@pytest.mark.parametrize("x_shape", [(4, 3), (2, 4, 3), (3,)])
def test_linear_and_matmul_forward(device, dtype, x_shape):
    rng = np.random.default_rng(4)
    x, xr = make(rng.standard_normal(x_shape), dtype, device)
    w, wr = make(rng.standard_normal((5, 3)), dtype, device)
    b, br = make(rng.standard_normal(5), dtype, device)
    expected = np.zeros(x_shape[:-1] + (5,))
    for idx in np.ndindex(x_shape[:-1]):
        for o in range(5):
            expected[idx + (o,)] = sum(xr[idx + (i,)] * wr[o, i] for i in range(3)) + br[o]
    assert_close(mr.ops.linear(x, w, b), expected, dtype)
    assert_close(x @ w.T, expected - br, dtype)


def test_elementwise_and_reductions_forward(device, dtype):
    rng = np.random.default_rng(6)
    x, xr = make(rng.uniform(0.5, 2.0, (2, 3, 4)), dtype, device)
    y, yr = make(rng.standard_normal((3, 1)), dtype, device)
    cases = [
        (x + y, xr + yr), (x - y, xr - yr), (x * y, xr * yr), (x / y, xr / yr), (-x, -xr),
        (x ** 1.5, xr ** 1.5), (x.exp(), np.exp(xr)), (x.log(), np.log(xr)),
        (x.sqrt(), np.sqrt(xr)), ((x - 1).abs(), np.abs(xr - 1)),
        ((x - 1).relu(), np.maximum(xr - 1, 0)), (x.sigmoid(), 1 / (1 + np.exp(-xr))),
        (x.tanh(), np.tanh(xr)), (x.clamp(0.8, 1.2), np.clip(xr, 0.8, 1.2)),
        (x.sum(), np.asarray(xr.sum())), (x.mean(dim=(0, 2)), xr.mean(axis=(0, 2))),
        (x.sum(dim=1, keepdim=True), xr.sum(axis=1, keepdims=True)),
        (x.max(dim=2).values, xr.max(axis=2)), (x.amax(dim=(0, 1)), xr.max(axis=(0, 1))),
        (x.min(), np.asarray(xr.min())),
    ]
    for got, expected in cases:
        assert_close(got, expected, dtype)


def test_sigmoid_is_stable(device, dtype):
    x = mr.tensor(np.array([-1000.0, 0.0, 1000.0], dtype=dtype), device=device)
    with np.errstate(all="raise"):
        np.testing.assert_allclose(x.sigmoid().numpy(), [0.0, 0.5, 1.0])


def test_zero_pad_shortcut_forward(device, dtype):
    x, xr = make(np.random.default_rng(8).standard_normal((2, 3, 5, 5)), dtype, device)
    y = mr.ops.zero_pad_shortcut(x, 6, 2)
    expected = np.zeros((2, 6, 3, 3))
    for n in range(2):
        for c in range(3):
            for i in range(3):
                for j in range(3):
                    expected[n, c, i, j] = xr[n, c, 2 * i, 2 * j]
    assert_close(y, expected, dtype)
