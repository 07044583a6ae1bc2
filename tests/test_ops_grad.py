"""float64 gradient checks (central differences, ``mr.gradcheck``) for every op on every device,
and tests of ``gradcheck`` itself.

Inputs have no ties where an op is not differentiable at ties (max, pools, relu, abs, clamp), so the
numerical derivative is well defined: values come from a scaled random permutation.
"""
import math
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minires as mr
from minires.autograd import Function

HYPOTHESIS = settings(deadline=None, max_examples=12, derandomize=True, database=None,
                      suppress_health_check=[HealthCheck.function_scoped_fixture])


def leaf(array, device):
    return mr.tensor(np.asarray(array, dtype=np.float64), device=device, requires_grad=True)


def check(fn, arrays, device, **kwargs):
    """gradcheck ``fn`` at float64 leaves built from ``arrays`` (None entries are passed as is)."""
    inputs = [leaf(a, device) if a is not None else None for a in arrays]
    assert mr.gradcheck(fn, inputs, **kwargs) is True
    return inputs


def rng_for(*key):
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def distinct(shape, rng, spacing=0.1):
    """Values with no ties: a random permutation, spaced by ``spacing`` and centred on 0."""
    size = math.prod(shape)
    return ((rng.permutation(size) - size / 2 + 0.5) * spacing).reshape(shape)


def away_from(shape, rng, points=(0.0,), gap=0.05, low=-1.5, high=1.5):
    """Random values at least ``gap`` from each of ``points`` (kinks of abs/relu/clamp)."""
    x = rng.uniform(low, high, size=shape)
    for p in points:
        near = np.abs(x - p) < gap
        x[near] = p + np.where(x[near] >= p, gap, -gap) * 2
    return x


# ---------------------------------------------------------------------------------------------
# Elementwise
# ---------------------------------------------------------------------------------------------

POSITIVE = "positive"
KINK0 = "kink0"
ANY = "any"
UNARY = {
    "neg": (lambda x: -x, ANY),
    "exp": (lambda x: x.exp(), ANY),
    "mr.exp": (lambda x: mr.exp(x), ANY),
    "log": (lambda x: x.log(), POSITIVE),
    "sqrt": (lambda x: x.sqrt(), POSITIVE),
    "abs": (lambda x: x.abs(), KINK0),
    "builtin-abs": (lambda x: abs(x), KINK0),
    "relu": (lambda x: x.relu(), KINK0),
    "ops.relu": (lambda x: mr.ops.relu(x), KINK0),
    "sigmoid": (lambda x: x.sigmoid(), ANY),
    "tanh": (lambda x: mr.tanh(x), ANY),
    "pow2": (lambda x: x ** 2, ANY),
    "pow3": (lambda x: x.pow(3), ANY),
    "pow-half": (lambda x: x ** 0.5, POSITIVE),
    "pow-neg": (lambda x: x ** -1.5, POSITIVE),
    "clamp": (lambda x: x.clamp(-0.5, 0.5), "clamp"),
    "clamp-min": (lambda x: mr.clamp(x, min=-0.5), "clamp"),
    "clamp-max": (lambda x: x.clamp(max=0.5), "clamp"),
    "softmax-like": (lambda x: x.exp() / x.exp().sum(dim=1, keepdim=True), ANY),
}


@pytest.mark.parametrize("name", list(UNARY))
def test_unary_gradcheck(device, name):
    fn, domain = UNARY[name]
    rng = rng_for(name)
    if domain == POSITIVE:
        x = rng.uniform(0.5, 2.0, size=(3, 4))
    elif domain == KINK0:
        x = away_from((3, 4), rng)
    elif domain == "clamp":
        x = away_from((3, 4), rng, points=(-0.5, 0.5))
    else:
        x = rng.standard_normal((3, 4))
    check(fn, [x], device)


def test_relu_abs_clamp_gradient_values(device):
    x = leaf([-2.0, -0.25, 0.25, 2.0], device)
    (x.relu() + x.abs() * 10 + x.clamp(-1, 1) * 100).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0 - 10 + 0, 0 - 10 + 100, 1 + 10 + 100, 1 + 10])


