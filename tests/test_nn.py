"""minires.nn: Module behaviour (registration, walking, modes, devices, dtypes, state dicts,
hooks), every layer of the public API, He initialisation, batch norm semantics, seeding across
devices, parity with PyTorch, and the dtype discipline of a whole training step."""
import math
from collections import OrderedDict

import numpy as np
import pytest

import minires as mr
import minires.nn.functional as F
from minires import nn, optim
from minires.models import resnet20

from .conftest import to_numpy


class Net(nn.Module):
    """conv -> bn -> relu -> max pool -> flatten -> fc, plus a plain attribute and a buffer."""

    def __init__(self, c=4, classes=3, size=6):
        super().__init__()
        self.conv = nn.Conv2d(3, c, 3, padding=1)
        self.bn = nn.BatchNorm2d(c)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c * (size // 2) ** 2, classes)
        self.scale = nn.Parameter(mr.ones(1))
        self.register_buffer("steps", mr.zeros(1))
        self.label = "a plain attribute"

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.relu(self.bn(self.conv(x)))))) * self.scale


# --- registration and walking ---------------------------------------------------------------

def test_attribute_registration():
    net = Net()
    assert list(net._parameters) == ["scale"]
    assert list(net._buffers) == ["steps"]
    assert list(net._modules) == ["conv", "bn", "relu", "pool", "flatten", "fc"]
    assert net.label == "a plain attribute" and "label" not in net._parameters
    assert isinstance(net.conv, nn.Conv2d) and isinstance(net.scale, nn.Parameter)
    assert net.scale.requires_grad
    # re-assigning a name moves it between the stores
    net.scale = nn.Parameter(mr.zeros(2))
    assert net.scale.shape == (2,) and list(net._parameters) == ["scale"]
    net.fc = nn.Identity()
    assert isinstance(net._modules["fc"], nn.Identity)
    del net.bn
    assert "bn" not in net._modules and not hasattr(net, "bn")
    with pytest.raises(AttributeError):
        net.nothing


def test_setattr_before_init_raises():
    class Broken(nn.Module):
        def __init__(self):
            self.conv = nn.Conv2d(1, 1, 1)

    with pytest.raises(AttributeError, match="super"):
        Broken()


def test_named_parameters_names_and_order():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["scale", "conv.weight", "conv.bias", "bn.weight", "bn.bias", "fc.weight",
                     "fc.bias"]
    params = list(net.parameters())
    assert [id(p) for p in params] == [id(p) for _, p in net.named_parameters()]
    assert params[1] is net.conv.weight
    assert [n for n, _ in net.named_parameters(recurse=False)] == ["scale"]
    # a parameter shared by two modules is listed once
    seq = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    seq[1].weight = seq[0].weight
    assert len(list(seq.parameters())) == 3


def test_bias_false_registers_none():
    conv = nn.Conv2d(2, 3, 3, bias=False)
    assert conv.bias is None
    assert [n for n, _ in conv.named_parameters()] == ["weight"]
    assert list(conv.state_dict()) == ["weight"]


