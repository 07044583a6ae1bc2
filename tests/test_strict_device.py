"""The "strict" device: NumPy behind a wrapper that refuses what CuPy refuses (implicit transfers to
the host, mixing host and device arrays), plus device names and MINIRES_DEVICE handling."""
import numpy as np
import pytest

import minires as mr
from minires import backend


@pytest.fixture
def st():
    return mr.tensor(np.arange(6.0).reshape(2, 3), device="strict")


def test_strict_tensor_holds_a_strict_array(st):
    assert st.device == "strict" and str(st.device) == "strict"
    assert isinstance(st.array, backend.StrictArray)
    assert not isinstance(st.array, np.ndarray)


def test_np_asarray_refuses(st):
    with pytest.raises(TypeError, match=r"asarray.*strict"):
        np.asarray(st.array)
    with pytest.raises(TypeError, match="strict"):
        np.array(st.array)


def test_float_int_bool_refuse():
    one = mr.tensor(np.array([2.5]), device="strict").array
    with pytest.raises(TypeError, match=r"float\(\)"):
        float(one)
    with pytest.raises(TypeError, match=r"int\(\)"):
        int(one)
    with pytest.raises(TypeError, match=r"bool\(\)"):
        bool(one)
    with pytest.raises(TypeError, match=r"\.item\(\)"):
        one.item()
    with pytest.raises(TypeError, match="index"):
        [1, 2, 3][mr.tensor(1, device="strict").array]


def test_iteration_and_tolist_refuse(st):
    with pytest.raises(TypeError, match="iteration"):
        iter(st.array)
    with pytest.raises(TypeError, match="iteration"):
        list(st.array)
    with pytest.raises(TypeError, match=r"\.tolist\(\)"):
        st.array.tolist()


def test_numpy_functions_on_raw_strict_arrays_refuse(st):
    with pytest.raises(TypeError):
        np.add(st.array, 1.0)
    with pytest.raises(TypeError, match="strict"):
        np.concatenate([st.array, st.array])
    with pytest.raises(TypeError, match="host numpy.ndarray"):
        st.array + np.ones(3)
    with pytest.raises(TypeError):
        np.ones(3) + st.array


def test_strict_array_module_works_on_device_arrays(st):
    xp = st.xp
    assert xp is backend.strict_numpy
    out = xp.exp(st.array) + xp.ones(3)
    assert isinstance(out, backend.StrictArray)
    np.testing.assert_allclose(backend.to_host(out), np.exp(np.arange(6.0).reshape(2, 3)) + 1)
    with pytest.raises(TypeError, match="host"):
        xp.maximum(st.array, np.zeros(3))       # a host array into a device function


@pytest.mark.parametrize("op", [lambda t, a: t + a, lambda t, a: a + t, lambda t, a: t * a,
                                lambda t, a: a - t, lambda t, a: t @ a.reshape(3, 1),
                                lambda t, a: mr.where(t > 1, t, a)],
                         ids=["add", "radd", "mul", "rsub", "matmul", "where"])
def test_host_numpy_array_mixed_with_strict_tensor_raises(st, op):
    host = np.ones(3)
    with pytest.raises(TypeError, match=r"host|strict"):
        op(st, host)


def test_host_array_index_on_strict_tensor_raises(st):
    with pytest.raises(TypeError, match="host"):
        st[np.array([0, 1])]
    np.testing.assert_array_equal(st[mr.tensor([1, 1], device="strict")].numpy(),
                                  np.arange(6.0).reshape(2, 3)[[1, 1]])
    np.testing.assert_array_equal(st[[1, 0]].numpy(), np.arange(6.0).reshape(2, 3)[[1, 0]])


@pytest.mark.parametrize("op", [
    lambda c, s: c + s, lambda c, s: s * c, lambda c, s: c @ s.T, lambda c, s: mr.cat([c, s]),
    lambda c, s: mr.ops.linear(c, s), lambda c, s: mr.stack([s, c]),
], ids=["add", "mul", "matmul", "cat", "linear", "stack"])
def test_tensor_ops_across_devices_raise_naming_both(op):
    c = mr.tensor(np.ones((2, 3)))
    s = mr.tensor(np.ones((2, 3)), device="strict")
    with pytest.raises(RuntimeError) as info:
        op(c, s)
    assert "cpu" in str(info.value) and "strict" in str(info.value)


def test_nn_ops_across_devices_raise_naming_both():
    x = mr.tensor(np.ones((1, 2, 4, 4)))
    w = mr.tensor(np.ones((3, 2, 3, 3)), device="strict")
    with pytest.raises(RuntimeError, match=r"cpu.*strict|strict.*cpu"):
        mr.ops.conv2d(x, w)
    logits = mr.tensor(np.ones((2, 3)))
    target = mr.tensor([0, 1], device="strict")
    with pytest.raises(RuntimeError, match=r"cross_entropy.*cpu.*strict"):
        mr.ops.cross_entropy(logits, target)
    rm = mr.zeros(2, device="strict", dtype=mr.float64)
    rv = mr.ones(2, device="strict", dtype=mr.float64)
    with pytest.raises(RuntimeError, match=r"batch_norm.*cpu.*strict"):
        mr.ops.batch_norm(x, rm, rv, None, None, True)
    np.testing.assert_array_equal(rm.numpy(), [0.0, 0.0])      # not half-updated
    xs = x.to("strict")
    with pytest.raises(RuntimeError, match=r"batch_norm.*strict.*cpu"):
        mr.ops.batch_norm(xs, rm.to("cpu"), rv.to("cpu"), None, None, True)