BINARY = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b, "ops.add": lambda a, b: mr.ops.add(a, b),
    "ops.div": lambda a, b: mr.ops.div(a, b),
}
SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((4,), (3, 4)), ((2, 1, 4), (3, 1)), ((3, 4), ()),
          ((), (2, 3)), ((1,), (2, 3)), ((2, 3, 1), (1, 1, 4))]


@pytest.mark.parametrize("name", list(BINARY))
@pytest.mark.parametrize("sa, sb", SHAPES, ids=[f"{a}-{b}" for a, b in SHAPES])
def test_binary_broadcast_gradcheck(device, name, sa, sb):
    rng = rng_for(name, sa, sb)
    a = rng.standard_normal(sa)
    b = rng.uniform(0.5, 2.0, size=sb) * rng.choice([-1, 1], size=sb)   # away from 0 for div
    check(BINARY[name], [a, b], device)


@pytest.mark.parametrize("fn", [lambda x: x + 2.5, lambda x: 2.5 - x, lambda x: x * -1.5,
                                lambda x: 3 / x, lambda x: x / 4, lambda x: 1 + x * x],
                         ids=["add", "rsub", "mul", "rdiv", "div", "radd"])
def test_scalar_operand_gradcheck(device, fn):
    check(fn, [rng_for("scalar").uniform(0.5, 2.0, size=(2, 3))], device)


def test_where_gradcheck(device):
    rng = rng_for("where")
    cond = mr.tensor(rng.random((3, 4)) > 0.5, device=device)
    check(lambda a, b: mr.where(cond, a, b), [rng.standard_normal((3, 4)),
                                               rng.standard_normal((4,))], device)


def test_device_and_dtype_moves_gradcheck(device):
    other = "cpu" if device != "cpu" else "strict"
    check(lambda x: (x.to(other) * x.to(other)).to(device) * x, [np.array([0.5, -1.5, 2.0])],
          device)


# ---------------------------------------------------------------------------------------------
# Reductions
# ---------------------------------------------------------------------------------------------

REDUCE_ARGS = [{}, {"dim": 1}, {"dim": -1, "keepdim": True}, {"dim": (0, 2)},
               {"dim": (0, 2), "keepdim": True}, {"axis": 1, "keepdims": True}, {"dim": 0}]


@pytest.mark.parametrize("op", ["sum", "mean"])
@pytest.mark.parametrize("kwargs", REDUCE_ARGS, ids=str)
def test_sum_mean_gradcheck(device, op, kwargs):
    check(lambda x: getattr(x, op)(**kwargs), [rng_for(op).standard_normal((2, 3, 4))], device)


@pytest.mark.parametrize("op", ["max", "min", "amax", "mr.max", "mr.min"])
@pytest.mark.parametrize("kwargs", [{}, {"dim": (0, 2)}, {"dim": (1, 2), "keepdim": True},
                                    {"dim": (-1,)}], ids=str)
def test_max_min_over_axes_gradcheck(device, op, kwargs):
    fn = {"max": lambda x: x.max(**kwargs), "min": lambda x: x.min(**kwargs),
          "amax": lambda x: x.amax(**kwargs), "mr.max": lambda x: mr.max(x, **kwargs),
          "mr.min": lambda x: mr.min(x, **kwargs)}[op]
    check(fn, [distinct((2, 3, 4), rng_for(op, str(kwargs)))], device)


@pytest.mark.parametrize("op", ["max", "min"])
@pytest.mark.parametrize("dim, keepdim", [(0, False), (1, True), (-1, False), (2, True)])
def test_max_min_with_dim_gradcheck(device, op, dim, keepdim):
    x = distinct((2, 3, 4), rng_for(op, dim))
    check(lambda t: getattr(t, op)(dim=dim, keepdim=keepdim).values, [x], device)
    result = getattr(mr.tensor(x, device=device), op)(dim, keepdim)
    expected = getattr(np, f"arg{op}")(x, axis=dim)
    if keepdim:
        expected = np.expand_dims(expected, dim)
    np.testing.assert_array_equal(result.indices.numpy(), expected)


def test_gradcheck_of_a_tuple_output(device):
    # gradcheck sums a random projection of every output, the int indices included (no grad)
    check(lambda t: t.max(dim=1), [distinct((3, 4), rng_for("tuple"))], device)


