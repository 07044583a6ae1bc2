"""The autograd engine: graph order, accumulation, graph lifetime, hooks, dtype and tensor rules.

Every test that takes ``device`` runs on each device of MINIRES_TEST_DEVICES (see conftest.py).
"""
import gc
import sys
import tracemalloc
import weakref

import numpy as np
import pytest

import minires as mr


def leaf(values, device, dtype=np.float64, requires_grad=True):
    return mr.tensor(np.asarray(values, dtype=dtype), device=device, requires_grad=requires_grad)


# ---------------------------------------------------------------------------------------------
# Order and accumulation
# ---------------------------------------------------------------------------------------------

def test_reused_node_accumulates_micrograd_issue_64(device):
    # b = a + a; c = b + b: a recursive backward without a topological order gives 2 (or 8)
    a = leaf(3.0, device)
    b = a + a
    c = b + b
    c.backward()
    assert a.grad.numpy() == pytest.approx(4.0)
    assert c.item() == pytest.approx(12.0)


def test_reused_operand_in_one_op(device):
    a = leaf([1.5, -2.0], device)
    (a * a).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), [3.0, -4.0])


def test_diamond_graph(device):
    # x -> y1 = 2x, y2 = 3x -> z = y1 * y2 = 6 x^2, dz/dx = 12 x
    x = leaf([0.5, -1.0, 2.0], device)
    z = ((x * 2) * (x * 3)).sum()
    z.backward()
    np.testing.assert_allclose(x.grad.numpy(), 12 * np.array([0.5, -1.0, 2.0]))


def test_diamond_with_paths_of_different_length(device):
    # a = e^x is reached directly and through b = 2a: d = (a + b) * a = 3 e^{2x}, dd/dx = 6 e^{2x}
    xs = np.array([0.1, -0.3])
    x = leaf(xs, device)
    a = x.exp()
    b = a * 2
    d = ((a + b) * a).sum()
    d.backward()
    np.testing.assert_allclose(x.grad.numpy(), 6 * np.exp(2 * xs), rtol=1e-12)


def test_node_used_at_several_depths(device):
    # h feeds the output directly and through a 3-op chain: every path must be summed once
    x = leaf(2.0, device)
    h = x * x                       # 4
    k = ((h + 1) * 2) - h           # h + 2
    out = k * h                     # (h + 2) h = h^2 + 2h
    out.backward()
    # d/dx = (2h + 2) * 2x = 10 * 4
    assert x.grad.item() == pytest.approx(40.0)


def test_deep_chain_has_no_recursion_error(device):
    x = leaf([1.0, 2.0], device)
    y = x
    for _ in range(5000):
        y = y * 1.0001
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)     # the engine must not depend on the recursion limit
    try:
        y.sum().backward()
    finally:
        sys.setrecursionlimit(old)
    np.testing.assert_allclose(x.grad.numpy(), [1.0001 ** 5000] * 2, rtol=1e-9)


def test_deep_chain_without_backward_is_freed(device):
    x = leaf([1.0], device)
    y = x
    for _ in range(5000):
        y = y + 1.0
    ref = weakref.ref(y)
    del y
    gc.collect()
    assert ref() is None


# ---------------------------------------------------------------------------------------------
# Grad mode, detach, retain_grad, hooks
# ---------------------------------------------------------------------------------------------

def test_no_grad_builds_no_graph(device):
    x = leaf([1.0, 2.0], device)
    with mr.no_grad():
        y = (x * 2).exp().sum()
        assert not mr.is_grad_enabled()
    assert mr.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()


def test_no_grad_as_decorator_nesting_and_exceptions(device):
    x = leaf([1.0], device)

    @mr.no_grad()
    def f(t):
        return t * 3

    assert f(x).grad_fn is None
    with mr.no_grad():
        with mr.enable_grad():
            assert (x * 2).requires_grad
        assert not (x * 2).requires_grad
    with pytest.raises(ZeroDivisionError):
        with mr.no_grad():
            1 / 0
    assert mr.is_grad_enabled()
    with mr.set_grad_enabled(False):
        assert not (x + 1).requires_grad
    assert (x + 1).requires_grad