def test_buffers_children_modules():
    net = Net()
    assert [n for n, _ in net.named_buffers()] == [
        "steps", "bn.running_mean", "bn.running_var", "bn.num_batches_tracked"]
    bufs = list(net.buffers())
    assert bufs[1] is net.bn.running_mean and not bufs[1].requires_grad
    assert bufs[3].dtype == mr.int64 and bufs[3].shape == ()
    assert [type(m).__name__ for m in net.children()] == [
        "Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "Flatten", "Linear"]
    mods = list(net.modules())
    assert mods[0] is net and len(mods) == 7
    assert [n for n, _ in net.named_modules()] == ["", "conv", "bn", "relu", "pool", "flatten",
                                                    "fc"]
    deep = nn.Sequential(OrderedDict([("inner", nn.Sequential(nn.ReLU(), nn.Tanh()))]))
    assert [n for n, _ in deep.named_modules()] == ["", "inner", "inner.0", "inner.1"]
    assert len(list(deep.children())) == 1


def test_train_eval_reach_every_submodule():
    m = resnet20()
    assert all(mod.training for mod in m.modules())
    assert m.eval() is m
    assert not any(mod.training for mod in m.modules())
    m.blocks[4].train()
    assert m.blocks[4].branch.bn1.training and not m.blocks[3].branch.bn1.training
    m.train()
    assert all(mod.training for mod in m.modules())
    m.train(False)
    assert not any(mod.training for mod in m.modules())


def test_add_module_and_errors():
    seq = nn.Sequential()
    seq.add_module("first", nn.Linear(3, 2))
    seq.add_module("act", nn.ReLU())
    assert [n for n, _ in seq.named_children()] == ["first", "act"]
    assert seq.first is seq[0]
    assert [n for n, _ in seq.named_parameters()] == ["first.weight", "first.bias"]
    assert seq(mr.randn(4, 3)).shape == (4, 2)
    with pytest.raises(TypeError):
        seq.add_module("x", "not a module")
    with pytest.raises(KeyError):
        seq.add_module("a.b", nn.ReLU())


def test_sequential_from_modules_and_ordered_dict():
    s = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2))
    assert [n for n, _ in s.named_children()] == ["0", "1", "2"]
    assert len(s) == 3 and isinstance(s[1], nn.ReLU) and isinstance(s[-1], nn.Linear)
    assert isinstance(s[:2], nn.Sequential) and len(s[:2]) == 2
    x = mr.randn(3, 4)
    np.testing.assert_allclose(to_numpy(s(x)), to_numpy(s[2](s[1](s[0](x)))), rtol=1e-6)
    d = nn.Sequential(OrderedDict([("fc1", nn.Linear(4, 5)), ("act", nn.Tanh()),
                                   ("fc2", nn.Linear(5, 2))]))
    assert [n for n, _ in d.named_children()] == ["fc1", "act", "fc2"]
    assert [n for n, _ in d.named_parameters()] == ["fc1.weight", "fc1.bias", "fc2.weight",
                                                    "fc2.bias"]
    assert d.fc2 is d[2] and d(x).shape == (3, 2)


def test_repr_is_readable():
    text = repr(Net())
    assert text.startswith("Net(")
    assert "(conv): Conv2d(3, 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))" in text
    assert "(bn): BatchNorm2d(4" in text and "(fc): Linear(in_features=36, out_features=3" in text
    assert "(relu): ReLU()" in text
    nested = repr(nn.Sequential(OrderedDict([("block", nn.Sequential(nn.ReLU()))])))
    assert "(block): Sequential(\n    (0): ReLU()\n  )" in nested


# --- devices and dtypes -----------------------------------------------------------------------

def test_to_device_moves_params_and_buffers(device):
    net = Net()
    params_before = [id(p) for p in net.parameters()]
    out = net(mr.randn(2, 3, 6, 6))
    out.sum().backward()
    values = [to_numpy(t).copy() for t in net.state_dict().values()]
    assert net.to(device) is net
    target = mr.device(device)
    assert [id(p) for p in net.parameters()] == params_before          # moved in place
    for t in list(net.parameters()) + list(net.buffers()):
        assert t.device == target
    for p in net.parameters():
        assert p.grad is not None and p.grad.device == target
    for v, t in zip(values, net.state_dict().values()):
        np.testing.assert_array_equal(v, to_numpy(t))
    assert net.bn.num_batches_tracked.dtype == mr.int64
    y = net(mr.randn(2, 3, 6, 6, device=device))
    assert y.device == target and y.shape == (2, 3)
    net.to("cpu")
    assert all(t.device == mr.device("cpu") for t in net.state_dict().values())


