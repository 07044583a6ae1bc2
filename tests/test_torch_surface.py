"""PyTorch's tensor surface as real programs use it (issue 14): ``.data``, in-place methods and
their autograd rules, ``topk``/``eq``/``expand_as``/``view_as``/``type``, ``__index__``,
``Tensor([...])``, ``grad_fn.next_functions``, ``Size``, and ``where`` as a real selection."""
import math

import numpy as np
import pytest

import minires as mr
from minires.gradcheck import gradcheck


def t64(a, device, requires_grad=False):
    return mr.tensor(np.asarray(a, dtype=np.float64), device=device, requires_grad=requires_grad)


# --- .data (item 1) ---

def test_data_is_a_detached_tensor_sharing_memory(device):
    p = mr.randn(2, 3, device=device, requires_grad=True)
    assert isinstance(p.data, mr.Tensor) and p.data.size() == (2, 3)
    assert not p.data.requires_grad and p.data.grad_fn is None
    y = (p * 2).data                              # detached from the graph
    assert y.grad_fn is None and not y.requires_grad
    before = p.numpy().copy()
    (p * p).sum().backward()
    p.data.sub_(0.1 * p.grad.data)                # the classic hand-written SGD step
    np.testing.assert_allclose(p.numpy(), before - 0.1 * 2 * before, rtol=1e-6)
    p.data = mr.zeros(2, 3, device=device)        # the setter takes a Tensor
    assert float(p.abs().sum()) == 0.0


def test_max_of_data_along_dim(device):
    outputs = mr.tensor([[0.1, 2.0, 0.3], [5.0, 0.0, 1.0]], device=device, requires_grad=True)
    values, predicted = mr.max(outputs.data, 1)
    assert predicted.tolist() == [1, 0] and values.tolist() == [2.0, 5.0]
    assert (predicted == mr.tensor([1, 2], device=device)).sum().item() == 1


# --- methods (item 2) ---

def test_size_prints_like_torch(device):
    x = mr.zeros(2, 3, device=device)
    assert isinstance(x.shape, tuple) and x.shape == (2, 3) and x.size() == x.shape
    assert repr(x.size()) == "minires.Size([2, 3])" and str(x.shape) == "minires.Size([2, 3])"
    assert x.shape.numel() == 6 and x.size(1) == 3


def test_eq_ne_topk_and_argmax_axis(device):
    x = mr.tensor([[1.0, 5.0, 3.0, 4.0], [9.0, 2.0, 6.0, 0.0]], device=device)
    assert x.eq(x).sum().item() == 8
    assert x.ne(x).sum().item() == 0 and x.eq(5.0).sum().item() == 1
    values, indices = x.topk(2, 1, True, True)
    assert values.tolist() == [[5.0, 4.0], [9.0, 6.0]] and indices.tolist() == [[1, 3], [0, 2]]
    smallest = x.topk(1, dim=0, largest=False)
    assert smallest.values.tolist() == [[1.0, 2.0, 3.0, 0.0]]
    assert x.argmax(axis=1).tolist() == [1, 0] == x.argmax(dim=1).tolist()
    assert x.argmin(1).tolist() == [0, 3]


def test_topk_against_sort_and_its_gradient(device):
    rng = np.random.default_rng(0)
    a = rng.permutation(24).reshape(4, 6).astype(np.float64)     # no ties
    x = t64(a, device, requires_grad=True)
    v, i = x.topk(3, dim=1)
    ref = -np.sort(-a, axis=1)[:, :3]
    np.testing.assert_array_equal(v.numpy(), ref)
    np.testing.assert_array_equal(np.take_along_axis(a, i.numpy(), 1), ref)
    assert gradcheck(lambda t: t.topk(3, dim=0)[0], (x,))


def test_top1_accuracy_with_topk_like_training_scripts(device):
    output = mr.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5]], device=device)
    target = mr.tensor([1, 2, 2], device=device)
    _, pred = output.topk(1, 1, True, True)
    pred = pred.t()
    correct = pred.eq(target.view(1, -1).expand_as(pred))
    assert correct[:1].reshape(-1).float().sum(0).item() == 2.0


def test_expand_as_view_as_and_type(device):
    x = t64([[1.0], [2.0]], device, requires_grad=True)
    other = mr.zeros(2, 3, dtype=mr.float64, device=device)
    e = x.expand_as(other)
    assert e.shape == (2, 3) and e.tolist() == [[1.0] * 3, [2.0] * 3]
    assert gradcheck(lambda t: t.expand(2, 3) * mr.tensor([1.0, 2.0, 3.0], dtype=mr.float64,
                                                           device=device), (x,))
    assert x.view_as(mr.zeros(1, 2)).shape == (1, 2)
    assert x.type() == "minires.DoubleTensor"
    assert x.type(mr.float32).dtype == mr.float32 and x.type("torch.LongTensor").dtype == mr.int64


def test_index_of_integer_tensor(device):
    classes = ("plane", "car", "bird")
    labels = mr.tensor([2, 0], device=device)
    assert classes[labels[0]] == "bird" and [classes[labels[j]] for j in range(2)][1] == "plane"
    with pytest.raises(TypeError, match="integer tensors"):
        classes[mr.tensor(1.0, device=device)]


def test_tensor_constructor_from_a_list():
    x = mr.Tensor([1, 2, 3])
    assert x.dtype == mr.float32 and x.tolist() == [1.0, 2.0, 3.0]
    assert mr.Tensor(2, 3).shape == (2, 3)