def test_detach_cuts_the_graph_and_shares_memory(device):
    x = leaf([2.0, 3.0], device)
    d = x.detach()
    assert not d.requires_grad and d.grad_fn is None
    assert d.array is x.array
    (x * d).sum().backward()        # d is a constant: the gradient is x, not 2x
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 3.0])


def test_retain_grad_on_intermediate(device):
    x = leaf([1.0, -2.0], device)
    h = x * 3
    h.retain_grad()
    other = x * 5                   # not retained
    ((h * h).sum() + other.sum()).backward()
    np.testing.assert_allclose(h.grad.numpy(), 2 * np.array([3.0, -6.0]))
    assert other.grad is None
    np.testing.assert_allclose(x.grad.numpy(), 3 * 2 * np.array([3.0, -6.0]) + 5)
    with pytest.raises(RuntimeError, match="retain_grad"):
        mr.tensor([1.0], device=device).retain_grad()


def test_register_hook_modifies_grad_and_remove(device):
    x = leaf([1.0, 2.0], device)
    h = x * 2
    seen = []

    def hook(g):
        seen.append(g.numpy().copy())
        return g * 10

    handle = h.register_hook(hook)
    (h * h).sum().backward(retain_graph=True)
    # dL/dh = 2h = [4, 8], scaled by 10 before it flows to x
    np.testing.assert_allclose(seen[0], [4.0, 8.0])
    np.testing.assert_allclose(x.grad.numpy(), 10 * 2 * np.array([4.0, 8.0]))
    handle.remove()
    x.grad = None
    (h * h).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.array([4.0, 8.0]))
    assert len(seen) == 1


def test_hook_on_leaf_and_called_once_with_the_summed_grad(device):
    x = leaf([1.0, 2.0], device)
    calls = []

    def hook(g):
        calls.append(g.numpy().copy())
        return g * 0.5

    x.register_hook(hook)
    (x + x + x).sum().backward()
    assert len(calls) == 1
    np.testing.assert_allclose(calls[0], [3.0, 3.0])
    np.testing.assert_allclose(x.grad.numpy(), [1.5, 1.5])


def test_hook_returning_none_keeps_grad(device):
    x = leaf([1.0], device)
    x.register_hook(lambda g: None)
    (x * 4).sum().backward()
    assert x.grad.item() == pytest.approx(4.0)
    with pytest.raises(RuntimeError, match="register_hook"):
        mr.tensor([1.0], device=device).register_hook(lambda g: g)


# ---------------------------------------------------------------------------------------------
# backward() contract
# ---------------------------------------------------------------------------------------------

def test_backward_on_non_scalar_needs_gradient(device):
    x = leaf(np.ones((2, 3)), device)
    y = x * 2
    with pytest.raises(RuntimeError, match=r"scalar.*\(2, 3\)"):
        y.backward()
    y.backward(mr.tensor(np.full((2, 3), 0.5), device=device))
    np.testing.assert_allclose(x.grad.numpy(), np.ones((2, 3)))


def test_backward_gradient_checks(device):
    x = leaf(np.ones(3), device)
    y = x * 2
    with pytest.raises(RuntimeError, match=r"shape \(2,\)"):
        y.backward(mr.tensor(np.ones(2), device=device), retain_graph=True)
    with pytest.raises(TypeError, match="dtype"):
        y.backward(mr.tensor(np.ones(3, dtype=np.float32), device=device), retain_graph=True)


