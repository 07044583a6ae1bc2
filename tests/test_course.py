"""The course's checkers: the assignments' solutions pass every piece on every device, and each
known mistake (written here as a deliberately wrong student function) fails with its own hint."""
import json
from pathlib import Path

import numpy as np
import pytest

import minires as mr
from minires.backend import array_module
from minires.course import checks_kernels as K
from minires.course import checks_norm as N
from minires.course import checks_resnet as R
from minires.course import relative_error
from minires.course.verdict import DEVICE_HINT, STUB_HINT, MissingFunctionError

ASSIGNMENTS = Path(__file__).resolve().parents[1] / "notebooks" / "assignments"
NOTEBOOK_OF = {"im2col": "a1_kernels", "conv2d": "a1_kernels", "relu": "a1_kernels",
               "max_pool": "a1_kernels", "avg_pool": "a1_kernels",
               "softmax_cross_entropy": "a1_kernels", "batch_norm": "a2_batch_norm",
               "batch_norm_eval": "a2_batch_norm", "shortcut_a": "a3_residual_block",
               "basic_block": "a3_residual_block", "sgd_momentum": "a3_residual_block",
               "graph_backward": "a3_residual_block"}


def solution_source(name: str) -> str:
    """The setup cell (the first code cell) and every solution cell of an assignment."""
    nb = json.loads((ASSIGNMENTS / f"{name}.ipynb").read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    chosen = [code[0]] + [c for c in code[1:] if c["metadata"].get("nbgrader", {})
                          .get("solution")]
    return "\n\n".join("".join(c["source"]) for c in chosen)


def student(name: str, **overrides) -> dict:
    """A fresh namespace with the assignment's solutions, some functions replaced (the
    solutions call each other through this namespace, so a replaced im2col reaches conv2d)."""
    namespace = {"__name__": f"solutions_{name}"}
    exec(compile(solution_source(name), f"<{name} solutions>", "exec"), namespace)
    namespace.update(overrides)
    return namespace


def test_every_piece_has_a_solution_notebook():
    assert set(NOTEBOOK_OF) == set(mr.course.PIECES)


@pytest.mark.parametrize("piece", list(NOTEBOOK_OF))
def test_solutions_pass(piece, device):
    verdict = mr.course.check(piece, student(NOTEBOOK_OF[piece]), device=device)
    assert verdict.passed, verdict.report()
    assert verdict.error_vs_reference is not None and verdict.error_vs_reference < 1e-7
    assert "PASSED" in verdict.report()


def test_reference_module_is_refused():
    """minires's own kernels under the contract's names are not the student's work."""
    from minires.course import reference
    for piece in ("im2col", "conv2d", "relu", "batch_norm", "shortcut_a"):
        verdict = mr.course.check(piece, reference)
        assert not verdict.passed and verdict.refused, piece
        assert verdict.report().startswith(f"{piece}: REFUSED: ") and "\n" not in \
            verdict.report()


# --- deliberately wrong students: each must get its own hint ---

def conv_out(size, k, s, p):
    return (size + 2 * p - k) // s + 1


def col2im_assign(dcols, x_shape, kh, kw, stride, padding):
    n, c, h, w = x_shape
    ho, wo = conv_out(h, kh, stride, padding), conv_out(w, kw, stride, padding)
    d = dcols.reshape(n, ho, wo, c, kh, kw).transpose(0, 3, 4, 5, 1, 2)
    dx = array_module(dcols).zeros((n, c, h + 2 * padding, w + 2 * padding))
    for a in range(kh):
        for b in range(kw):
            dx[:, :, a:a + stride * (ho - 1) + 1:stride, b:b + stride * (wo - 1) + 1:stride] = \
                d[:, :, a, b]
    return dx[:, :, padding:padding + h, padding:padding + w]


def col2im_from_output_size(dcols, x_shape, kh, kw, stride, padding):
    """Allocates the padded gradient as (Ho - 1) s + k rows: short when (H + 2p - k) % s != 0."""
    n, c, h, w = x_shape
    ho, wo = conv_out(h, kh, stride, padding), conv_out(w, kw, stride, padding)
    d = dcols.reshape(n, ho, wo, c, kh, kw).transpose(0, 3, 4, 5, 1, 2)
    dx = array_module(dcols).zeros((n, c, (ho - 1) * stride + kh, (wo - 1) * stride + kw))
    for a in range(kh):
        for b in range(kw):
            dx[:, :, a:a + stride * (ho - 1) + 1:stride, b:b + stride * (wo - 1) + 1:stride] += \
                d[:, :, a, b]
    return dx[:, :, padding:padding + h, padding:padding + w]


def im2col_channels_last(x, kh, kw, stride, padding):
    """Columns ordered (kernel row, kernel column, channel): minires's internal layout."""
    xp = array_module(x)
    n, c, h, w = x.shape
    ho, wo = conv_out(h, kh, stride, padding), conv_out(w, kw, stride, padding)
    x_pad = xp.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    cols = xp.zeros((n, ho, wo, kh, kw, c))
    for a in range(kh):
        for b in range(kw):
            cols[:, :, :, a, b, :] = x_pad[:, :, a:a + stride * (ho - 1) + 1:stride,
                                           b:b + stride * (wo - 1) + 1:stride].transpose(0, 2, 3, 1)
    return cols.reshape(n * ho * wo, -1)


def im2col_one_sided_padding(x, kh, kw, stride, padding):
    """Pads only the top and the left: an off-by-one in the padding."""
    xp = array_module(x)
    n, c, h, w = x.shape
    ho, wo = conv_out(h, kh, stride, padding), conv_out(w, kw, stride, padding)
    x_pad = xp.pad(x, ((0, 0), (0, 0), (padding, 0), (padding, 0)))
    cols = xp.zeros((n, c, kh, kw, ho, wo))
    for a in range(kh):
        for b in range(kw):
            cols[:, :, a, b] = x_pad[:, :, a:a + stride * (ho - 1) + 1:stride,
                                     b:b + stride * (wo - 1) + 1:stride]
    return cols.transpose(0, 4, 5, 1, 2, 3).reshape(n * ho * wo, c * kh * kw)


def im2col_square(x, kh, kw, stride, padding):
    """Uses kh for both axes: right for every square kernel."""
    xp = array_module(x)
    n, c, h, w = x.shape
    ho, wo = conv_out(h, kh, stride, padding), conv_out(w, kh, stride, padding)
    x_pad = xp.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    cols = xp.zeros((n, c, kh, kh, ho, wo))
    for a in range(kh):
        for b in range(kh):
            cols[:, :, a, b] = x_pad[:, :, a:a + stride * (ho - 1) + 1:stride,
                                     b:b + stride * (wo - 1) + 1:stride]
    return cols.transpose(0, 4, 5, 1, 2, 3).reshape(n * ho * wo, c * kh * kh)


def relu_backward_masks_dy(dy, cache):
    return dy * (dy > 0)


def max_pool_backward_spreads(dy, cache):
    """Sends dy to every input of the window, as if every input had won."""
    x_shape, argmax, kernel, stride = cache
    return avg_pool_like(dy, x_shape, kernel, stride, 1.0)


def avg_pool_like(dy, x_shape, kernel, stride, scale):
    dx = array_module(dy).zeros(x_shape)
    ho, wo = dy.shape[2], dy.shape[3]
    for a in range(kernel):
        for b in range(kernel):
            dx[:, :, a:a + stride * (ho - 1) + 1:stride, b:b + stride * (wo - 1) + 1:stride] += \
                dy * scale
    return dx


def avg_pool_backward_undivided(dy, cache):
    x_shape, kernel, stride = cache
    return avg_pool_like(dy, x_shape, kernel, stride, 1.0)


def max_pool_backward_assign(dy, cache):
    x_shape, argmax, kernel, stride = cache
    xp = array_module(dy)
    dx = xp.zeros(x_shape)
    ho, wo = dy.shape[2], dy.shape[3]
    for a in range(kernel):
        for b in range(kernel):
            window = dx[:, :, a:a + stride * (ho - 1) + 1:stride, b:b + stride * (wo - 1) + 1:stride]
            won = argmax == a * kernel + b
            window[...] = xp.where(won, dy, window)           # assigns: overlaps lose gradient
    return dx


def softmax_unstable(logits, labels):
    xp = array_module(logits)
    n = logits.shape[0]
    p = xp.exp(logits) / xp.exp(logits).sum(axis=1, keepdims=True)
    loss = -xp.log(p[xp.arange(n), labels]).mean()
    p[xp.arange(n), labels] -= 1
    return loss, p / n


def softmax_summed_gradient(logits, labels):
    xp = array_module(logits)
    n = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    p = xp.exp(shifted) / xp.exp(shifted).sum(axis=1, keepdims=True)
    loss = -xp.log(p[xp.arange(n), labels]).mean()
    p[xp.arange(n), labels] -= 1
    return loss, p                                             # not divided by N


def c(v):
    return v.reshape(1, -1, 1, 1)


def bn_backward_no_mean_path(dy, cache):
    x_hat, gamma, inv_std = cache
    m = dy.size // dy.shape[1]
    dgamma = (dy * x_hat).sum(axis=(0, 2, 3))
    return c(gamma) * inv_std * (dy - x_hat * c(dgamma) / m), dgamma, dy.sum(axis=(0, 2, 3))


def bn_backward_no_variance_path(dy, cache):
    x_hat, gamma, inv_std = cache
    m = dy.size // dy.shape[1]
    dbeta = dy.sum(axis=(0, 2, 3))
    return c(gamma) * inv_std * (dy - c(dbeta) / m), (dy * x_hat).sum(axis=(0, 2, 3)), dbeta


def bn_forward_over_batch_axis(x, gamma, beta, eps):
    xp = array_module(x)
    inv_std = 1 / xp.sqrt(x.var(axis=0, keepdims=True) + eps)
    x_hat = (x - x.mean(axis=0, keepdims=True)) * inv_std
    return c(gamma) * x_hat + c(beta), (x_hat, gamma, inv_std)


def bn_eval_forward_batch_stats(x, gamma, beta, running_mean, running_var, eps):
    xp = array_module(x)
    inv_std = 1 / xp.sqrt(x.var(axis=(0, 2, 3), keepdims=True) + eps)
    x_hat = (x - x.mean(axis=(0, 2, 3), keepdims=True)) * inv_std
    return c(gamma) * x_hat + c(beta), (x_hat, gamma, inv_std)


def bn_update_biased(running_mean, running_var, x, momentum):
    return ((1 - momentum) * running_mean + momentum * x.mean(axis=(0, 2, 3)),
            (1 - momentum) * running_var + momentum * x.var(axis=(0, 2, 3)))


def bn_update_swapped(running_mean, running_var, x, momentum):
    m = x.size // x.shape[1]
    return (momentum * running_mean + (1 - momentum) * x.mean(axis=(0, 2, 3)),
            momentum * running_var + (1 - momentum) * x.var(axis=(0, 2, 3)) * m / (m - 1))


def shortcut_both_sides(x, out_channels, stride):
    xp = array_module(x)
    sub = x[:, :, ::stride, ::stride]
    before = (out_channels - x.shape[1]) // 2
    y = xp.zeros((x.shape[0], out_channels) + sub.shape[2:])
    y[:, before:before + x.shape[1]] = sub
    return y, (x.shape, stride)


def sgd_cs231n(w, dw, velocity, lr, momentum, weight_decay):
    velocity = momentum * velocity - lr * (dw + weight_decay * w)
    return w + velocity, velocity


def sgd_no_weight_decay(w, dw, velocity, lr, momentum, weight_decay):
    velocity = momentum * velocity + dw
    return w - lr * velocity, velocity


def sgd_forgets_velocity(w, dw, velocity, lr, momentum, weight_decay):
    return w - lr * (dw + weight_decay * w), velocity


def backward_overwrites(root):
    order = SOLVED_TOPO(root)
    root.grad = 1.0
    for node in reversed(order):
        for parent, local in zip(node.parents, node.local_grads):
            parent.grad = local * node.grad


def backward_recursive(root):
    """Pushes each gradient on as soon as part of it arrives: no topological order."""
    root.grad = 1.0

    def push(node):
        for parent, local in zip(node.parents, node.local_grads):
            parent.grad += local * node.grad
            push(parent)
    push(root)


def relu_backward_passes_dy(dy, cache):
    return dy


def avg_pool_forward_sums(x, kernel, stride):
    y, cache = AVG_FORWARD(x, kernel, stride)
    return y * (kernel * kernel), cache


def max_pool_backward_from_output_size(dy, cache):
    """Allocates dx as (Ho - 1) s + k rows: short when (H - k) % s != 0."""
    x_shape, argmax, kernel, stride = cache
    n, c, ho, wo = dy.shape
    dx = array_module(dy).zeros((n, c, (ho - 1) * stride + kernel, (wo - 1) * stride + kernel))
    for a in range(kernel):
        for b in range(kernel):
            dx[:, :, a:a + stride * (ho - 1) + 1:stride, b:b + stride * (wo - 1) + 1:stride] += \
                dy * (argmax == a * kernel + b)
    return dx


def bn_forward_unbiased(x, gamma, beta, eps):
    xp = array_module(x)
    inv_std = 1 / xp.sqrt(x.var(axis=(0, 2, 3), ddof=1, keepdims=True) + eps)
    x_hat = (x - x.mean(axis=(0, 2, 3), keepdims=True)) * inv_std
    return c(gamma) * x_hat + c(beta), (x_hat, gamma, inv_std)


def bn_backward_constant_statistics(dy, cache):
    x_hat, gamma, inv_std = cache
    return (c(gamma) * inv_std * dy, (dy * x_hat).sum(axis=(0, 2, 3)), dy.sum(axis=(0, 2, 3)))


def shortcut_from_row_1(x, out_channels, stride):
    xp = array_module(x)
    sub = x[:, :, 1::stride, 1::stride] if stride > 1 else x
    y = xp.zeros((x.shape[0], out_channels) + sub.shape[2:])
    y[:, :x.shape[1]] = sub
    return y, (x.shape, stride)


def topological_order_roots_only(root):
    return [root]


def stub(*args):
    raise NotImplementedError()


SOLVED_TOPO = student("a3_residual_block")["topological_order"]
AVG_FORWARD = student("a1_kernels")["avg_pool_forward"]

TRAPS = [
    ("im2col", "a1_kernels", {"col2im": col2im_assign}, K.OVERLAP),
    ("conv2d", "a1_kernels", {"col2im": col2im_assign}, K.OVERLAP),
    ("im2col", "a1_kernels", {"im2col": im2col_channels_last}, K.COLUMN_ORDER),
    ("conv2d", "a1_kernels", {"im2col": im2col_one_sided_padding}, K.PADDING),
    ("conv2d", "a1_kernels", {"col2im": col2im_from_output_size}, K.UNEVEN),
    ("conv2d", "a1_kernels", {"im2col": im2col_square}, K.RECTANGLE),
    ("relu", "a1_kernels", {"relu_backward": relu_backward_masks_dy}, K.RELU_MASK),
    ("relu", "a1_kernels", {"relu_backward": relu_backward_passes_dy}, K.RELU_THROUGH),
    ("avg_pool", "a1_kernels", {"avg_pool_forward": avg_pool_forward_sums}, K.AVG_FORWARD),
    ("max_pool", "a1_kernels", {"max_pool_backward": max_pool_backward_from_output_size},
     K.POOL_UNEVEN),
    ("batch_norm", "a2_batch_norm", {"batch_norm_forward": bn_forward_unbiased}, N.BN_BIASED),
    ("batch_norm", "a2_batch_norm", {"batch_norm_backward": bn_backward_constant_statistics},
     N.NO_PATHS),
    ("shortcut_a", "a3_residual_block", {"shortcut_a_forward": shortcut_from_row_1},
     R.SHORTCUT_OFFSET),
    ("max_pool", "a1_kernels", {"max_pool_backward": max_pool_backward_spreads}, K.MAX_ROUTE),
    ("max_pool", "a1_kernels", {"max_pool_backward": max_pool_backward_assign}, K.POOL_OVERLAP),
    ("avg_pool", "a1_kernels", {"avg_pool_backward": avg_pool_backward_undivided}, K.AVG_SCALE),
    ("softmax_cross_entropy", "a1_kernels", {"softmax_cross_entropy": softmax_unstable},
     K.CE_STABLE),
    ("softmax_cross_entropy", "a1_kernels", {"softmax_cross_entropy": softmax_summed_gradient},
     K.CE_MEAN),
    ("batch_norm", "a2_batch_norm", {"batch_norm_backward": bn_backward_no_mean_path},
     N.MEAN_PATH),
    ("batch_norm", "a2_batch_norm", {"batch_norm_backward": bn_backward_no_variance_path},
     N.VAR_PATH),
    ("batch_norm", "a2_batch_norm", {"batch_norm_forward": bn_forward_over_batch_axis},
     N.BN_AXES),
    ("batch_norm_eval", "a2_batch_norm", {"batch_norm_eval_forward": bn_eval_forward_batch_stats},
     N.EVAL_RUNNING),
    ("batch_norm_eval", "a2_batch_norm", {"batch_norm_update_running": bn_update_biased},
     N.RUNNING_UNBIASED),
    ("batch_norm_eval", "a2_batch_norm", {"batch_norm_update_running": bn_update_swapped},
     N.RUNNING_MOMENTUM),
    ("shortcut_a", "a3_residual_block", {"shortcut_a_forward": shortcut_both_sides},
     R.SHORTCUT_SIDES),
    ("sgd_momentum", "a3_residual_block", {"sgd_momentum": sgd_cs231n}, R.SGD_LR),
    ("sgd_momentum", "a3_residual_block", {"sgd_momentum": sgd_no_weight_decay}, R.SGD_DECAY),
    ("sgd_momentum", "a3_residual_block", {"sgd_momentum": sgd_forgets_velocity},
     R.SGD_VELOCITY),
    ("graph_backward", "a3_residual_block", {"backward": backward_overwrites}, R.GRAPH_REUSE),
    ("graph_backward", "a3_residual_block", {"backward": backward_recursive}, R.GRAPH_ORDER),
    ("graph_backward", "a3_residual_block", {"topological_order": topological_order_roots_only},
     R.GRAPH_TOPO),
    ("conv2d", "a1_kernels", {"conv2d_backward": stub}, STUB_HINT.format(name="conv2d_backward")),
]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")      # the unstable softmax overflows
@pytest.mark.parametrize("piece, notebook, wrong, hint", TRAPS,
                         ids=[f"{t[0]}-{next(iter(t[2].values())).__name__}" for t in TRAPS])
def test_each_trap_gets_its_hint(piece, notebook, wrong, hint, device):
    verdict = mr.course.check(piece, student(notebook, **wrong), device=device)
    assert not verdict.passed
    assert verdict.trap == hint, verdict.report()
    assert f"hint: {hint}" in verdict.report()


def test_eval_backward_with_training_formula_gets_its_hint():
    ns = student("a2_batch_norm")
    train_forward, train_backward = ns["batch_norm_forward"], ns["batch_norm_backward"]
    right_eval_forward = ns["batch_norm_eval_forward"]

    def eval_forward(x, gamma, beta, running_mean, running_var, eps):
        y, _ = right_eval_forward(x, gamma, beta, running_mean, running_var, eps)
        return y, train_forward(x, gamma, beta, eps)[1]     # the right y, a training cache

    ns.update(batch_norm_eval_forward=eval_forward, batch_norm_eval_backward=train_backward)
    verdict = mr.course.check("batch_norm_eval", ns)
    assert verdict.trap == N.EVAL_BACKWARD, verdict.report()


def test_basic_block_traps():
    ns = student("a3_residual_block")
    forward, backward = ns["basic_block_forward"], ns["basic_block_backward"]

    def backward_without_shortcut(dy, cache):
        dx, grads = backward(dy, cache)
        cs, cy = cache[5], cache[6]
        d = ns["relu_backward"](dy, cy)
        return dx - (d if cs is None else ns["shortcut_a_backward"](d, cs)), grads

    verdict = mr.course.check("basic_block", dict(ns, basic_block_backward=backward_without_shortcut))
    assert verdict.trap == R.BLOCK_SHORTCUT_GRAD, verdict.report()

    def forward_relu_before_add(x, params, stride):
        no_bias = array_module(x).zeros(params["w1"].shape[0])
        h = ns["conv2d_forward"](x, params["w1"], no_bias, stride, 1)[0]
        h = ns["relu_forward"](ns["batch_norm_forward"](h, params["gamma1"], params["beta1"],
                                                        1e-5)[0])[0]
        h = ns["conv2d_forward"](h, params["w2"], no_bias, 1, 1)[0]
        h = ns["batch_norm_forward"](h, params["gamma2"], params["beta2"], 1e-5)[0]
        s = x if stride == 1 else ns["shortcut_a_forward"](x, params["w1"].shape[0], stride)[0]
        return ns["relu_forward"](h)[0] + s, None

    verdict = mr.course.check("basic_block", dict(ns, basic_block_forward=forward_relu_before_add))
    assert verdict.trap == R.BLOCK_RELU_ORDER, verdict.report()


def test_host_arrays_on_a_device_get_the_device_hint():
    def relu_forward_numpy(x):
        return np.maximum(np.asarray(x), 0), x
    verdict = mr.course.check("relu", student("a1_kernels", relu_forward=relu_forward_numpy),
                              device="strict")
    assert verdict.trap == DEVICE_HINT.format(name="relu_forward"), verdict.report()


def test_verdict_names_the_case_and_errors():
    verdict = mr.course.check("conv2d", student("a1_kernels", col2im=col2im_assign))
    report = verdict.report()
    assert "FAILED on cpu, case 2" in report and "x (2, 3, 5, 6)" in report
    assert verdict.case.startswith("x (2, 3, 5, 6), w (3, 3, 3, 3)")
    assert verdict.error_vs_reference > 0.1
    with pytest.raises(AssertionError, match="col2im must add"):
        verdict.assert_passed()


def test_missing_function_and_unknown_piece():
    with pytest.raises(MissingFunctionError, match="conv2d_backward"):
        mr.course.check("conv2d", {"conv2d_forward": lambda *a: None})
    with pytest.raises(KeyError, match="the pieces are"):
        mr.course.check("conv3d", {})


def test_relative_error_is_cs231ns():
    assert relative_error([1.0, 2.0], [1.0, 2.0]) == 0
    assert relative_error([1.0], [3.0]) == pytest.approx(0.5)
    assert relative_error([0.0], [0.0]) == 0
    assert relative_error([1e-9], [0.0]) == pytest.approx(0.1)     # the 1e-8 floor


def test_numeric_gradient_of_a_known_function():
    x = np.array([1.0, -2.0, 0.5])
    grad = mr.course.numeric_gradient(lambda v: v ** 3, x, np.ones(3))
    assert relative_error(grad, 3 * x ** 2) < 1e-8


def test_graph_value_local_grads():
    from minires.course.graph import Value
    a = Value(0.5)
    y = (a * a + 1.0).tanh()
    student("a3_residual_block")["backward"](y)
    assert a.grad == pytest.approx((1 - np.tanh(1.25) ** 2) * 2 * 0.5)