def test_backward_with_gradient_on_another_device_raises(st):
    x = mr.tensor(np.ones(3), device="strict", requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match=r"cpu.*strict"):
        y.backward(mr.tensor(np.ones(3)))


def test_explicit_transfers_work(st):
    host = st.numpy()
    assert isinstance(host, np.ndarray)
    np.testing.assert_array_equal(host, np.arange(6.0).reshape(2, 3))
    c = st.to("cpu")
    assert c.device == "cpu" and isinstance(c.array, np.ndarray)
    np.testing.assert_array_equal(c.array, host)
    back = c.to("strict")
    assert isinstance(back.array, backend.StrictArray)
    assert st.sum().item() == 15.0
    assert float(st[0, 1]) == 1.0
    assert st.tolist() == host.tolist()
    assert "strict" in repr(st)
    host[0, 0] = 42.0                           # numpy() is a copy for a device tensor
    assert st.numpy()[0, 0] == 0.0


def test_gradients_stay_on_the_strict_device():
    rng = np.random.default_rng(0)
    x = mr.tensor(rng.standard_normal((2, 3, 6, 6)), device="strict", requires_grad=True)
    w = mr.tensor(rng.standard_normal((4, 3, 3, 3)), device="strict", requires_grad=True)
    g = mr.tensor(np.ones(4), device="strict", requires_grad=True)
    h = mr.ops.conv2d(x, w, padding=1)
    h = mr.ops.batch_norm(h, None, None, g, None, True).relu()
    h = mr.ops.max_pool2d(h, 2)
    h = mr.ops.adaptive_avg_pool2d(h, 1).flatten(1)
    loss = mr.ops.cross_entropy(h, mr.tensor([0, 3], device="strict"))
    loss.backward()
    for t in (loss, x.grad, w.grad, g.grad):
        assert isinstance(t.array, backend.StrictArray)
    assert np.isfinite(x.grad.numpy()).all() and np.abs(w.grad.numpy()).sum() > 0


def test_cuda_is_available_never_raises(monkeypatch):
    for value in (None, "cpu", "strict", "cuda", "bogus"):
        if value is None:
            monkeypatch.delenv("MINIRES_DEVICE", raising=False)
        else:
            monkeypatch.setenv("MINIRES_DEVICE", value)
        assert isinstance(mr.cuda.is_available(), bool)
        assert isinstance(mr.cuda.device_count(), int)
    monkeypatch.setenv("MINIRES_DEVICE", "cpu")
    assert mr.cuda.is_available() is False


@pytest.mark.parametrize("name", ["gpu", "tpu", "cuda:x", "cpu:0", "", "strict:1"])
def test_unknown_device_names_raise_value_error(name):
    with pytest.raises(ValueError, match="unknown device"):
        mr.device(name)
    with pytest.raises(ValueError, match="unknown device"):
        mr.tensor([1.0], device=name)
    with pytest.raises(ValueError, match="unknown device"):
        mr.zeros(2, device=name)


def test_device_names_parse():
    assert mr.device("CUDA") == "cuda:0" and mr.device("cuda:1").index == 1
    assert mr.device(" strict ") == "strict" and mr.device("cpu") != "strict"
    assert mr.device("cpu") != "nonsense"
    with pytest.raises(TypeError, match="device"):
        mr.device(3)


def test_cuda_unavailable_raises_device_error_when_used():
    if mr.cuda.is_available():
        pytest.skip("a GPU is usable here")
    with pytest.raises(mr.DeviceError, match="cuda"):
        mr.zeros(2, device="cuda")
    with pytest.raises(RuntimeError, match="cuda"):
        mr.tensor([1.0]).to("cuda")


def test_minires_device_sets_the_default(monkeypatch):
    monkeypatch.setenv("MINIRES_DEVICE", "strict")
    assert mr.backend.default_device() == "strict"
    assert mr.zeros(2).device == "strict"
    assert mr.randn(2).device == "strict"
    assert mr.tensor([1.0]).device == "strict"
    assert mr.tensor(np.ones(2)).device == "strict"
    assert isinstance(mr.ones(2).array, backend.StrictArray)
    assert mr.zeros(2, device="cpu").device == "cpu"          # an explicit device wins
    monkeypatch.setenv("MINIRES_DEVICE", "  Strict ")
    assert mr.zeros(1).device == "strict"
    monkeypatch.setenv("MINIRES_DEVICE", "")
    assert mr.zeros(1).device == "cpu"
    monkeypatch.delenv("MINIRES_DEVICE")
    assert mr.zeros(1).device == "cpu" and mr.tensor(1.0).device == "cpu"
    monkeypatch.setenv("MINIRES_DEVICE", "bogus")
    with pytest.raises(ValueError, match="bogus"):
        mr.zeros(1)


def test_tensor_keeps_the_device_of_a_device_array():
    s = mr.tensor(np.ones(2), device="strict")
    assert mr.tensor(s.array).device == "strict"
    assert mr.tensor(s).device == "strict"
    assert mr.tensor(s, device="cpu").device == "cpu"