def test_next_functions_walk_the_graph(device):
    w = mr.randn(3, device=device, requires_grad=True)
    y = (w * 2).sum()
    (mul, _), = y.grad_fn.next_functions
    assert mul.name == "Mul"
    (leaf, _), (const, _) = mul.next_functions
    assert leaf.name == "AccumulateGrad" and leaf.variable is w and const is None


# --- in-place (item 2 and 5) ---

def test_inplace_outside_the_graph_writes_memory(device):
    x = mr.tensor([1.0, 2.0], device=device)
    y = x
    alias = x.data
    x += 1
    assert y.tolist() == [2.0, 3.0] and alias.tolist() == [2.0, 3.0]
    x.mul_(2).sub_(1).div_(2)
    assert x.tolist() == [1.5, 2.5]
    x.clamp_(min=2.0)
    assert x.tolist() == [2.0, 2.5]
    x.fill_(7.0)
    assert alias.tolist() == [7.0, 7.0]
    x.zero_()
    assert alias.tolist() == [0.0, 0.0]
    x.copy_(mr.tensor([3, 4], device=device))
    assert alias.tolist() == [3.0, 4.0]
    x.add_(mr.ones(2, device=device), alpha=2)
    assert x.tolist() == [5.0, 6.0]


def test_inplace_rules_of_leaves(device):
    w = mr.randn(3, device=device, requires_grad=True)
    for op in (lambda: w.add_(1), lambda: w.zero_(), lambda: w.mul_(2),
               lambda: w.copy_(mr.ones(3, device=device))):
        with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
            op()
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        w += 1
    with mr.no_grad():
        w -= 1                                     # the optimiser's way
    i = mr.tensor([1, 2], device=device)
    with pytest.raises(RuntimeError, match="can't be cast"):
        i += 1.5


def test_inplace_in_the_graph_has_the_right_gradient(device):
    x = t64([0.5, -1.0, 2.0], device, requires_grad=True)

    def f(t):
        h = t * 3
        h += t * t            # h = 3t + t^2
        h.mul_(2)             # 6t + 2t^2
        h.clamp_(max=9.0)
        h.relu_()
        return h
    assert gradcheck(f, (x,))
    out = f(x)
    np.testing.assert_allclose(out.numpy(), np.clip(np.maximum(6 * x.numpy() + 2 * x.numpy() ** 2,
                                                               0), None, 9.0))
    x.grad = None
    y = mr.zeros(3, dtype=mr.float64, device=device)
    y.copy_(x)                 # a non-leaf gets its graph from the source
    (y * y).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy())


def test_inplace_on_a_saved_tensor_raises_instead_of_a_wrong_gradient(device):
    x = t64([0.5, 1.0], device, requires_grad=True)
    e = x.exp()
    e.add_(1)                   # exp's backward needs its output: changed
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        e.sum().backward()
    r = (x * 1).relu_()
    r.clamp_(max=0.7)           # as in PyTorch: relu's backward reads its (now changed) output
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        r.sum().backward()
    w = t64([1.0, 2.0], device, requires_grad=True)
    data = t64([3.0, 4.0], device)
    y = (w * data).sum()
    data += 1                   # mul saved `data`: its gradient for w would be wrong
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()
    z = (w + data).sum()
    data += 1                   # add saves nothing: fine, as in PyTorch
    z.backward()
    np.testing.assert_allclose(w.grad.numpy(), [1.0, 1.0])


# --- where (item 6) ---

def test_where_selects_without_arithmetic(device):
    out = mr.where(mr.tensor([True, False], device=device), mr.tensor([1.0, math.inf],
                   device=device), mr.tensor([0.0, 0.0], device=device))
    assert out.tolist() == [1.0, 0.0]
    a = t64([1.0, math.inf, 3.0], device, requires_grad=True)
    b = t64([math.nan, 5.0, 6.0], device, requires_grad=True)
    out = mr.where(mr.tensor([True, False, True], device=device), a, b)
    assert out.tolist() == [1.0, 5.0, 3.0]
    out.sum().backward()
    assert a.grad.tolist() == [1.0, 0.0, 1.0] and b.grad.tolist() == [0.0, 1.0, 0.0]


def test_where_gradcheck_with_broadcasting(device):
    rng = np.random.default_rng(1)
    cond = mr.tensor(rng.random((3, 4)) > 0.5, device=device)
    a = t64(rng.standard_normal((3, 4)), device, requires_grad=True)
    b = t64(rng.standard_normal((4,)), device, requires_grad=True)
    assert gradcheck(lambda p, q: mr.where(cond, p, q), (a, b))
    ref = np.where(cond.numpy(), a.numpy(), b.numpy())
    np.testing.assert_array_equal(mr.where(cond, a, b).numpy(), ref)
    np.testing.assert_array_equal(mr.where(cond, a, 0.0).numpy(), np.where(cond.numpy(),
                                                                          a.numpy(), 0.0))


@pytest.mark.torch
def test_surface_parity_with_torch():
    torch = pytest.importorskip("torch")
    a = np.random.default_rng(2).standard_normal((3, 5))
    v, i = mr.tensor(a).topk(2, dim=1)
    tv, ti = torch.tensor(a).topk(2, dim=1)
    np.testing.assert_array_equal(v.numpy(), tv.numpy())
    np.testing.assert_array_equal(i.numpy(), ti.numpy())
    assert repr(mr.zeros(2, 3).shape).replace("minires", "torch") == repr(torch.zeros(2, 3).shape)
