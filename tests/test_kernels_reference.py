"""Every fast kernel in minires.kernels against the obvious one in minires.kernels.reference, on
random small shapes in float64 on every test device; and the references themselves against
finite differences and against each other (conv = im2col then a matrix product)."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minires.backend import to_device, to_host
from minires.kernels import conv, group_norm, grouped_conv, loss, norm, pool
from minires.kernels import reference as ref

HYPOTHESIS = settings(max_examples=12, deadline=None, derandomize=True,
                      suppress_health_check=[HealthCheck.function_scoped_fixture])


def close(got, want, what):
    np.testing.assert_allclose(to_host(got), to_host(want), rtol=1e-10, atol=1e-12, err_msg=what)


def on(device, *arrays):
    return [to_device(np.ascontiguousarray(a), device) for a in arrays]


def distinct(rng, shape):
    """Values with no two equal (max pooling's argmax is then unambiguous)."""
    return rng.permutation(int(np.prod(shape))).reshape(shape) * 0.37 - 5.0


# ---------------------------------------------------------------------------------------------
# Convolution
# ---------------------------------------------------------------------------------------------

@st.composite
def conv_params(draw, groups=1):
    n = draw(st.integers(1, 2))
    c, f = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    h, w = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    kh = draw(st.integers(1, min(4, (h + 2 * ph - 1) // dh + 1)))
    kw = draw(st.integers(1, min(4, (w + 2 * pw - 1) // dw + 1)))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return (n, c, h, w), (f, c // groups, kh, kw), (sh, sw), (ph, pw), (dh, dw), \
        draw(st.booleans()), draw(st.integers(0, 2 ** 16))


def _conv_case(device, params):
    xs, ws, stride, padding, dilation, bias, seed = params
    rng = np.random.default_rng(seed)
    x, w, b = on(device, rng.standard_normal(xs), rng.standard_normal(ws),
                 rng.standard_normal(ws[0]))
    return x, w, (b if bias else None), stride, padding, dilation, rng


# the trap: (H + 2p - k) % s != 0, so the last rows and columns are under no window
UNEVEN = ((2, 2, 6, 8), (3, 2, 3, 3), (2, 3), (0, 1), (1, 1), True, 7)


@HYPOTHESIS
@given(params=conv_params())
def test_conv2d_against_reference(device, params):
    _check_conv(device, params)


def test_conv2d_against_reference_uneven_stride(device):
    _check_conv(device, UNEVEN)


def _check_conv(device, params):
    x, w, b, stride, padding, dilation, rng = _conv_case(device, params)
    y, cache = conv.conv2d_forward(x, w, b, stride, padding, dilation)
    y_ref, cache_ref = ref.conv2d_forward(x, w, b, stride, padding, dilation)
    close(y, y_ref, "conv2d forward")
    (dy,) = on(device, rng.standard_normal(y_ref.shape))
    for name, got, want in zip(("dx", "dw", "db"), conv.conv2d_backward(dy, cache),
                               ref.conv2d_backward(dy, cache_ref)):
        if want is None:
            assert got is None, name
        else:
            close(got, want, f"conv2d {name}")


@HYPOTHESIS
@given(params=conv_params(groups=2), groups=st.sampled_from([1, 2]))
def test_grouped_conv2d_against_reference(device, params, groups):
    x, w, b, stride, padding, dilation, rng = _conv_case(device, params)
    if groups == 1:                     # the drawn shapes are for 2 groups: use them whole
        (w,) = on(device, rng.standard_normal((w.shape[0], x.shape[1]) + w.shape[2:]))
    y, cache = grouped_conv.grouped_conv2d_forward(x, w, b, stride, padding, dilation, groups)
    y_ref, cache_ref = ref.grouped_conv2d_forward(x, w, b, stride, padding, groups, dilation)
    close(y, y_ref, "grouped conv2d forward")
    (dy,) = on(device, rng.standard_normal(y_ref.shape))
    for name, got, want in zip(("dx", "dw", "db"), grouped_conv.grouped_conv2d_backward(dy, cache),
                               ref.grouped_conv2d_backward(dy, cache_ref)):
        if want is None:
            assert got is None, name
        else:
            close(got, want, f"grouped conv2d {name}")


@HYPOTHESIS
@given(params=conv_params())
def test_reference_conv_is_im2col_then_a_product(device, params):
    """Two references that share no code agree: the definition's loops, and the students'
    im2col followed by ``cols @ w.reshape(F, -1).T``; col2im is im2col's adjoint."""
    x, w, b, stride, padding, dilation, rng = _conv_case(device, params)
    n, f, kh, kw = x.shape[0], w.shape[0], w.shape[2], w.shape[3]
    y_ref, _ = ref.conv2d_forward(x, w, None, stride, padding, dilation)
    cols = ref.im2col(x, kh, kw, stride, padding, dilation)
    y = (cols @ w.reshape(f, -1).T).reshape(n, y_ref.shape[2], y_ref.shape[3], f)
    close(y.transpose(0, 3, 1, 2), y_ref, "im2col @ w")
    (dcols,) = on(device, rng.standard_normal(cols.shape))
    dx = ref.col2im(dcols, x.shape, kh, kw, stride, padding, dilation)
    # <im2col(x), dcols> = <x, col2im(dcols)> for every x, dcols
    close((cols * dcols).sum(), (x * dx).sum(), "col2im is the adjoint of im2col")


def test_reference_im2col_matches_the_checkers(device):
    from minires.course.checks_kernels import reference_col2im, reference_im2col
    x, _, _, stride, padding, _, rng = _conv_case(device, UNEVEN)
    close(ref.im2col(x, 3, 3, 2, 1), reference_im2col(x, 3, 3, 2, 1), "im2col")
    cols = ref.im2col(x, 3, 3, 2, 1)
    (dcols,) = on(device, rng.standard_normal(cols.shape))
    close(ref.col2im(dcols, x.shape, 3, 3, 2, 1),
          reference_col2im(dcols, x.shape, 3, 3, 2, 1), "col2im")


# ---------------------------------------------------------------------------------------------
# Batch norm, group norm
# ---------------------------------------------------------------------------------------------

@st.composite
def norm_params(draw):
    n, c = draw(st.integers(2, 4)), draw(st.integers(1, 6))
    spatial = draw(st.sampled_from([(), (1, 1), (2, 3), (4, 4), (8, 8), (5, 7)]))
    return (n, c) + spatial, draw(st.booleans()), draw(st.integers(0, 2 ** 16))


@HYPOTHESIS
@given(params=norm_params())
def test_batch_norm_train_against_reference(device, params):
    shape, channels_last, seed = params
    rng = np.random.default_rng(seed)
    c = shape[1]
    offsets = 3 * rng.standard_normal((1, c) + (1,) * (len(shape) - 2))   # far from zero mean
    x_host = rng.standard_normal(shape) * 2 + offsets
    x, gamma, beta, rm, rv = on(device, x_host, rng.standard_normal(c) + 1.5,
                                rng.standard_normal(c), rng.standard_normal(c),
                                rng.uniform(0.5, 2.0, c))
    if channels_last and x.ndim == 4:    # as a convolution's output is: NCHW view of NHWC memory
        (x_nhwc,) = on(device, x_host.transpose(0, 2, 3, 1))
        x = x_nhwc.transpose(0, 3, 1, 2)
    rm_ref, rv_ref = ref.batch_norm_update_running(rm, rv, x, 0.1)
    y, cache = norm.batch_norm_forward(x, rm, rv, gamma, beta, True, 0.1, 1e-5)
    y_ref, cache_ref = ref.batch_norm_forward(x, gamma, beta, 1e-5)
    close(y, y_ref, "batch norm forward")
    close(rm, rm_ref, "running mean")
    close(rv, rv_ref, "running var")
    (dy,) = on(device, rng.standard_normal(shape))
    for name, got, want in zip(("dx", "dgamma", "dbeta"), norm.batch_norm_backward(dy, cache),
                               ref.batch_norm_backward(dy, cache_ref)):
        close(got, want, f"batch norm {name}")


@HYPOTHESIS
@given(params=norm_params())
def test_batch_norm_eval_against_reference(device, params):
    shape, _, seed = params
    rng = np.random.default_rng(seed)
    c = shape[1]
    x, gamma, beta, rm, rv, dy = on(device, rng.standard_normal(shape), rng.standard_normal(c),
                                    rng.standard_normal(c), rng.standard_normal(c),
                                    rng.uniform(0.5, 2.0, c), rng.standard_normal(shape))
    y, cache = norm.batch_norm_forward(x, rm, rv, gamma, beta, False, 0.1, 1e-5)
    y_ref, cache_ref = ref.batch_norm_eval_forward(x, gamma, beta, rm, rv, 1e-5)
    close(y, y_ref, "batch norm eval forward")
    for name, got, want in zip(("dx", "dgamma", "dbeta"), norm.batch_norm_backward(dy, cache),
                               ref.batch_norm_eval_backward(dy, cache_ref)):
        close(got, want, f"batch norm eval {name}")


@HYPOTHESIS
@given(params=norm_params(), groups=st.integers(1, 3))
def test_group_norm_against_reference(device, params, groups):
    shape, _, seed = params
    rng = np.random.default_rng(seed)
    shape = (shape[0], shape[1] * groups) + shape[2:]
    c = shape[1]
    x, gamma, beta, dy = on(device, rng.standard_normal(shape) + 2, rng.standard_normal(c),
                            rng.standard_normal(c), rng.standard_normal(shape))
    y, cache = group_norm.group_norm_forward(x, groups, gamma, beta, 1e-5)
    y_ref, cache_ref = ref.group_norm_forward(x, groups, gamma, beta, 1e-5)
    close(y, y_ref, "group norm forward")
    for name, got, want in zip(("dx", "dgamma", "dbeta"),
                               group_norm.group_norm_backward(dy, cache),
                               ref.group_norm_backward(dy, cache_ref)):
        close(got, want, f"group norm {name}")


# ---------------------------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------------------------

@st.composite
def pool_params(draw):
    h, w = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    kh, kw = min(kh, h + 2 * ph), min(kw, w + 2 * pw)
    ph, pw = min(ph, kh // 2), min(pw, kw // 2)      # PyTorch's rule: padding <= kernel / 2
    return (draw(st.integers(1, 2)), draw(st.integers(1, 3)), h, w), (kh, kw), \
        (draw(st.integers(1, 3)), draw(st.integers(1, 3))), (ph, pw), draw(st.integers(0, 2 ** 16))


@pytest.mark.parametrize("kind", ["max", "avg"])
@HYPOTHESIS
@given(params=pool_params())
def test_pool_against_reference(device, kind, params):
    _check_pool(device, kind, params)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_against_reference_uneven_stride(device, kind):
    # (H - k) % s != 0 and overlapping windows (kernel 3, stride 2)
    _check_pool(device, kind, ((2, 2, 6, 7), (3, 3), (2, 2), (0, 1), 3))


def _check_pool(device, kind, params):
    xs, k, s, p, seed = params
    rng = np.random.default_rng(seed)
    x, = on(device, distinct(rng, xs))
    fast_f, fast_b = ((pool.max_pool2d_forward, pool.max_pool2d_backward) if kind == "max"
                      else (pool.avg_pool2d_forward, pool.avg_pool2d_backward))
    ref_f, ref_b = ((ref.max_pool_forward, ref.max_pool_backward) if kind == "max"
                    else (ref.avg_pool_forward, ref.avg_pool_backward))
    y, cache = fast_f(x, k, s, p)
    y_ref, cache_ref = ref_f(x, k, s, p)
    close(y, y_ref, f"{kind} pool forward")
    (dy,) = on(device, rng.standard_normal(y_ref.shape))
    close(fast_b(dy, cache), ref_b(dy, cache_ref), f"{kind} pool backward")


@pytest.mark.parametrize("in_hw, out", [((4, 4), (1, 1)), ((5, 7), (2, 3)), ((7, 5), (3, 3)),
                                        ((4, 5), (6, 2)), ((8, 8), (1, 4))])
def test_adaptive_avg_pool_against_reference(device, in_hw, out):
    rng = np.random.default_rng(0)
    x, = on(device, rng.standard_normal((2, 3) + in_hw))
    y, cache = pool.adaptive_avg_pool2d_forward(x, out)
    y_ref, cache_ref = ref.adaptive_avg_pool_forward(x, out)
    close(y, y_ref, "adaptive average pool forward")
    (dy,) = on(device, rng.standard_normal(y_ref.shape))
    close(pool.adaptive_avg_pool2d_backward(dy, cache),
          ref.adaptive_avg_pool_backward(dy, cache_ref), "adaptive average pool backward")


# ---------------------------------------------------------------------------------------------
# Softmax cross-entropy, ReLU
# ---------------------------------------------------------------------------------------------

@HYPOTHESIS
@given(n=st.integers(1, 6), k=st.integers(1, 7), scale=st.sampled_from([1.0, 1000.0]),
       seed=st.integers(0, 2 ** 16))
def test_cross_entropy_against_reference(device, n, k, scale, seed):
    rng = np.random.default_rng(seed)
    z, t = on(device, rng.standard_normal((n, k)) * scale, rng.integers(0, k, n))
    loss_ref, dz_ref = ref.softmax_cross_entropy(z, t)
    for reduction, factor in (("mean", 1.0), ("sum", float(n))):
        value, cache = loss.cross_entropy_forward(z, t, reduction)
        close(value, loss_ref * factor, f"cross-entropy ({reduction})")
        (dloss,) = on(device, np.array(2.5))
        close(loss.cross_entropy_backward(dloss, cache), dz_ref * (2.5 * factor),
              f"cross-entropy gradient ({reduction})")


def test_relu_reference_against_the_op(device):
    import minires as mr
    rng = np.random.default_rng(0)
    x_host, dy_host = rng.standard_normal((3, 4, 2)), rng.standard_normal((3, 4, 2))
    t = mr.tensor(x_host, requires_grad=True, device=device)
    mr.ops.relu(t).backward(mr.tensor(dy_host, device=device))
    x, dy = on(device, x_host, dy_host)
    y, cache = ref.relu_forward(x)
    close(y, np.maximum(x_host, 0), "relu forward")
    close(ref.relu_backward(dy, cache), t.grad.numpy(), "relu backward")


# ---------------------------------------------------------------------------------------------
# The references against finite differences (host, float64)
# ---------------------------------------------------------------------------------------------

def numeric_grad(f, x, dy, h=1e-6):
    """d <f(x), dy> / dx by central differences."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        up = (f(x) * dy).sum()
        x[i] = old - h
        down = (f(x) * dy).sum()
        x[i] = old
        grad[i] = (up - down) / (2 * h)
    return grad


def assert_grad(got, f, x, dy, what):
    np.testing.assert_allclose(got, numeric_grad(f, x, dy), rtol=1e-6, atol=1e-7, err_msg=what)


def test_reference_conv_gradients_by_finite_differences():
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((2, 2, 5, 6)), rng.standard_normal((3, 2, 3, 2)), \
        rng.standard_normal(3)
    args = ((2, 1), (1, 0), (1, 2))
    y, cache = ref.conv2d_forward(x, w, b, *args)
    dy = rng.standard_normal(y.shape)
    dx, dw, db = ref.conv2d_backward(dy, cache)
    assert_grad(dx, lambda v: ref.conv2d_forward(v, w, b, *args)[0], x, dy, "dx")
    assert_grad(dw, lambda v: ref.conv2d_forward(x, v, b, *args)[0], w, dy, "dw")
    assert_grad(db, lambda v: ref.conv2d_forward(x, w, v, *args)[0], b, dy, "db")


@pytest.mark.parametrize("which", ["train", "eval", "group"])
def test_reference_norm_gradients_by_finite_differences(which):
    rng = np.random.default_rng(1)
    x, gamma, beta = rng.standard_normal((3, 4, 2, 3)) + 1, rng.standard_normal(4), \
        rng.standard_normal(4)
    rm, rv = rng.standard_normal(4), rng.uniform(0.5, 2, 4)
    forward, backward = {
        "train": (lambda x_, g_, b_: ref.batch_norm_forward(x_, g_, b_, 1e-5),
                  ref.batch_norm_backward),
        "eval": (lambda x_, g_, b_: ref.batch_norm_eval_forward(x_, g_, b_, rm, rv, 1e-5),
                 ref.batch_norm_eval_backward),
        "group": (lambda x_, g_, b_: ref.group_norm_forward(x_, 2, g_, b_, 1e-5),
                  ref.group_norm_backward)}[which]
    y, cache = forward(x, gamma, beta)
    dy = rng.standard_normal(y.shape)
    dx, dgamma, dbeta = backward(dy, cache)
    assert_grad(dx, lambda v: forward(v, gamma, beta)[0], x, dy, "dx")
    assert_grad(dgamma, lambda v: forward(x, v, beta)[0], gamma, dy, "dgamma")
    assert_grad(dbeta, lambda v: forward(x, gamma, v)[0], beta, dy, "dbeta")


@pytest.mark.parametrize("kind", ["max", "avg", "adaptive"])
def test_reference_pool_gradients_by_finite_differences(kind):
    rng = np.random.default_rng(2)
    x = distinct(rng, (2, 2, 5, 6)) * 0.1
    forward, backward = {
        "max": (lambda v: ref.max_pool_forward(v, 3, 2, 1), ref.max_pool_backward),
        "avg": (lambda v: ref.avg_pool_forward(v, 3, 2, 1), ref.avg_pool_backward),
        "adaptive": (lambda v: ref.adaptive_avg_pool_forward(v, (2, 4)),
                     ref.adaptive_avg_pool_backward)}[kind]
    y, cache = forward(x)
    dy = rng.standard_normal(y.shape)
    assert_grad(backward(dy, cache), lambda v: forward(v)[0], x, dy, f"{kind} pool dx")


def test_reference_cross_entropy_gradient_by_finite_differences():
    rng = np.random.default_rng(3)
    z, t = rng.standard_normal((4, 5)), rng.integers(0, 5, 4)
    _, dz = ref.softmax_cross_entropy(z, t)
    assert_grad(dz, lambda v: ref.softmax_cross_entropy(v, t)[0], z, np.array(1.0), "dlogits")