def test_max_ties(device):
    x = leaf([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]], device)
    x.amax(dim=1).sum().backward()           # ties share the gradient, as torch.amax
    np.testing.assert_allclose(x.grad.numpy(), [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])
    x.grad = None
    x.max().backward()
    np.testing.assert_allclose(x.grad.numpy(), [[0, 0.5, 0.5], [0, 0, 0]])
    x.grad = None
    x.max(dim=1).values.sum().backward()     # routed to the returned (first) index
    np.testing.assert_allclose(x.grad.numpy(), [[0, 1, 0], [1, 0, 0]])
    x.grad = None
    x.min(dim=1).values.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [[1, 0, 0], [1, 0, 0]])


# ---------------------------------------------------------------------------------------------
# Shapes and indexing
# ---------------------------------------------------------------------------------------------

SHAPE_OPS = {
    "reshape": lambda x: x.reshape(4, 6),
    "reshape-1": lambda x: x.reshape(-1),
    "reshape-tuple": lambda x: mr.reshape(x, (3, -1)),
    "view": lambda x: x.view(2, 12),
    "flatten": lambda x: x.flatten(),
    "flatten1": lambda x: x.flatten(1),
    "flatten01": lambda x: mr.flatten(x, 0, 1),
    "permute": lambda x: x.permute(2, 0, 1),
    "permute-tuple": lambda x: mr.permute(x, (1, 2, 0)),
    "transpose": lambda x: x.transpose(0, 2),
    "transpose-neg": lambda x: mr.transpose(x, -1, -2),
    "T": lambda x: x.T,
    "squeeze": lambda x: x.reshape(2, 1, 3, 1, 4).squeeze(),
    "squeeze-dim": lambda x: x.reshape(2, 1, 12).squeeze(1),
    "unsqueeze0": lambda x: x.unsqueeze(0),
    "unsqueeze-1": lambda x: mr.ops.unsqueeze(x, -1),
    "slices": lambda x: x[1:, ::2],
    "ellipsis": lambda x: x[..., 1],
    "none-int": lambda x: x[None, 0],
    "negative-step": lambda x: x[:, ::-1, 1:3],
    "int": lambda x: x[-1],
    "mixed-basic": lambda x: x[0, 1:, -2],
    "adv-repeat": lambda x: x[[0, 0, 1]],
    "adv-dim1-repeat": lambda x: x[:, [2, 2, 0, 2]],
    "adv-pairs": lambda x: x[[0, 1, 1, 0], [2, 2, 0, 2]],
    "adv-2d-index": lambda x: x[:, [[0, 1], [1, 1]], 3],
    "pad-last": lambda x: mr.ops.pad(x, (1, 2)),
    "pad-two": lambda x: mr.ops.pad(x, (1, 0, 2, 1), value=0.5),
    "pad-all": lambda x: mr.ops.pad(x, (0, 1, 1, 0, 2, 2)),
    "clone": lambda x: x.clone(),
    "clone-fn": lambda x: mr.clone(x[:, 1:]),
}


@pytest.mark.parametrize("name", list(SHAPE_OPS))
def test_shape_op_gradcheck(device, name):
    check(SHAPE_OPS[name], [rng_for(name).standard_normal((2, 3, 4))], device)


def test_getitem_with_index_tensors(device):
    rng = rng_for("index-tensor")
    idx = mr.tensor([2, 0, 2, 2], device=device)
    mask = mr.tensor(np.array([[True, False, True, True]] * 3), device=device)
    check(lambda x: x[idx], [rng.standard_normal((3, 4))], device)
    check(lambda x: x[:, idx] * 2, [rng.standard_normal((3, 4))], device)
    check(lambda x: x[mask], [rng.standard_normal((3, 4))], device)


def test_getitem_repeated_indices_sum_their_gradients(device):
    x = leaf(np.arange(4.0), device)
    x[[1, 1, 3, 1]].sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0, 3, 0, 1])
    y = leaf(np.zeros((2, 3)), device)
    (y[[0, 0], [2, 2]] * mr.tensor([1.0, 2.0], dtype=mr.float64, device=device)).sum().backward()
    np.testing.assert_allclose(y.grad.numpy(), [[0, 0, 3], [0, 0, 0]])


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cat_gradcheck(device, dim):
    rng = rng_for("cat", dim)
    shapes = [[2, 3, 4], [2, 3, 4], [2, 3, 4]]
    for k, s in enumerate(shapes):
        s[dim] = k + 1
    check(lambda *ts: mr.cat(ts, dim=dim), [rng.standard_normal(s) for s in shapes], device)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_stack_gradcheck(device, dim):
    rng = rng_for("stack", dim)
    check(lambda a, b: mr.stack([a, b, a], dim=dim),
          [rng.standard_normal((2, 3)), rng.standard_normal((2, 3))], device)


