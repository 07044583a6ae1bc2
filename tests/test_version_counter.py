"""The version counter: one per piece of memory, shared by every tensor that views it, bumped by
every write; backward refuses a node whose kept tensors were written since the forward.

Each case is run the same way on PyTorch where it is installed: minires raises where PyTorch
raises, and gives PyTorch's gradient where PyTorch gives one (``.data`` is the one place where
minires is stricter: PyTorch's ``.data`` has its own counter and returns a wrong gradient).
"""
import numpy as np
import pytest

import minires as mr
from tests.conftest import requires_torch

MODIFIED = "modified by an inplace operation"

# Aliases of x's memory, taken the same way on minires and on PyTorch; each is then written in
# place after y = (w * x).sum() was built. (name, take the alias, write through it)
ALIASES = {
    "view": (lambda x: x.view(1, 3), lambda v: v.add_(10)),
    "reshape": (lambda x: x.reshape(3, 1), lambda v: v.add_(10)),
    "flatten": (lambda x: x.view(1, 3).flatten(), lambda v: v.mul_(2)),
    "unsqueeze": (lambda x: x.unsqueeze(0), lambda v: v.add_(10)),
    "squeeze": (lambda x: x.view(1, 3).squeeze(0), lambda v: v.sub_(1)),
    "permute": (lambda x: x.view(1, 3).permute(1, 0), lambda v: v.add_(10)),
    "transpose": (lambda x: x.view(1, 3).transpose(0, 1), lambda v: v.add_(10)),
    "t": (lambda x: x.view(1, 3).t(), lambda v: v.add_(10)),
    "T": (lambda x: x.view(1, 3).T, lambda v: v.add_(10)),
    "view_as": (lambda x: x.view_as(x.reshape(3, 1) * 0), lambda v: v.add_(10)),
    "index": (lambda x: x[1], lambda v: v.fill_(7)),
    "slice": (lambda x: x[1:], lambda v: v.zero_()),
    "data": (lambda x: x.data, lambda v: v.add_(10)),
    "detach": (lambda x: x.detach(), lambda v: v.add_(10)),
    "iadd": (lambda x: x.view(3), lambda v: v.__iadd__(1)),
    "copy_": (lambda x: x[:2], lambda v: v.copy_(v * 0 + 5)),
    "clamp_": (lambda x: x.view(3, 1), lambda v: v.clamp_(max=1.5)),
}


@pytest.mark.parametrize("name", sorted(ALIASES))
def test_write_through_an_alias_of_a_saved_tensor_raises(name, device):
    take, write = ALIASES[name]
    w = mr.ones(3, requires_grad=True, device=device)
    x = mr.tensor([1.0, 2.0, 3.0], device=device)
    y = (w * x).sum()
    write(take(x))
    with pytest.raises(RuntimeError, match=MODIFIED) as info:
        y.backward()
    message = str(info.value)
    assert "Mul" in message and "(3,)" in message and "float32" in message
    assert "expected version 0" in message and ".clone()" in message
    assert w.grad is None


def test_write_to_the_base_is_seen_through_expand(device):
    # the expanded view is what Mul keeps; the write goes to the memory under it
    w = mr.ones(2, 3, requires_grad=True, device=device)
    x = mr.tensor([1.0, 2.0, 3.0], device=device)
    y = (w * x.expand(2, 3)).sum()
    x.add_(1)
    with pytest.raises(RuntimeError, match=MODIFIED):
        y.backward()


def test_write_to_the_base_is_seen_through_a_view(device):
    w = mr.ones(3, requires_grad=True, device=device)
    x = mr.tensor([[1.0, 2.0, 3.0]], device=device)
    y = (w * x[0]).sum()
    x.mul_(2)
    with pytest.raises(RuntimeError, match="version 1; expected version 0"):
        y.backward()