def test_second_backward_without_retain_graph_raises(device):
    x = leaf([1.0, 2.0], device)
    y = (x.exp() * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_retain_graph_allows_second_backward_and_accumulates(device):
    xs = np.array([0.5, -1.0])
    x = leaf(xs, device)
    a = x.exp()
    y = (a * a + a * x).sum()       # a diamond: intermediate grads must not accumulate across calls
    expected = 2 * np.exp(2 * xs) + np.exp(xs) * (xs + 1)
    y.backward(retain_graph=True)
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-12)
    y.backward(retain_graph=True)
    np.testing.assert_allclose(x.grad.numpy(), 2 * expected, rtol=1e-12)
    y.backward()                    # frees the graph
    np.testing.assert_allclose(x.grad.numpy(), 3 * expected, rtol=1e-12)
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_leaf_grads_do_not_share_memory(device):
    # add passes its upstream gradient to both inputs: .grad must still be each tensor's own
    a = leaf([1.0, 2.0], device)
    b = leaf([3.0, 4.0], device)
    g = mr.tensor(np.array([1.0, 1.0]), device=device)
    (a + b).backward(g)
    a.grad.zero_()
    np.testing.assert_allclose(b.grad.numpy(), [1.0, 1.0])
    np.testing.assert_allclose(g.numpy(), [1.0, 1.0])


# ---------------------------------------------------------------------------------------------
# Graph lifetime
# ---------------------------------------------------------------------------------------------

def test_graph_is_freed_after_backward(device):
    x = leaf(np.arange(4.0), device)
    h = x * 2
    y = (h * h).sum()
    tensor_ref, node_ref = weakref.ref(h), weakref.ref(h.grad_fn)
    del h
    gc.collect()
    # the graph keeps the node that computed the intermediate, not the intermediate tensor (its
    # array lives on only where an op saved it for backward)
    assert tensor_ref() is None and node_ref() is not None
    fn = y.grad_fn
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 8 * np.arange(4.0))
    gc.collect()
    assert node_ref() is None
    assert fn.inputs == () and fn.saved_tensors is None


def test_graph_holds_no_intermediate_tensor(device):
    # a chain of ops on a large array: only what each op saves stays alive, not every output
    x = leaf(np.ones(8), device)
    refs = []
    h = x
    for _ in range(5):
        h = h + 1.0
        refs.append(weakref.ref(h))
    y = h.sum()
    del h
    gc.collect()
    assert all(r() is None for r in refs)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), np.ones(8))


def test_hooks_and_retain_grad_of_a_freed_intermediate(device):
    x = leaf(np.arange(3.0), device)
    h = x * 3
    seen = []
    h.register_hook(lambda g: seen.append(g.numpy()))
    kept = x * 2
    kept.retain_grad()
    y = (h * h).sum() + kept.sum()
    del h
    gc.collect()
    y.backward()
    np.testing.assert_allclose(seen[0], 2 * 3 * np.arange(3.0))     # the hook still ran
    np.testing.assert_allclose(kept.grad.numpy(), np.ones(3))        # retained on the tensor
    np.testing.assert_allclose(x.grad.numpy(), 18 * np.arange(3.0) + 2)


def test_retain_graph_keeps_the_graph(device):
    x = leaf(np.arange(4.0), device)
    h = x * 2
    y = (h * h).sum()
    node_ref = weakref.ref(h.grad_fn)
    del h
    y.backward(retain_graph=True)
    gc.collect()
    assert node_ref() is not None
    assert y.grad_fn.inputs != () and y.grad_fn.freed is False
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * 8 * np.arange(4.0))


def _train_steps(device, steps, keep):
    rng = np.random.default_rng(0)
    x = mr.tensor(rng.standard_normal((256, 32)).astype(np.float32), device=device)
    target = mr.tensor(rng.integers(0, 10, 256), device=device)
    w = mr.tensor(0.1 * rng.standard_normal((10, 32)).astype(np.float32), device=device,
                  requires_grad=True)
    b = mr.zeros(10, device=device, requires_grad=True)
    for _ in range(steps):
        loss = mr.ops.cross_entropy(mr.ops.linear(x, w, b).relu(), target)
        loss.backward()
        with mr.no_grad():
            w.array -= 0.01 * w.grad.array
            b.array -= 0.01 * b.grad.array
        w.grad = b.grad = None
        keep.append(loss)
    return loss.item()