MATMUL_SHAPES = [((3,), (3,)), ((3,), (3, 2)), ((2, 3), (3,)), ((2, 3), (3, 4)),
                 ((2, 1, 3, 4), (5, 4, 2)), ((3, 4), (2, 4, 5)), ((3,), (2, 3, 4)),
                 ((2, 4, 3), (3,)), ((2, 2, 3), (2, 3, 2))]


@pytest.mark.parametrize("sa, sb", MATMUL_SHAPES, ids=[f"{a}@{b}" for a, b in MATMUL_SHAPES])
def test_matmul_gradcheck(device, sa, sb):
    rng = rng_for("matmul", sa, sb)
    a, b = check(lambda a, b: a @ b, [rng.standard_normal(sa), rng.standard_normal(sb)], device)
    np.testing.assert_allclose((a @ b).numpy(), np.matmul(a.numpy(), b.numpy()), rtol=1e-12)
    check(lambda a, b: mr.matmul(a, b), [rng.standard_normal(sa), rng.standard_normal(sb)], device)


@pytest.mark.parametrize("x_shape, bias", [((4, 3), True), ((4, 3), False), ((2, 4, 3), True),
                                           ((3,), True)])
def test_linear_gradcheck(device, x_shape, bias):
    rng = rng_for("linear", x_shape, bias)
    arrays = [rng.standard_normal(x_shape), rng.standard_normal((2, 3)),
              rng.standard_normal(2) if bias else None]
    check(lambda x, w, b: mr.ops.linear(x, w, b), arrays, device)


# ---------------------------------------------------------------------------------------------
# conv2d
# ---------------------------------------------------------------------------------------------

CONV_CASES = {
    # name: (x shape, w shape, stride, padding, dilation, bias)
    "basic": ((2, 3, 5, 5), (4, 3, 3, 3), 1, 1, 1, True),
    "batch1-channel1": ((1, 1, 4, 4), (1, 1, 2, 2), 1, 0, 1, False),
    "kernel-is-padded-input": ((1, 2, 3, 3), (2, 2, 5, 5), 1, 1, 1, True),
    "kernel-is-input": ((1, 1, 3, 4), (2, 1, 3, 4), 1, 0, 1, True),
    "stride-gt-kernel": ((1, 2, 7, 7), (2, 2, 2, 2), 3, 0, 1, True),
    "non-square": ((2, 2, 6, 5), (3, 2, 3, 2), (2, 1), (1, 0), 1, True),
    "dilation": ((1, 2, 7, 7), (2, 2, 3, 3), 1, 2, 2, True),
    "dilation-non-square": ((1, 1, 8, 6), (1, 1, 2, 3), (2, 1), (0, 1), (2, 3), False),
    "remainder": ((1, 2, 6, 6), (2, 2, 3, 3), 2, 0, 1, True),     # (6 - 3) % 2 != 0
    "remainder-padded": ((1, 1, 7, 8), (1, 1, 2, 3), 3, 1, 1, True),
    "1x1-stride2-pad1": ((2, 3, 5, 5), (4, 3, 1, 1), 2, 1, 1, True),
    "1x1-pad1": ((1, 2, 3, 3), (2, 2, 1, 1), 1, 1, 1, False),
    "pad-gt-kernel": ((1, 1, 4, 4), (1, 1, 2, 2), 1, 2, 1, True),
    "stride2-pad1": ((2, 2, 6, 6), (3, 2, 3, 3), 2, 1, 1, False),
}


@pytest.mark.parametrize("name", list(CONV_CASES))
def test_conv2d_gradcheck(device, name):
    xs, ws, stride, padding, dilation, bias = CONV_CASES[name]
    rng = rng_for("conv", name)
    arrays = [rng.standard_normal(xs), rng.standard_normal(ws),
              rng.standard_normal(ws[0]) if bias else None]
    check(lambda x, w, b: mr.ops.conv2d(x, w, b, stride=stride, padding=padding,
                                        dilation=dilation), arrays, device)