@requires_torch
@pytest.mark.parametrize("name", sorted(set(ALIASES) - {"data"}))
def test_pytorch_raises_on_the_same_alias_writes(name):
    import torch
    take, write = ALIASES[name]
    w = torch.ones(3, requires_grad=True)
    x = torch.tensor([1.0, 2.0, 3.0])
    y = (w * x).sum()
    write(take(x))
    with pytest.raises(RuntimeError, match=MODIFIED):
        y.backward()


@requires_torch
def test_pytorch_data_alias_is_unchecked_and_wrong_where_minires_raises():
    # the one place minires is stricter: PyTorch's .data has a counter of its own
    import torch
    take, write = ALIASES["data"]
    w = torch.ones(3, requires_grad=True)
    x = torch.tensor([1.0, 2.0, 3.0])
    y = (w * x).sum()
    write(take(x))
    y.backward()
    assert w.grad.tolist() == [11.0, 12.0, 13.0]      # not x at the forward, [1, 2, 3]


def test_node_that_keeps_nothing_of_the_written_tensor_is_fine(device):
    # Add keeps neither input: writing one after the forward changes no gradient (PyTorch too)
    w = mr.ones(3, requires_grad=True, device=device)
    x = mr.tensor([1.0, 2.0, 3.0], device=device)
    y = (w + x.view(3)).sum()
    x.view(1, 3).add_(10)
    y.backward()
    np.testing.assert_array_equal(w.grad.numpy(), [1, 1, 1])


def test_write_before_the_forward_is_fine(device):
    w = mr.ones(3, requires_grad=True, device=device)
    x = mr.tensor([1.0, 2.0, 3.0], device=device)
    x.view(3).add_(1)
    (w * x).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [2, 3, 4])


def test_reshape_that_copies_has_its_own_counter(device):
    # a transposed tensor reshaped to 1-D is a copy: writing the copy cannot change x
    w = mr.ones(2, 2, requires_grad=True, device=device)
    x = mr.tensor([[1.0, 2.0], [3.0, 4.0]], device=device)
    y = (w * x).sum()
    copy = x.t().reshape(4)
    copy.add_(10)
    y.backward()
    np.testing.assert_array_equal(w.grad.numpy(), [[1, 2], [3, 4]])


def _inplace_on_graph_tensor_then_alias(lib, **kw):
    a = lib.tensor([1.0, 2.0, 3.0], requires_grad=True, **kw)
    b = lib.tensor([1.0, 2.0, 3.0], requires_grad=True, **kw)
    x = a * 1
    d = x.detach()
    x.mul_(b)
    d.add_(100)
    x.sum().backward()
    return a.grad.tolist(), b.grad.tolist()


def test_inplace_on_graph_tensor_then_write_to_its_alias(device):
    # mul_ keeps the old value of x for b's gradient: a copy of it, so the write through d (the
    # old memory) does not reach it. PyTorch gives the same, see below.
    a_grad, b_grad = _inplace_on_graph_tensor_then_alias(mr, device=device)
    assert b_grad == [1.0, 2.0, 3.0]
    assert a_grad == [1.0, 2.0, 3.0]


@requires_torch
def test_inplace_on_graph_tensor_then_alias_matches_pytorch():
    import torch
    assert _inplace_on_graph_tensor_then_alias(mr) == _inplace_on_graph_tensor_then_alias(torch)


def test_inplace_on_a_tensor_an_earlier_node_kept_raises(device):
    # Mul kept x; x.add_ (inside the graph) counts as a write to that memory, as in PyTorch
    a = mr.tensor([1.0, 2.0, 3.0], requires_grad=True, device=device)
    w = mr.ones(3, requires_grad=True, device=device)
    x = a * 2
    y = (w * x).sum()
    x.add_(1)
    with pytest.raises(RuntimeError, match=MODIFIED):
        y.backward()