def test_training_loop_memory_does_not_grow(device):
    # 2000 small steps; a student who keeps every loss tensor (history.append(loss)) must not keep
    # every graph alive: per step only the 0-d loss and its emptied node may remain (< 2 KB), while
    # a retained graph would hold the (256, 10) logits and log-probabilities (> 20 KB a step)
    _train_steps(device, 20, [])                    # warm-up: caches, first allocations
    gc.collect()
    tracemalloc.start()
    try:
        kept = []
        _train_steps(device, 200, kept)
        gc.collect()
        first, _ = tracemalloc.get_traced_memory()
        _train_steps(device, 1800, kept)
        gc.collect()
        second, _ = tracemalloc.get_traced_memory()
        kept.clear()
        gc.collect()
        released, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (second - first) / 1800 < 2048, f"{(second - first) / 1800:.0f} bytes per step"
    assert released - first < 64 * 1024


def test_training_loop_loss_decreases(device):
    first = _train_steps(device, 1, [])
    last = _train_steps(device, 50, [])      # a fresh model each call: 1 step vs 50 steps
    assert last < first - 0.01        # measured: 2.363 -> 2.335


# ---------------------------------------------------------------------------------------------
# Broadcasting gradients
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sa, sb", [((3, 1), (1, 4)), ((2, 3, 4), (4,)), ((2, 3, 4), (3, 1)),
                                    ((2, 3), ()), ((1,), (2, 3)), ((2, 1, 1), (1, 3, 1))])
def test_broadcast_gradients_reduce_to_input_shape(device, sa, sb):
    rng = np.random.default_rng(1)
    an, bn = rng.standard_normal(sa), rng.standard_normal(sb)
    a, b = leaf(an, device), leaf(bn, device)
    out_shape = np.broadcast_shapes(sa, sb)
    gn = rng.standard_normal(out_shape)
    (a * b).backward(mr.tensor(gn, device=device))
    ga = np.broadcast_to(gn * bn, out_shape)
    gb = np.broadcast_to(gn * an, out_shape)

    def reduce_to(g, shape):
        g = g.sum(axis=tuple(range(g.ndim - len(shape)))) if g.ndim > len(shape) else g
        return g.sum(axis=tuple(i for i, s in enumerate(shape) if s == 1), keepdims=True)

    assert a.grad.shape == sa and b.grad.shape == sb
    np.testing.assert_allclose(a.grad.numpy(), reduce_to(ga, sa), rtol=1e-12)
    np.testing.assert_allclose(b.grad.numpy(), reduce_to(gb, sb).reshape(sb), rtol=1e-12)


def test_add_broadcast_counts(device):
    x = leaf(np.zeros((3, 1)), device)
    y = leaf(np.zeros((1, 4)), device)
    (x + y).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full((3, 1), 4.0))
    np.testing.assert_allclose(y.grad.numpy(), np.full((1, 4), 3.0))


# ---------------------------------------------------------------------------------------------
# dtype discipline
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("op", [lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a * b,
                                lambda a, b: a / b, lambda a, b: a @ b,
                                lambda a, b: mr.ops.linear(a, b)],
                         ids=["add", "sub", "mul", "div", "matmul", "linear"])
def test_mixed_float_dtypes_raise(device, op):
    a = mr.ones(2, 2, dtype=mr.float32, device=device)
    b = mr.ones(2, 2, dtype=mr.float64, device=device)
    with pytest.raises(TypeError, match=r"\.float\(\)") as info:
        op(a, b)
    assert "float32" in str(info.value) and "float64" in str(info.value)


def test_mixed_float_dtypes_raise_in_conv_and_batch_norm(device):
    x = mr.ones(1, 1, 3, 3, dtype=mr.float32, device=device)
    w = mr.ones(1, 1, 2, 2, dtype=mr.float64, device=device)
    with pytest.raises(TypeError, match=r"conv2d.*\.float\(\)"):
        mr.ops.conv2d(x, w)
    rm = mr.zeros(1, dtype=mr.float64, device=device)
    with pytest.raises(TypeError, match=r"batch_norm.*\.float\(\)"):
        mr.ops.batch_norm(x, rm, mr.ones(1, dtype=mr.float64, device=device), None, None, True)


