"""Grouped convolution, GroupNorm and the Lazy layers (issue 14, item 4): forward against a slow
reference, float64 gradient checks, parity with PyTorch where installed."""
import numpy as np
import pytest

import minires as mr
import minires.nn as nn
import minires.nn.functional as F
from minires.gradcheck import gradcheck


def t64(a, device, requires_grad=True):
    return mr.tensor(np.asarray(a, dtype=np.float64), device=device, requires_grad=requires_grad)


def naive_grouped_conv(x, w, b, stride, padding, groups):
    """Seven nested loops: obviously right."""
    n, c, h, wd = x.shape
    f, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    ho, wo = (h + 2 * padding - kh) // stride + 1, (wd + 2 * padding - kw) // stride + 1
    y = np.zeros((n, f, ho, wo))
    fg = f // groups
    for o in range(f):
        g = o // fg
        for i in range(ho):
            for j in range(wo):
                patch = xp[:, g * cg:(g + 1) * cg, i * stride:i * stride + kh,
                           j * stride:j * stride + kw]
                y[:, o, i, j] = (patch * w[o]).sum(axis=(1, 2, 3)) + (b[o] if b is not None else 0)
    return y


@pytest.mark.parametrize("groups,stride,padding", [(2, 1, 1), (4, 2, 0), (4, 1, 1)])
def test_grouped_conv_forward_and_gradcheck(device, groups, stride, padding):
    rng = np.random.default_rng(groups + stride)
    x = rng.standard_normal((2, 4, 5, 5))
    w = rng.standard_normal((8, 4 // groups, 3, 3))
    b = rng.standard_normal(8)
    xt, wt, bt = t64(x, device), t64(w, device), t64(b, device)
    y = F.conv2d(xt, wt, bt, stride=stride, padding=padding, groups=groups)
    np.testing.assert_allclose(y.numpy(), naive_grouped_conv(x, w, b, stride, padding, groups),
                               rtol=1e-10, atol=1e-10)
    assert gradcheck(lambda a, k, c: F.conv2d(a, k, c, stride=stride, padding=padding,
                                              groups=groups), (xt, wt, bt))


def test_depthwise_conv_module_and_bad_groups(device):
    conv = nn.Conv2d(6, 6, 3, padding=1, groups=6, bias=False).to(device)
    assert conv.weight.shape == (6, 1, 3, 3) and "groups=6" in repr(conv)
    assert conv(mr.randn(1, 6, 4, 4, device=device)).shape == (1, 6, 4, 4)
    with pytest.raises(ValueError, match="groups=4 must divide"):
        nn.Conv2d(6, 8, 3, groups=4)
    with pytest.raises(ValueError, match="groups=2 expects 8"):
        F.conv2d(mr.randn(1, 6, 4, 4), mr.randn(4, 4, 3, 3), groups=2)


def naive_group_norm(x, groups, weight, bias, eps):
    n, c = x.shape[:2]
    out = np.empty_like(x)
    for i in range(n):
        for g in range(groups):
            sl = x[i, g * c // groups:(g + 1) * c // groups]
            out[i, g * c // groups:(g + 1) * c // groups] = (sl - sl.mean()) / np.sqrt(
                sl.var() + eps)
    shape = (1, c) + (1,) * (x.ndim - 2)
    return out * weight.reshape(shape) + bias.reshape(shape)


@pytest.mark.parametrize("shape,groups", [((2, 6, 3, 4), 3), ((3, 4, 5), 2), ((2, 4), 4)])
def test_group_norm_forward_and_gradcheck(device, shape, groups):
    rng = np.random.default_rng(len(shape))
    x = rng.standard_normal(shape) * 3 + 1
    w, b = rng.standard_normal(shape[1]), rng.standard_normal(shape[1])
    xt, wt, bt = t64(x, device), t64(w, device), t64(b, device)
    y = F.group_norm(xt, groups, wt, bt, eps=1e-5)
    np.testing.assert_allclose(y.numpy(), naive_group_norm(x, groups, w, b, 1e-5), rtol=1e-10,
                               atol=1e-10)
    assert gradcheck(lambda a, k, c: F.group_norm(a, groups, k, c), (xt, wt, bt))
    assert gradcheck(lambda a: F.group_norm(a, groups), (xt,))


def test_group_norm_module(device):
    gn = nn.GroupNorm(2, 4).to(device)
    assert gn.weight.tolist() == [1.0] * 4 and gn.bias.tolist() == [0.0] * 4
    y = gn(mr.randn(2, 4, 3, 3, device=device))
    per_group = y.numpy().reshape(2, 2, -1)
    np.testing.assert_allclose(per_group.mean(axis=2), 0, atol=1e-5)
    with pytest.raises(ValueError, match="must divide"):
        nn.GroupNorm(3, 4)


def test_lazy_layers_take_their_input_size(device):
    mr.manual_seed(0)
    model = nn.Sequential(nn.LazyConv2d(4, 3, padding=1), nn.LazyBatchNorm2d(), nn.ReLU(),
                          nn.Flatten(), nn.LazyLinear(3)).to(device)
    assert list(model.parameters()) == []
    out = model(mr.randn(2, 5, 4, 4, device=device))
    assert out.shape == (2, 3)
    assert type(model[0]) is nn.Conv2d and model[0].weight.shape == (4, 5, 3, 3)
    assert type(model[1]) is nn.BatchNorm2d and model[1].running_mean.shape == (4,)
    assert type(model[4]) is nn.Linear and model[4].weight.shape == (3, 64)
    assert len(list(model.parameters())) == 6 and model[0].weight.device == out.device
    mr.optim.SGD(model.parameters(), lr=0.1)


@pytest.mark.torch
def test_grouped_conv_and_group_norm_match_torch(device):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 8, 6, 6)), rng.standard_normal((8, 2, 3, 3))
    gw, gb = rng.standard_normal(8), rng.standard_normal(8)
    mine = [t64(a, device) for a in (x, w, gw, gb)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (x, w, gw, gb)]
    out = F.group_norm(F.conv2d(mine[0], mine[1], stride=2, padding=1, groups=4), 2, mine[2],
                       mine[3])
    ref = torch.nn.functional.group_norm(torch.nn.functional.conv2d(
        theirs[0], theirs[1], stride=2, padding=1, groups=4), 2, theirs[2], theirs[3])
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-10, atol=1e-10)
    (out * out).sum().backward()
    (ref * ref).sum().backward()
    for m, t in zip(mine, theirs):
        np.testing.assert_allclose(m.grad.numpy(), t.grad.numpy(), rtol=1e-9, atol=1e-9)