@st.composite
def conv_params(draw):
    n, c, f = draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    kh = draw(st.integers(1, min(4, (h + 2 * ph - 1) // dh + 1)))
    kw = draw(st.integers(1, min(4, (w + 2 * pw - 1) // dw + 1)))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return (n, c, h, w), (f, c, kh, kw), (sh, sw), (ph, pw), (dh, dw), draw(st.booleans())


@HYPOTHESIS
@given(params=conv_params())
def test_conv2d_gradcheck_random_shapes(device, params):
    xs, ws, stride, padding, dilation, bias = params
    rng = rng_for("conv-h", params)
    arrays = [rng.standard_normal(xs), rng.standard_normal(ws),
              rng.standard_normal(ws[0]) if bias else None]
    check(lambda x, w, b: mr.ops.conv2d(x, w, b, stride, padding, dilation), arrays, device)


def test_conv2d_input_only_and_weight_only_grads(device):
    rng = rng_for("conv-partial")
    x = mr.tensor(rng.standard_normal((1, 2, 5, 5)), device=device)
    w = leaf(rng.standard_normal((3, 2, 3, 3)), device)
    assert mr.gradcheck(lambda w: mr.ops.conv2d(x, w, stride=2), [w])
    x = leaf(rng.standard_normal((1, 2, 5, 5)), device)
    w = mr.tensor(rng.standard_normal((3, 2, 3, 3)), device=device)
    assert mr.gradcheck(lambda x: mr.ops.conv2d(x, w, padding=1), [x])


def test_conv2d_chain_gradcheck(device):
    # the second conv and the batch norm read the first conv's NCHW view of NHWC memory
    rng = rng_for("conv-chain")
    arrays = [rng.standard_normal((2, 2, 5, 5)), rng.standard_normal((3, 2, 3, 3)),
              rng.standard_normal((2, 3, 3, 3)), rng.standard_normal(2) + 1]

    def fn(x, w1, w2, g):
        h = mr.ops.conv2d(x, w1, padding=1)
        h = mr.ops.conv2d(h, w2, stride=2, padding=1)
        return mr.ops.batch_norm(h, None, None, g, None, True).tanh()

    check(fn, arrays, device)


# ---------------------------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------------------------

@st.composite
def pool_params(draw):
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    kh, kw = min(kh, h + 2 * ph), min(kw, w + 2 * pw)
    ph, pw = min(ph, kh // 2), min(pw, kw // 2)
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return (n, c, h, w), (kh, kw), (sh, sw), (ph, pw)


POOL_CASES = {
    "2x2": ((2, 2, 4, 4), 2, None, 0),
    "3x3-s2-p1": ((1, 2, 5, 5), 3, 2, 1),          # overlapping windows, -inf padding for max
    "stride-gt-kernel": ((1, 1, 7, 7), 2, 3, 0),
    "remainder": ((1, 1, 5, 6), 2, 2, 0),           # the last row is in no window
    "non-square": ((2, 1, 6, 5), (3, 2), (2, 1), (1, 0)),
    "kernel-is-padded-input": ((1, 1, 2, 3), (4, 3), 1, (1, 1)),
    "batch1-channel1-k1": ((1, 1, 3, 3), 1, 2, 0),
}


@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d"])
@pytest.mark.parametrize("name", list(POOL_CASES))
def test_pool_gradcheck(device, op, name):
    xs, k, s, p = POOL_CASES[name]
    fn = getattr(mr.ops, op)
    check(lambda x: fn(x, k, s, p), [distinct(xs, rng_for(op, name))], device)


@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d"])
@HYPOTHESIS
@given(params=pool_params())
def test_pool_gradcheck_random_shapes(device, op, params):
    xs, k, s, p = params
    fn = getattr(mr.ops, op)
    check(lambda x: fn(x, k, s, p), [distinct(xs, rng_for(op, params))], device)


def test_max_pool_ties_route_to_the_first_maximum(device):
    # the gradient of a window with tied maxima goes to the first one (row-major), as in PyTorch
    x = leaf(np.ones((1, 1, 2, 4)), device)
    mr.ops.max_pool2d(x, 2).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[[[1, 0, 1, 0], [0, 0, 0, 0]]]])
    x = leaf([[[[1.0, 2.0, 2.0, 2.0]]]], device)
    mr.ops.max_pool2d(x, (1, 2), stride=1).sum().backward()    # overlapping windows
    np.testing.assert_array_equal(x.grad.numpy(), [[[[0, 2, 1, 0]]]])


@pytest.mark.parametrize("in_hw, out", [((4, 4), 1), ((5, 7), (2, 3)), ((4, 4), 3),
                                        ((3, 5), (3, 5)), ((4, 5), (6, 2))])
def test_adaptive_avg_pool2d_gradcheck(device, in_hw, out):
    check(lambda x: mr.ops.adaptive_avg_pool2d(x, out),
          [rng_for("adaptive", in_hw, out).standard_normal((2, 2) + in_hw)], device)


# ---------------------------------------------------------------------------------------------
# Batch norm
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(5, 3), (2, 3, 3, 2), (4, 3, 4, 4)],
                         ids=["2d", "4d", "4d-wide-rows"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("affine", ["both", "weight", "bias", "none"])
def test_batch_norm_gradcheck(device, shape, training, affine):
    rng = rng_for("bn", shape, training, affine)
    c = shape[1]
    rm = mr.tensor(rng.standard_normal(c), device=device)
    rv = mr.tensor(rng.uniform(0.5, 2.0, c), device=device)
    arrays = [rng.standard_normal(shape) * 2 + 1,
              rng.standard_normal(c) + 1 if affine in ("both", "weight") else None,
              rng.standard_normal(c) if affine in ("both", "bias") else None]
    check(lambda x, w, b: mr.ops.batch_norm(x, rm, rv, w, b, training, 0.1, 1e-5), arrays, device)


def test_batch_norm_training_without_running_stats_gradcheck(device):
    rng = rng_for("bn-none")
    check(lambda x, w, b: mr.ops.batch_norm(x, None, None, w, b, True),
          [rng.standard_normal((4, 2, 2, 2)), rng.standard_normal(2), rng.standard_normal(2)],
          device)


def test_batch_norm_on_a_channels_last_view_gradcheck(device):
    rng = rng_for("bn-view")
    check(lambda x, g, b: mr.ops.batch_norm(x.permute(0, 3, 1, 2), None, None, g, b, True),
          [rng.standard_normal((2, 3, 3, 4)), rng.standard_normal(4), rng.standard_normal(4)],
          device)


# ---------------------------------------------------------------------------------------------
# Losses and softmax
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_gradcheck(device, reduction):
    target = mr.tensor([0, 2, 2, 1, 2], device=device)
    check(lambda z: mr.ops.cross_entropy(z, target, reduction=reduction),
          [rng_for("ce", reduction).standard_normal((5, 3)) * 3], device)


@pytest.mark.parametrize("op", ["log_softmax", "softmax"])
@pytest.mark.parametrize("shape, dim", [((3, 4), 1), ((3, 4), 0), ((2, 3, 4), -1), ((2, 3, 4), 1)])
def test_softmax_gradcheck(device, op, shape, dim):
    check(lambda z: getattr(mr.ops, op)(z, dim), [rng_for(op, shape, dim).standard_normal(shape)],
          device)


def test_nll_and_mse_gradcheck(device):
    rng = rng_for("nll")
    target = mr.tensor([1, 0, 1], device=device)
    check(lambda z: mr.ops.nll_loss(mr.ops.log_softmax(z, 1), target),
          [rng.standard_normal((3, 2))], device)
    check(lambda a, b: mr.ops.mse_loss(a, b), [rng.standard_normal((3, 2)),
                                               rng.standard_normal((3, 2))], device)


# ---------------------------------------------------------------------------------------------
# The paper's option-A shortcut, dropout
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape, out_channels, stride", [((2, 2, 5, 5), 4, 2), ((1, 3, 4, 4), 3, 1),
                                                         ((1, 1, 3, 4), 2, 2)])
def test_zero_pad_shortcut_gradcheck(device, shape, out_channels, stride):
    x = rng_for("shortcut", shape).standard_normal(shape)
    (t,) = check(lambda x: mr.ops.zero_pad_shortcut(x, out_channels, stride), [x], device)
    y = mr.ops.zero_pad_shortcut(t, out_channels, stride).numpy()
    expected = np.zeros((shape[0], out_channels) + x[:, :, ::stride, ::stride].shape[2:])
    expected[:, :shape[1]] = x[:, :, ::stride, ::stride]
    np.testing.assert_array_equal(y, expected)


def test_dropout_mask_logic(device):
    x = mr.tensor(np.full((200, 50), 2.0, dtype=np.float32), device=device, requires_grad=True)
    p = 0.3
    y = mr.ops.dropout(x, p, training=True)
    assert y.dtype == mr.float32
    out = y.numpy()
    kept = out != 0
    # kept elements are scaled by 1/(1-p) so that the expectation is unchanged
    np.testing.assert_allclose(out[kept], 2.0 / (1 - p), rtol=1e-6)
    assert abs(kept.mean() - (1 - p)) < 0.02
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), kept / (1 - p), rtol=1e-6)   # the same mask
    mr.manual_seed(5)
    a = mr.ops.dropout(x, 0.5).numpy()
    mr.manual_seed(5)
    b = mr.ops.dropout(x, 0.5).numpy()
    np.testing.assert_array_equal(a, b)
    assert mr.ops.dropout(x, p, training=False) is x
    assert mr.ops.dropout(x, 0.0) is x
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="dropout"):
            mr.ops.dropout(x, bad)