def test_to_dtype_double_float():
    net = Net()
    assert net.to(mr.float64) is net
    assert all(p.dtype == mr.float64 for p in net.parameters())
    assert net.bn.running_var.dtype == mr.float64
    assert net.bn.num_batches_tracked.dtype == mr.int64     # integer buffers keep their dtype
    assert net(mr.randn(2, 3, 6, 6, dtype=mr.float64)).dtype == mr.float64
    net.float()
    assert all(t.dtype == mr.float32 for t in net.parameters())
    assert net.bn.running_mean.dtype == mr.float32
    net.double()
    assert net.conv.weight.dtype == mr.float64
    with pytest.raises(TypeError):
        net.to(mr.int64)


def test_mixed_dtype_input_raises_naming_the_fix():
    m = resnet20()
    with pytest.raises(TypeError, match=r"\.float\(\)") as info:
        m(mr.randn(2, 3, 8, 8, dtype=mr.float64))
    assert ".double()" in str(info.value) and "float64" in str(info.value)
    assert "float32" in str(info.value)


# --- state dicts ----------------------------------------------------------------------------

def test_state_dict_keys():
    net = Net()
    sd = net.state_dict()
    assert list(sd) == ["scale", "steps", "conv.weight", "conv.bias", "bn.weight", "bn.bias",
                        "bn.running_mean", "bn.running_var", "bn.num_batches_tracked",
                        "fc.weight", "fc.bias"]
    assert all(isinstance(v, mr.Tensor) and not v.requires_grad for v in sd.values())
    m = resnet20()
    keys = list(m.state_dict())
    assert keys[:7] == ["stem.conv.weight", "stem.bn.weight", "stem.bn.bias",
                        "stem.bn.running_mean", "stem.bn.running_var",
                        "stem.bn.num_batches_tracked", "blocks.0.branch.conv1.weight"]
    assert keys[-2:] == ["fc.weight", "fc.bias"]
    assert len(keys) == 19 * (1 + 5) + 2     # 19 convs (no bias), 19 BNs with 5 entries, fc


def test_non_persistent_buffer_not_in_state_dict():
    m = nn.Module()
    m.register_buffer("kept", mr.zeros(2))
    m.register_buffer("scratch", mr.zeros(2), persistent=False)
    assert list(m.state_dict()) == ["kept"]
    assert [n for n, _ in m.named_buffers()] == ["kept", "scratch"]


def test_load_state_dict_copies_values():
    a, b = Net(), Net()
    a.bn.running_mean.array += 3.0
    result = b.load_state_dict(a.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb
        np.testing.assert_array_equal(to_numpy(va), to_numpy(vb))
    # a copy, not an alias
    a.conv.weight.array += 1.0
    assert not np.array_equal(to_numpy(a.conv.weight), to_numpy(b.conv.weight))
    # numpy arrays are accepted and cast to the parameter's dtype
    b.load_state_dict({k: to_numpy(v).astype(np.float64) if v.dtype.kind == "f" else to_numpy(v)
                       for k, v in a.state_dict().items()})
    assert b.conv.weight.dtype == mr.float32
    np.testing.assert_allclose(to_numpy(b.conv.weight), to_numpy(a.conv.weight))


def test_load_state_dict_strict_errors():
    net = Net()
    sd = dict(net.state_dict())
    missing = dict(sd)
    del missing["bn.running_var"]
    with pytest.raises(KeyError, match="bn.running_var"):
        Net().load_state_dict(missing)
    extra = dict(sd)
    extra["head.weight"] = mr.zeros(2)
    with pytest.raises(KeyError, match="head.weight"):
        Net().load_state_dict(extra)
    wrong = dict(sd)
    wrong["fc.weight"] = mr.zeros(3, 99)
    with pytest.raises(ValueError) as info:
        Net().load_state_dict(wrong)
    msg = str(info.value)
    assert "fc.weight" in msg and "(3, 99)" in msg and "(3, 36)" in msg
    not_array = dict(sd)
    not_array["fc.bias"] = [0.0, 0.0, 0.0]
    with pytest.raises(TypeError, match="fc.bias"):
        Net().load_state_dict(not_array)
    # nothing was half-loaded by the failed calls
    fresh = Net()
    before = to_numpy(fresh.conv.weight).copy()
    with pytest.raises(ValueError):
        fresh.load_state_dict({**{k: v for k, v in sd.items()}, "fc.weight": mr.zeros(3, 99)})
    np.testing.assert_array_equal(to_numpy(fresh.conv.weight), before)


def test_load_state_dict_non_strict_returns_key_lists():
    net = Net()
    sd = dict(net.state_dict())
    del sd["conv.bias"]
    sd["extra"] = mr.ones(1)
    other = Net()
    result = other.load_state_dict(sd, strict=False)
    missing, unexpected = result
    assert missing == result.missing_keys == ["conv.bias"]
    assert unexpected == result.unexpected_keys == ["extra"]
    np.testing.assert_array_equal(to_numpy(other.fc.weight), to_numpy(net.fc.weight))


def test_load_state_dict_across_devices(device):
    mr.manual_seed(1)
    src = Net().to("cpu")
    dst = Net().to(device)
    dst.load_state_dict(src.state_dict())             # cpu state into a model on `device`
    for (k, a), b in zip(src.state_dict().items(), dst.state_dict().values()):
        assert b.device == mr.device(device), k
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    back = Net().to("cpu")
    back.load_state_dict(dst.state_dict())             # and back to cpu
    for a, b in zip(src.state_dict().values(), back.state_dict().values()):
        assert b.device == mr.device("cpu")
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))