@pytest.mark.parametrize("op", [lambda x: x * 2.0, lambda x: 2.0 * x, lambda x: x / 3,
                                lambda x: 3 / x, lambda x: x + 1, lambda x: 1 - x,
                                lambda x: x - np.float64(1.5), lambda x: x * np.float64(2.0),
                                lambda x: x ** 2, lambda x: x ** 0.5, lambda x: x / 2.5,
                                lambda x: x.mean(), lambda x: x.sum(dim=0),
                                lambda x: x.clamp(0.1, 0.9), lambda x: mr.where(x > 0.5, x, 0.0),
                                lambda x: mr.ops.softmax(x, 1), lambda x: x.sigmoid() * 0.5],
                         ids=["mul", "rmul", "div", "rdiv", "add", "rsub", "sub-npf64",
                              "mul-npf64", "pow2", "pow-half", "div-float", "mean", "sum",
                              "clamp", "where", "softmax", "sigmoid-scale"])
def test_python_scalars_never_promote_float32(device, op):
    x = mr.tensor(np.random.default_rng(0).random((2, 3)).astype(np.float32) + 0.1,
                  device=device, requires_grad=True)
    y = op(x)
    assert y.dtype == mr.float32
    y.sum().backward()
    assert x.grad.dtype == mr.float32


def test_int_and_float_tensors(device):
    i = mr.tensor([1, 2, 3], device=device)
    assert i.dtype == mr.int64
    f32 = mr.tensor(np.ones(3, dtype=np.float32), device=device)
    f64 = mr.tensor(np.ones(3), device=device)
    assert (i + f32).dtype == mr.float32
    assert (f32 * i).dtype == mr.float32
    assert (i - f64).dtype == mr.float64
    assert (i * 2.5).dtype == mr.float32     # an int tensor meets a Python float
    assert (i / 2).dtype == mr.float32
    assert (i / i).dtype == mr.float32
    assert (i + 1).dtype == mr.int64
    np.testing.assert_allclose((i * 2.5).numpy(), [2.5, 5.0, 7.5])
    np.testing.assert_allclose((i / 2).numpy(), [0.5, 1.0, 1.5])


def test_int_tensor_cannot_require_grad(device):
    with pytest.raises(RuntimeError, match="floating"):
        mr.tensor([1, 2], device=device, requires_grad=True)


def test_float_grad_flows_past_int_tensor(device):
    x = leaf([1.0, 2.0, 3.0], device, dtype=np.float32)
    i = mr.tensor([1, 0, 2], device=device)
    (x * i).sum().backward()
    assert x.grad.dtype == mr.float32
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 0.0, 2.0])


# ---------------------------------------------------------------------------------------------
# tensor() and conversions
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("data, dtype", [
    (1.5, np.float32), ([1.0, 2.0], np.float32), ([[1, 2.5]], np.float32), (3, np.int64),
    ([1, 2], np.int64), (True, np.bool_), (np.array([1.0, 2.0]), np.float64),
    (np.array([1.0], dtype=np.float32), np.float32), (np.array([1], dtype=np.int32), np.int32),
])
def test_tensor_dtype_rules(device, data, dtype):
    t = mr.tensor(data, device=device)
    assert t.dtype == np.dtype(dtype)
    assert t.device == device
    np.testing.assert_array_equal(t.numpy(), np.asarray(data, dtype=dtype))


def test_tensor_explicit_dtype_and_copy(device):
    src = np.array([1.0, 2.0])
    t = mr.tensor(src, dtype=mr.float32, device=device)
    assert t.dtype == mr.float32
    u = mr.tensor(src, device=device)
    src[0] = 100.0
    assert u.numpy()[0] == 1.0               # tensor() copies
    assert mr.tensor([1, 2], dtype="float64", device=device).dtype == mr.float64
    with pytest.raises(TypeError, match="stack"):
        mr.tensor([mr.tensor(1.0), mr.tensor(2.0)])


