"""Memory layout: convolutions produce channels-last memory behind an NCHW view, and the ops
after them must keep gradients in that layout. A gradient that turns C-ordered makes every
later op stride across memory; nothing is wrong numerically, so only these tests notice.
(Host arrays only: the strides of a CPU tensor are what the test inspects.)"""
import numpy as np

import minires as mr
import minires.nn.functional as F
from minires import backend


def channels_last(array) -> bool:
    return array.ndim == 4 and array.transpose(0, 2, 3, 1).flags.c_contiguous


def gradient_reaching(op, x_nhwc_shape, gradient_order="C"):
    """Apply ``op`` to a channels-last NCHW view; backpropagate a gradient laid out in
    ``gradient_order``; return the raw gradient array that reaches the view."""
    leaf = mr.tensor(np.random.default_rng(0).standard_normal(x_nhwc_shape), requires_grad=True)
    x = leaf.permute(0, 3, 1, 2)
    assert channels_last(x.array)
    seen = []
    x.register_hook(lambda g: seen.append(g.array))
    y = op(x)
    g = np.ones(y.shape) if gradient_order == "C" else \
        np.ones((y.shape[0], y.shape[2], y.shape[3], y.shape[1])).transpose(0, 3, 1, 2)
    y.backward(gradient=mr.tensor(g))
    return y, seen[0]


def test_conv2d_output_and_input_gradient_are_channels_last():
    w = mr.randn(5, 3, 3, 3, dtype=mr.float64, requires_grad=True)
    y, g = gradient_reaching(lambda x: F.conv2d(x, w, padding=1), (2, 6, 6, 3))
    assert channels_last(y.array) and channels_last(g)


def test_relu_gradient_takes_the_layout_of_its_output_not_of_the_incoming_gradient():
    y, g = gradient_reaching(F.relu, (2, 4, 4, 3), gradient_order="C")
    assert channels_last(y.array)
    assert channels_last(g)
    expected = (np.random.default_rng(0).standard_normal((2, 4, 4, 3)) > 0).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(g, expected.astype(g.dtype))


def test_batch_norm_keeps_channels_last():
    y, g = gradient_reaching(lambda x: mr.ops.batch_norm(x, None, None, None, None, True),
                             (4, 3, 3, 5), gradient_order="K")
    assert channels_last(y.array) and channels_last(g)


def test_zero_pad_shortcut_is_channels_last_both_ways():
    y, g = gradient_reaching(lambda x: mr.ops.zero_pad_shortcut(x, 6, 2), (2, 4, 4, 3))
    assert channels_last(y.array) and channels_last(g)
    np.testing.assert_array_equal(g[:, :, ::2, ::2], 1.0)
    np.testing.assert_array_equal(g[:, :, 1::2, :], 0.0)


def test_every_relu_of_a_resnet_gets_a_channels_last_gradient(monkeypatch):
    from minires.ops import elementwise
    layouts = []
    original = elementwise.ReLU.backward

    def spy(self, g):
        out = original(self, g)
        layouts.append(channels_last(out))
        return out
    monkeypatch.setattr(elementwise.ReLU, "backward", spy)
    model = mr.models.cifar_resnet(8, width=4)
    x = mr.randn(4, 3, 8, 8)
    F.cross_entropy(model(x), mr.tensor(np.array([0, 1, 2, 3]))).backward()
    assert len(layouts) == 7 and all(layouts)


def test_tune_host_allocator_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("MINIRES_TUNE_MALLOC", "0")
    assert backend.tune_host_allocator() is False
    monkeypatch.setenv("MINIRES_TUNE_MALLOC", "1")
    assert isinstance(backend.tune_host_allocator(), bool)


def test_a_leaf_gradient_takes_the_layout_of_the_leaf():
    data = np.ascontiguousarray(np.random.default_rng(1).standard_normal((2, 4, 4, 3)))
    leaf = mr.Tensor(data.transpose(0, 3, 1, 2), requires_grad=True)    # channels-last leaf
    for _ in range(2):                                                   # create, then accumulate
        F.relu(leaf).sum().backward()
        assert channels_last(leaf.grad.array)
    np.testing.assert_array_equal(leaf.grad.numpy(), 2.0 * (leaf.numpy() > 0))
    contiguous = mr.randn(2, 3, 4, 4, requires_grad=True)
    (contiguous * 2).sum().backward()
    assert contiguous.grad.array.flags.c_contiguous