# ---------------------------------------------------------------------------------------------
# gradcheck itself
# ---------------------------------------------------------------------------------------------

class WrongSquare(Function):
    """x^2 with a wrong backward (forgets the factor 2)."""

    def forward(self, x):
        self.save_for_backward(x)
        return x * x

    def backward(self, g):
        (x,) = self.saved_tensors
        return g * x


class RightSquare(WrongSquare):
    def backward(self, g):
        (x,) = self.saved_tensors
        return 2 * g * x


def test_gradcheck_catches_a_wrong_backward(device):
    rng = rng_for("wrong")
    a = leaf(rng.standard_normal((2, 3)), device)
    b = leaf(rng.uniform(0.5, 1.5, (2, 3)), device)
    assert mr.gradcheck(lambda a, b: a * RightSquare.apply(b), [a, b]) is True
    with pytest.raises(mr.GradcheckError, match=r"input 1 of shape \(2, 3\).*index \(\d, \d\)"):
        mr.gradcheck(lambda a, b: a * WrongSquare.apply(b), [a, b])
    assert mr.gradcheck(lambda a, b: a * WrongSquare.apply(b), [a, b],
                        raise_exception=False) is False
    with pytest.raises(mr.GradcheckError, match="input 0"):
        mr.gradcheck(lambda a: WrongSquare.apply(a), [a])


