"""Layers start as PyTorch's; minires' models apply the paper's He initialisation explicitly and
give, for one seed, exactly the weights they always gave (issue 14, item 5); ReLU(inplace=True)."""
import math

import numpy as np
import pytest

import minires as mr
from minires import nn


def test_model_weights_are_the_he_draws_in_module_order():
    # the weights of the measured runs: each conv He-normal, the fc PyTorch's uniform with a zero
    # bias, drawn one after the other from the seeded generator, and nothing else drawn
    mr.manual_seed(5)
    model = mr.models.resnet20(shortcut="B")
    after = mr.randn(3).numpy()
    rng = np.random.default_rng(5)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_in = math.prod(m.weight.shape[1:])
            expected = rng.normal(0.0, math.sqrt(2.0 / fan_in), m.weight.shape)
        elif isinstance(m, nn.Linear):
            bound = math.sqrt(2.0 / 6) * math.sqrt(3.0 / m.weight.shape[1])  # gain(a=sqrt 5)
            expected = rng.uniform(-bound, bound, m.weight.shape)
            assert not m.bias.numpy().any()
        else:
            continue
        np.testing.assert_array_equal(m.weight.numpy(), expected.astype(np.float32))
    np.testing.assert_array_equal(after, rng.standard_normal(3).astype(np.float32))


@pytest.mark.torch
def test_default_init_bounds_match_torch():
    torch = pytest.importorskip("torch")
    for mine, theirs in ((nn.Conv2d(6, 4, 3), torch.nn.Conv2d(6, 4, 3)),
                         (nn.Linear(10, 3), torch.nn.Linear(10, 3))):
        for name in ("weight", "bias"):
            bound = 1 / math.sqrt(math.prod(theirs.weight.shape[1:]))
            assert np.abs(getattr(mine, name).numpy()).max() <= bound
            assert np.abs(getattr(theirs, name).detach().numpy()).max() <= bound


def test_relu_inplace_acts_in_place(device):
    x = mr.tensor([-1.0, 2.0], device=device)
    y = nn.ReLU(inplace=True)(x)
    assert y is x and x.tolist() == [0.0, 2.0]
    assert repr(nn.ReLU(inplace=True)) == "ReLU(inplace=True)"
    w = mr.tensor([-1.0, 2.0], device=device, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        nn.functional.relu(w, inplace=True)
    h = w * 3
    out = nn.functional.relu(h, inplace=True)
    assert out is h
    out.sum().backward()
    assert w.grad.tolist() == [0.0, 3.0]


def test_a_net_with_inplace_relus_matches_the_one_without(device):
    mr.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU(inplace=True),
                        nn.Conv2d(3, 2, 1), nn.ReLU(inplace=True)).to(device).double()
    x = mr.randn(2, 2, 5, 5, device=device).double()
    out = net(x).sum()
    out.backward()
    grads = [p.grad.numpy().copy() for p in net.parameters()]
    for m in net:
        if isinstance(m, nn.ReLU):
            m.inplace = False
    net.zero_grad()
    ref = net(x).sum()
    ref.backward()
    assert out.item() == pytest.approx(ref.item(), rel=1e-12)
    for g, p in zip(grads, net.parameters()):
        np.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-12)