def test_relu_inplace_then_write_to_its_output_raises(device):
    # ReLU keeps its output: writing it afterwards is caught; before, nothing is wrong
    a = mr.tensor([-1.0, 2.0, 3.0], requires_grad=True, device=device)
    r = mr.nn.ReLU(inplace=True)(a * 1)
    y = (r * r).sum()
    y.backward(retain_graph=True)
    np.testing.assert_array_equal(a.grad.numpy(), [0, 4, 6])
    with mr.no_grad():
        r.mul_(2)
    with pytest.raises(RuntimeError, match=MODIFIED):
        y.backward()


def _step_between_forward_and_backward(lib, make_optimizer):
    w = lib.nn.Parameter(lib.tensor([1.0, 2.0, 3.0]))
    opt = make_optimizer(lib, [w])
    x = lib.tensor([1.0, 2.0, 3.0])
    loss = (w * w * x).sum()
    w.grad = lib.ones(3)
    opt.step()
    loss.backward()


OPTIMIZERS = {
    "SGD": lambda lib, ps: lib.optim.SGD(ps, lr=0.1),
    "SGD momentum": lambda lib, ps: lib.optim.SGD(ps, lr=0.1, momentum=0.9),
    "Adam": lambda lib, ps: lib.optim.Adam(ps, lr=0.1),
    "Adadelta": lambda lib, ps: lib.optim.Adadelta(ps),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_step_between_forward_and_backward_raises(name):
    with pytest.raises(RuntimeError, match=MODIFIED) as info:
        _step_between_forward_and_backward(mr, OPTIMIZERS[name])
    assert "optimizer.step() only after" in str(info.value)


@requires_torch
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_pytorch_raises_on_a_step_between_forward_and_backward(name):
    import torch
    with pytest.raises(RuntimeError, match=MODIFIED):
        _step_between_forward_and_backward(torch, OPTIMIZERS[name])


def test_normal_loop_step_after_backward_and_zero_grad(device):
    model = mr.nn.Linear(3, 2).to(device)
    opt = mr.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = mr.randn(4, 3, device=device)
    losses = []
    for _ in range(3):
        opt.zero_grad()
        loss = (model(x) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[2] < losses[0]
    opt.zero_grad(set_to_none=False)
    assert float(np.abs(model.weight.grad.numpy()).sum()) == 0.0


def test_step_bumps_the_shared_counter_of_parameter_views():
    w = mr.nn.Parameter(mr.tensor([1.0, 2.0]))
    view = w.detach().view(2, 1)
    before = view._version[0]
    w.grad = mr.ones(2)
    mr.optim.SGD([w], lr=1.0).step()
    assert view._version[0] == before + 1
    np.testing.assert_array_equal(view.numpy().ravel(), [0.0, 1.0])


def test_inplace_on_tensors_no_node_kept_still_works(device):
    w = mr.ones(3, requires_grad=True, device=device)
    h = w * 2                          # Mul keeps w (a leaf) and the constant, not h
    h.add_(1)                          # in place, in the graph: h is nobody's saved tensor
    h.relu_()
    h.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [2, 2, 2])


def test_init_writes_in_place_and_bumps(device):
    layer = mr.nn.Linear(3, 2).to(device)
    alias = layer.weight.detach()
    version = alias._version[0]
    mr.nn.init.zeros_(layer.weight)
    assert alias._version[0] > version
    assert float(np.abs(alias.numpy()).sum()) == 0.0


def test_load_state_dict_writes_in_place_and_bumps(device):
    a, b = mr.nn.Linear(3, 2).to(device), mr.nn.Linear(3, 2).to(device)
    weight = a.weight
    x = mr.randn(1, 3, device=device)
    loss = (a(x) ** 2).sum()           # Linear keeps a.weight
    a.load_state_dict(b.state_dict())
    assert a.weight is weight
    np.testing.assert_array_equal(weight.detach().numpy(), b.weight.detach().numpy())
    with pytest.raises(RuntimeError, match=MODIFIED):
        loss.backward()


def test_inplace_on_an_expanded_view_is_one_clear_error():
    x = mr.ones(3).expand(2, 3)
    with pytest.raises(RuntimeError, match=r"add_: .*expand\(\)-ed view.*\.clone\(\)"):
        x.add_(1)


def test_failed_inplace_in_the_graph_does_not_bump(device):
    w = mr.ones(3, requires_grad=True, device=device)
    x = w * 2
    y = (x * x).sum()
    with pytest.raises(RuntimeError, match="does not fit in place"):
        x.add_(mr.ones(2, 3, device=device))     # broadcasting x itself: refused
    y.backward()                                  # x was not written: no version error
    np.testing.assert_array_equal(w.grad.numpy(), [8, 8, 8])


def test_clone_is_the_fix_the_error_names(device):
    # the hint of the error: change a clone in place, not the tensor the graph kept
    w = mr.ones(3, requires_grad=True, device=device)
    x = mr.tensor([1.0, 2.0, 3.0], device=device)
    y = (w * x).sum()
    c = x.clone()
    c.add_(10)
    assert c._version is not x._version
    np.testing.assert_array_equal(c.numpy(), [11, 12, 13])
    np.testing.assert_array_equal(x.numpy(), [1, 2, 3])
    y.backward()
    np.testing.assert_array_equal(w.grad.numpy(), [1, 2, 3])


def test_clone_is_in_the_graph(device):
    w = mr.tensor([1.0, 2.0], requires_grad=True, device=device)
    c = mr.clone(w * 3)
    c.mul_(2)
    c.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [6, 6])