def test_gradcheck_fast_mode(device):
    rng = rng_for("fast")
    x = leaf(rng.uniform(0.5, 1.5, (3, 4)), device)
    assert mr.gradcheck(lambda x: RightSquare.apply(x).exp(), [x], fast_mode=True) is True
    with pytest.raises(mr.GradcheckError, match="fast mode.*input 0"):
        mr.gradcheck(lambda x: WrongSquare.apply(x).exp(), [x], fast_mode=True)
    assert mr.gradcheck(lambda x: WrongSquare.apply(x), [x], fast_mode=True,
                        raise_exception=False) is False
    w = leaf(rng.standard_normal((4, 2, 3, 3)), device)
    xs = leaf(rng.standard_normal((2, 2, 6, 6)), device)
    assert mr.gradcheck(lambda x, w: mr.ops.conv2d(x, w, stride=2, padding=1), [xs, w],
                        fast_mode=True)


def test_gradcheck_restores_inputs_and_rejects_bad_inputs(device):
    values = np.array([0.5, 1.5])
    x = leaf(values, device)
    assert mr.gradcheck(lambda x: x.exp(), [x])
    np.testing.assert_array_equal(x.numpy(), values)
    assert mr.gradcheck(lambda x: x * 3, x)                      # a single tensor is accepted
    x32 = mr.tensor(values.astype(np.float32), device=device, requires_grad=True)
    with pytest.raises(TypeError, match=r"float64.*\.double\(\)"):
        mr.gradcheck(lambda x: x * 2, [x32])
    with pytest.raises(ValueError, match="requires_grad"):
        mr.gradcheck(lambda x: x * 2, [mr.tensor(values, device=device)])