# --- gradients and hooks -----------------------------------------------------------------------

def test_zero_grad():
    net = Net()
    net(mr.randn(2, 3, 6, 6)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    for p in net.parameters():
        assert p.grad is not None and not to_numpy(p.grad).any()
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_forward_hook_called_replaces_output_and_removes():
    lin = nn.Linear(3, 2)
    seen = []

    def hook(module, inputs, output):
        seen.append((module, inputs, output))

    handle = lin.register_forward_hook(hook)
    x = mr.randn(4, 3)
    y = lin(x)
    assert len(seen) == 1
    module, inputs, output = seen[0]
    assert module is lin and isinstance(inputs, tuple) and inputs[0] is x and output is y
    handle.remove()
    lin(x)
    assert len(seen) == 1

    h2 = lin.register_forward_hook(lambda m, i, o: o * 0.0 + 7.0)
    np.testing.assert_array_equal(to_numpy(lin(x)), np.full((4, 2), 7.0, np.float32))
    h2.remove()
    assert not np.allclose(to_numpy(lin(x)), 7.0)
    # hooks on a submodule see the values flowing through the parent
    net = Net()
    shapes = []
    h3 = net.pool.register_forward_hook(lambda m, i, o: shapes.append((i[0].shape, o.shape)))
    net(mr.randn(2, 3, 6, 6))
    assert shapes == [((2, 4, 6, 6), (2, 4, 3, 3))]
    h3.remove()


# --- layers ---------------------------------------------------------------------------------

def test_every_layer_forward_shapes(device):
    x = mr.randn(2, 3, 9, 9, device=device)
    xn = to_numpy(x)

    def run(layer, inp=x):
        out = layer.to(device)(inp)
        assert out.device == mr.device(device)
        return out

    assert run(nn.Conv2d(3, 8, 3)).shape == (2, 8, 7, 7)
    assert run(nn.Conv2d(3, 8, 3, stride=2, padding=1)).shape == (2, 8, 5, 5)
    assert run(nn.Conv2d(3, 8, kernel_size=1, stride=2, bias=False)).shape == (2, 8, 5, 5)
    assert run(nn.BatchNorm2d(3)).shape == (2, 3, 9, 9)
    r = run(nn.ReLU())
    np.testing.assert_array_equal(to_numpy(r), np.maximum(xn, 0))
    np.testing.assert_allclose(to_numpy(run(nn.Sigmoid())), 1 / (1 + np.exp(-xn)), rtol=1e-5)
    np.testing.assert_allclose(to_numpy(run(nn.Tanh())), np.tanh(xn), rtol=1e-5, atol=1e-6)
    assert run(nn.MaxPool2d(2)).shape == (2, 3, 4, 4)                    # floor
    assert run(nn.MaxPool2d(3, stride=2, padding=1)).shape == (2, 3, 5, 5)
    mp = to_numpy(run(nn.MaxPool2d(kernel_size=3, stride=3)))
    np.testing.assert_array_equal(mp, xn.reshape(2, 3, 3, 3, 3, 3).max(axis=(3, 5)))
    ap = to_numpy(run(nn.AvgPool2d(3)))
    assert ap.shape == (2, 3, 3, 3)
    np.testing.assert_allclose(ap, xn.reshape(2, 3, 3, 3, 3, 3).mean(axis=(3, 5)), rtol=1e-5,
                               atol=1e-6)
    assert run(nn.AvgPool2d(2, stride=1)).shape == (2, 3, 8, 8)
    g = run(nn.AdaptiveAvgPool2d(1))
    assert g.shape == (2, 3, 1, 1)
    np.testing.assert_allclose(to_numpy(g)[:, :, 0, 0], xn.mean(axis=(2, 3)), rtol=1e-5,
                               atol=1e-6)
    flat = run(nn.Flatten())
    assert flat.shape == (2, 243)
    assert run(nn.Linear(243, 7), flat).shape == (2, 7)
    assert run(nn.Linear(243, 7, bias=False), flat).shape == (2, 7)
    ident = nn.Identity()
    assert ident(x) is x
    logits = mr.randn(4, 5, device=device)
    target = mr.tensor(np.array([0, 4, 2, 2]), device=device)
    loss = nn.CrossEntropyLoss()(logits, target)
    assert loss.shape == () and loss.dtype == mr.float32
    ln = to_numpy(logits).astype(np.float64)
    logp = ln - np.log(np.exp(ln).sum(1, keepdims=True))
    assert loss.item() == pytest.approx(-logp[np.arange(4), [0, 4, 2, 2]].mean(), rel=1e-5)


def test_default_init_is_pytorchs_and_models_apply_he():
    mr.manual_seed(0)
    conv = nn.Conv2d(256, 256, 3)          # PyTorch's default: uniform in +-1/sqrt(fan_in)
    bound = 1 / math.sqrt(256 * 9)
    w, b = to_numpy(conv.weight), to_numpy(conv.bias)
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    assert w.std() == pytest.approx(bound / math.sqrt(3), rel=0.05) and b.std() > bound / 3
    lin = nn.Linear(1024, 512)
    bound = 1 / math.sqrt(1024)
    assert np.abs(to_numpy(lin.weight)).max() <= bound
    assert to_numpy(lin.weight).std() == pytest.approx(bound / math.sqrt(3), rel=0.05)
    assert np.abs(to_numpy(lin.bias)).max() <= bound and to_numpy(lin.bias).any()
    he = mr.models.init_he_(nn.Sequential(nn.Conv2d(256, 256, 3), nn.Linear(1024, 512)))
    w = to_numpy(he[0].weight)
    expected = math.sqrt(2 / (256 * 9))
    assert w.std() == pytest.approx(expected, rel=0.05)
    assert abs(w.mean()) < 0.05 * expected
    assert not to_numpy(he[0].bias).any() and not to_numpy(he[1].bias).any()
    bn = nn.BatchNorm2d(7)
    np.testing.assert_array_equal(to_numpy(bn.weight), np.ones(7, np.float32))
    np.testing.assert_array_equal(to_numpy(bn.bias), np.zeros(7, np.float32))
    np.testing.assert_array_equal(to_numpy(bn.running_var), np.ones(7, np.float32))
    assert conv.weight.dtype == mr.float32


def test_a_deep_resnet_starts_near_the_chance_loss():
    # the features reaching the classifier grow with every residual block; with a He-initialised
    # fc layer ResNet-56 started at a loss of 7.6 on this data, three times ln(10)
    from minires.data import load_embedded
    train, _ = load_embedded(image_size=16, num_train=64, num_test=10, seed=0)
    mr.manual_seed(0)
    model = mr.models.get_model("resnet56")
    loss = F.cross_entropy(model(mr.tensor(train.images)), mr.tensor(train.labels)).item()
    assert loss < 1.5 * math.log(10)


def test_batchnorm_train_eval_and_running_stats(device):
    bn = nn.BatchNorm2d(3, momentum=0.1).to(device)
    bn.weight.array = bn.weight.array * 0 + bn.weight.xp.asarray(np.array([1.0, 2.0, 0.5],
                                                                        np.float32))
    rng = np.random.default_rng(0)
    batches = [rng.normal(2.0, 3.0, (4, 3, 5, 5)).astype(np.float32) for _ in range(2)]
    mean_ref, var_ref = np.zeros(3), np.ones(3)
    w = np.array([1.0, 2.0, 0.5])
    for i, xb in enumerate(batches):
        y = to_numpy(bn(mr.tensor(xb, device=device)))
        mu = xb.mean(axis=(0, 2, 3))
        var_b = xb.var(axis=(0, 2, 3))                       # biased, normalises
        var_u = xb.var(axis=(0, 2, 3), ddof=1)               # unbiased, into running_var
        expected = (xb - mu[:, None, None]) / np.sqrt(var_b[:, None, None] + 1e-5) \
            * w[:, None, None]
        np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)
        mean_ref = 0.9 * mean_ref + 0.1 * mu
        var_ref = 0.9 * var_ref + 0.1 * var_u
        np.testing.assert_allclose(to_numpy(bn.running_mean), mean_ref, rtol=1e-5)
        np.testing.assert_allclose(to_numpy(bn.running_var), var_ref, rtol=1e-5)
        assert bn.num_batches_tracked.item() == i + 1
    bn.eval()
    xe = rng.normal(0.0, 1.0, (2, 3, 4, 4)).astype(np.float32)
    y = to_numpy(bn(mr.tensor(xe, device=device)))
    expected = (xe - mean_ref[:, None, None]) / np.sqrt(var_ref[:, None, None] + 1e-5) \
        * w[:, None, None]
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)
    # evaluation leaves the running statistics and the counter alone
    np.testing.assert_allclose(to_numpy(bn.running_var), var_ref, rtol=1e-5)
    assert bn.num_batches_tracked.item() == 2
    # a single sample: evaluation works, training refuses one value per channel
    assert bn(mr.tensor(xe[:1, :, :1, :1], device=device)).shape == (1, 3, 1, 1)
    bn.train()
    with pytest.raises(ValueError):
        bn(mr.tensor(xe[:1, :, :1, :1], device=device))
    with pytest.raises(ValueError):
        bn(mr.tensor(xe[:, :, 0, 0], device=device))            # a 2-D input to BatchNorm2d