def test_batch_norm_training_bumps_its_running_buffers(device):
    bn = mr.nn.BatchNorm2d(2).to(device)
    aliases = [bn.running_mean.detach(), bn.running_var.detach(), bn.num_batches_tracked.detach()]
    bn(mr.randn(2, 2, 3, 3, device=device))
    assert [a._version[0] for a in aliases] == [1, 1, 1]
    bn.eval()
    bn(mr.randn(2, 2, 3, 3, device=device))         # evaluation writes nothing
    assert [a._version[0] for a in aliases] == [1, 1, 1]


# --- the kernels' caches: a convolution and batch norm keep their input and weight there ---

def _kernel_cache_case(lib, name, device="cpu"):
    """A loss through a layer whose kernel keeps its input or weight in its cache, and the
    tensor to change in place before the backward."""
    if name.startswith("conv2d"):
        x = lib.randn(2, 3, 5, 5, device=device, requires_grad=name.endswith("weight"))
        w = lib.randn(4, 3, 3, 3, device=device, requires_grad=True)
        return lib.nn.functional.conv2d(x, w, padding=1).sum(), (x if "input" in name else w)
    bn = lib.nn.BatchNorm2d(3).to(device)
    x = lib.randn(4, 3, 5, 5, device=device, requires_grad=True)
    return (bn(x) ** 2).sum(), bn.weight


KERNEL_CACHE_CASES = ["conv2d input", "conv2d weight", "batch_norm weight"]


@pytest.mark.parametrize("name", KERNEL_CACHE_CASES)
def test_a_kernel_cache_keeps_its_input_and_weight_under_the_version_check(name, device):
    loss, changed = _kernel_cache_case(mr, name, device)
    with mr.no_grad():
        changed.add_(1)                    # as an optimizer step between forward and backward
    with pytest.raises(RuntimeError, match=MODIFIED):
        loss.backward()


@requires_torch
@pytest.mark.parametrize("name", KERNEL_CACHE_CASES)
def test_pytorch_raises_on_the_same_kernel_cache_writes(name):
    import torch
    loss, changed = _kernel_cache_case(torch, name)
    with torch.no_grad():
        changed.add_(1)
    with pytest.raises(RuntimeError, match=MODIFIED):
        loss.backward()