def test_factories_default_float32(device):
    for t in (mr.zeros(2, 3, device=device), mr.ones((2, 3), device=device),
              mr.randn(2, 3, device=device), mr.rand(2, device=device)):
        assert t.dtype == mr.float32 and t.device == device
    assert mr.zeros(2, 3, device=device).shape == (2, 3)
    assert mr.ones((2, 3), device=device).shape == (2, 3)


def test_same_seed_same_values_on_every_device(device):
    mr.manual_seed(3)
    a = mr.randn(4, device=device).numpy()
    mr.manual_seed(3)
    b = mr.randn(4).numpy()
    np.testing.assert_array_equal(a, b)


def test_to_dtype_and_device(device):
    x = mr.tensor(np.array([1.0, 2.0], dtype=np.float32), device=device, requires_grad=True)
    assert x.to(x.device) is x and x.to(mr.float32) is x
    d = x.to(mr.float64)
    assert d.dtype == mr.float64 and d.device == device
    assert x.double().dtype == mr.float64 and d.float().dtype == mr.float32
    assert x.to("float64").dtype == mr.float64
    c = x.to("cpu", mr.float64)
    assert c.device == "cpu" and c.dtype == mr.float64
    s = x.to(device="strict")
    assert s.device == "strict"
    assert mr.zeros(1).to(x).device == device
    # gradients flow back through dtype and device moves, in the source dtype and device
    (c * 3).sum().backward()
    assert x.grad.dtype == mr.float32 and x.grad.device == device
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0])


def test_numpy_item_and_tolist(device):
    x = mr.tensor(np.array([[1.0, 2.0], [3.0, 4.0]]), device=device, requires_grad=True)
    h = x.numpy()
    assert isinstance(h, np.ndarray)
    np.testing.assert_array_equal(h, [[1.0, 2.0], [3.0, 4.0]])
    h[0, 0] = 99.0                          # a tensor that requires grad hands out a copy
    assert x.numpy()[0, 0] == 1.0
    s = x.sum()
    assert isinstance(s.item(), float) and s.item() == 10.0
    assert x[1, 0].item() == 3.0
    assert isinstance(mr.tensor(3, device=device).item(), int)
    assert x.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    with pytest.raises(ValueError, match=r"item.*\(2, 2\)"):
        x.item()


def test_mr_grad_returns_grads_without_touching_grad(device):
    x = leaf([1.0, 2.0], device)
    w = leaf([3.0, -1.0], device)
    h = x * w
    y = (h * h).sum()
    gx, gh = mr.grad(y, [x, h], retain_graph=True)
    np.testing.assert_allclose(gx.numpy(), 2 * (x.numpy() * w.numpy()) * w.numpy())
    np.testing.assert_allclose(gh.numpy(), 2 * h.numpy())
    assert x.grad is None and w.grad is None and h.grad is None
    (gw,) = mr.grad(y, [w])
    np.testing.assert_allclose(gw.numpy(), 2 * (x.numpy() * w.numpy()) * x.numpy())
    assert x.grad is None and w.grad is None
    with pytest.raises(RuntimeError, match="second time"):
        mr.grad(y, [x])


def test_inplace_on_leaf_requiring_grad_refused(device):
    x = leaf([1.0], device)
    with pytest.raises(RuntimeError, match="in-place"):
        x += 1
    y = x * 2
    y += 1                                   # a non-leaf: done out of place, graph intact
    y.sum().backward()
    assert x.grad.item() == 2.0


def test_leaf_grad_accumulates_in_place(device):
    # as in PyTorch: a second backward adds into the same .grad tensor
    x = mr.ones(3, requires_grad=True, device=device)
    (x * 2).sum().backward()
    first = x.grad
    (x * 3).sum().backward()
    assert x.grad is first
    np.testing.assert_allclose(x.grad.numpy(), [5.0, 5.0, 5.0])


def test_tensor_has_slots_only():
    """Tensor's fields are its __slots__ (no per-tensor __dict__): a typo such as
    ``t.requires_gard = True`` raises instead of being silently kept."""
    t = mr.tensor([1.0])
    assert not hasattr(t, "__dict__")
    with pytest.raises(AttributeError):
        t.requires_gard = True