def test_same_seed_same_model_on_every_device(device):
    mr.manual_seed(123)
    ref = resnet20()
    mr.manual_seed(123)
    other = resnet20().to(device)
    for (k, a), b in zip(ref.state_dict().items(), other.state_dict().values()):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b), err_msg=k)
    mr.manual_seed(123)
    direct = nn.Conv2d(3, 16, 3, device=device)
    assert direct.weight.device == mr.device(device)
    np.testing.assert_array_equal(to_numpy(direct.weight), to_numpy(_conv_after_seed(123)))
    mr.manual_seed(124)
    assert not np.array_equal(to_numpy(resnet20().stem.conv.weight),
                              to_numpy(ref.stem.conv.weight))


def _conv_after_seed(seed):
    mr.manual_seed(seed)
    return nn.Conv2d(3, 16, 3).weight


# --- parity with PyTorch ------------------------------------------------------------------

@pytest.mark.torch
def test_small_net_parity_with_torch(device):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tnet = torch.nn.Sequential(OrderedDict([
        ("conv", torch.nn.Conv2d(3, 4, 3, padding=1)), ("bn", torch.nn.BatchNorm2d(4)),
        ("relu", torch.nn.ReLU()), ("pool", torch.nn.MaxPool2d(2)),
        ("flatten", torch.nn.Flatten()), ("fc", torch.nn.Linear(36, 5))])).double()
    mnet = nn.Sequential(OrderedDict([
        ("conv", nn.Conv2d(3, 4, 3, padding=1)), ("bn", nn.BatchNorm2d(4)),
        ("relu", nn.ReLU()), ("pool", nn.MaxPool2d(2)), ("flatten", nn.Flatten()),
        ("fc", nn.Linear(36, 5))])).double().to(device)
    assert list(tnet.state_dict()) == list(mnet.state_dict())
    mnet.load_state_dict({k: v.numpy() for k, v in tnet.state_dict().items()})
    x = np.random.default_rng(1).standard_normal((4, 3, 6, 6))
    y = np.array([0, 4, 1, 1])
    tx = torch.tensor(x, requires_grad=True)
    tloss = torch.nn.functional.cross_entropy(tnet(tx), torch.tensor(y))
    tloss.backward()
    mx = mr.tensor(x, device=device, requires_grad=True)
    mloss = F.cross_entropy(mnet(mx), mr.tensor(y, device=device))
    mloss.backward()
    assert mloss.item() == pytest.approx(tloss.item(), rel=1e-10)
    np.testing.assert_allclose(to_numpy(mx.grad), tx.grad.numpy(), rtol=1e-8, atol=1e-12)
    tparams = dict(tnet.named_parameters())
    for name, p in mnet.named_parameters():
        np.testing.assert_allclose(to_numpy(p.grad), tparams[name].grad.numpy(), rtol=1e-8,
                                   atol=1e-12, err_msg=name)
    for key in ("bn.running_mean", "bn.running_var"):
        np.testing.assert_allclose(to_numpy(mnet.state_dict()[key]),
                                   tnet.state_dict()[key].numpy(), rtol=1e-10)
    # evaluation mode uses the running statistics in both
    tnet.eval()
    mnet.eval()
    with torch.no_grad():
        tout = tnet(torch.tensor(x)).numpy()
    with mr.no_grad():
        mout = to_numpy(mnet(mr.tensor(x, device=device)))
    np.testing.assert_allclose(mout, tout, rtol=1e-8, atol=1e-12)


# --- dtype discipline over a whole training step --------------------------------------------

def _dtype_walk(model, x, target, dtype):
    """One training step with every module output and every gradient recorded."""
    acts, grads, handles = [], [], []

    def record(name):
        def hook(module, inputs, output):
            acts.append((name, output.dtype))
            if output.requires_grad:
                output.register_hook(lambda g: grads.append((name, g.dtype)))
        return hook

    for name, m in model.named_modules():
        handles.append(m.register_forward_hook(record(name or "model")))
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    out = model(x)
    loss = F.cross_entropy(out, target)
    loss.backward()
    opt.step()
    for h in handles:
        h.remove()
    n_modules = len(list(model.modules()))
    assert len(acts) == n_modules and len(grads) == n_modules
    bad = [(n, d) for n, d in acts + grads if d != dtype]
    assert not bad, f"not {dtype}: {bad[:5]}"
    assert loss.dtype == dtype and x.grad.dtype == dtype
    for name, p in model.named_parameters():
        assert p.dtype == dtype and p.grad is not None and p.grad.dtype == dtype, name
    for s in opt.state.values():
        assert s["momentum_buffer"].dtype == dtype
    for name, b in model.named_buffers():
        expected = mr.int64 if name.endswith("num_batches_tracked") else dtype
        assert b.dtype == expected, name


def test_dtype_discipline_float32_training_step(device):
    model = resnet20().to(device)
    x = mr.randn(4, 3, 16, 16, device=device, requires_grad=True)
    target = mr.tensor(np.array([0, 9, 3, 3]), device=device)
    _dtype_walk(model, x, target, mr.float32)


def test_dtype_discipline_float64_training_step():
    model = resnet20().double()
    x = mr.randn(4, 3, 16, 16, dtype=mr.float64, requires_grad=True)
    target = mr.tensor(np.array([0, 9, 3, 3]))
    _dtype_walk(model, x, target, mr.float64)
