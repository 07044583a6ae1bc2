"""The seed paper review's PyTorch code (Block / Stage / Network, reconstructed in
tests/seed_network.py) runs on minires unchanged except for its import line, trains a step, and
the very same text runs under PyTorch with the same structure, shapes and outputs.

The Network is ResNet-34-sized (21.8 M parameters in 3x3 convs plus the seed's unused
projections: 22.7 M) at 224x224; one training step at batch 2 takes about 3 s on one CPU core, so
the default run trains the residual net one step on every device; the plain net and two-step
runs are marked slow."""
import math
import pathlib
from collections import OrderedDict

import numpy as np
import pytest

import minires as mr
import minires.nn.functional as F
from minires import nn, optim

from .conftest import TEST_DEVICES, to_numpy
from .seed_network import Block, Network, Stage

SEED_FILE = pathlib.Path(__file__).with_name("seed_network.py")
MINIRES_IMPORT = "from minires import nn"
TORCH_IMPORT = "import torch.nn as nn"


def _source():
    return SEED_FILE.read_text()


def test_only_the_import_line_names_the_framework():
    lines = _source().splitlines()
    assert lines[0] == MINIRES_IMPORT
    assert lines[1] == "from collections import OrderedDict"
    code = [ln for ln in lines[1:] if ln.strip() and not ln.lstrip().startswith("#")]
    assert not any("minires" in ln or "torch" in ln for ln in code)
    # the OCR damage is repaired: no stray spaces in names, the f-string formats the index
    src = "\n".join(code)
    for broken in ("def init (", "in c", "out c", "kernel size", "num features", "add module",
                   "num blocks", "block(i)"):
        assert broken not in src
    assert "f'block{i}'" in src


def test_structure_of_the_seed_network():
    net = Network(residual=True)
    assert isinstance(net.stage1, Stage) and isinstance(net.stage1.stage, nn.Sequential)
    names = [n for n, _ in net.stage3.stage.named_children()]
    assert names == [f"block{i}" for i in range(6)]          # names from the OrderedDict/add_module
    assert [len(s.stage) for s in (net.stage1, net.stage2, net.stage3, net.stage4)] == [3, 4, 6, 3]
    first = net.stage2.stage.block0
    assert isinstance(first, Block) and first.residual and first.double is True
    assert first.conv1[0].stride == (2, 2) and first.conv1[0].out_channels == 128
    assert net.stage2.stage.block1.double is False
    # every 3x3 conv of the seed has a bias (it does not pass bias=False), the projection does not
    assert first.conv1[0].bias is not None and first.downsample[0].bias is None
    n = sum(p.numel() for p in net.parameters())
    assert n == 22_724_456
    # the state_dict keys follow PyTorch's naming
    keys = list(net.state_dict())
    assert keys[:4] == ["stem.0.weight", "stem.0.bias", "stem.2.weight", "stem.2.bias"]
    assert "stage1.stage.block0.conv1.1.running_var" in keys
    assert "stage4.stage.block0.downsample.1.num_batches_tracked" in keys
    assert keys[-2:] == ["fc.weight", "fc.bias"]


def _used_downsample(name: str, residual: bool) -> bool:
    """The seed calls a block's projection only in residual blocks that double the width."""
    return residual and ".block0.downsample." in name and not name.startswith("stage1.")


def _train(device, residual, steps):
    mr.manual_seed(0)
    net = Network(residual=residual).to(device)
    opt = optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    x = mr.randn(2, 3, 224, 224, device=device)
    y = mr.tensor(np.array([3, 998]), device=device)
    before = {n: to_numpy(p).copy() for n, p in net.named_parameters()}
    ids = {n: id(p) for n, p in net.named_parameters()}
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        out = net(x)
        assert out.shape == (2, 1000) and out.dtype == mr.float32
        assert out.device == mr.device(device)
        loss = F.cross_entropy(out, y)
        assert loss.dtype == mr.float32
        loss.backward()
        for name, p in net.named_parameters():
            used = "downsample" not in name or _used_downsample(name, residual)
            assert (p.grad is not None) == used, name
            if used:
                assert p.grad.dtype == mr.float32 and p.grad.shape == p.shape
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    for name, p in net.named_parameters():
        assert id(p) == ids[name] and p.device == mr.device(device)
        changed = not np.array_equal(to_numpy(p), before[name])
        used = "downsample" not in name or _used_downsample(name, residual)
        assert changed == used, name
        assert np.isfinite(to_numpy(p)).all(), name
    return losses


def _device_params():
    params = []
    for d in TEST_DEVICES:
        for residual in (True, False):
            marks = [] if residual else [pytest.mark.slow]
            params.append(pytest.param(d, residual, marks=marks,
                                       id=f"{d}-{'residual' if residual else 'plain'}"))
    return params


@pytest.mark.parametrize("device, residual", _device_params())
def test_seed_network_trains_one_step(device, residual):
    losses = _train(device, residual, steps=1)
    assert len(losses) == 1


@pytest.mark.slow
@pytest.mark.parametrize("residual", [True, False])
def test_seed_network_trains_two_steps(residual):
    losses = _train("cpu", residual, steps=2)
    assert losses[0] != losses[1]


# --- the same text under PyTorch ------------------------------------------------------------

def _torch_namespace():
    torch = pytest.importorskip("torch")
    src = _source()
    assert src.startswith(MINIRES_IMPORT + "\n")
    src = TORCH_IMPORT + src[len(MINIRES_IMPORT):]
    namespace = {"__name__": "seed_network_torch"}
    exec(compile(src, "seed_network.py (torch)", "exec"), namespace)
    return torch, namespace


def _record_shapes(named_modules, out_shape):
    shapes, handles = OrderedDict(), []
    for name, m in named_modules:
        if name:
            handles.append(m.register_forward_hook(
                lambda mod, inp, out, name=name: shapes.__setitem__(name, out_shape(out))))
    return shapes, handles


@pytest.mark.torch
def test_seed_code_runs_unchanged_under_torch():
    torch, ns = _torch_namespace()
    torch.manual_seed(0)
    tnet = ns["Network"](residual=True)
    assert isinstance(tnet, torch.nn.Module)
    mnet = Network(residual=True)

    # identical parameter and buffer names and shapes
    tstate = tnet.state_dict()
    mstate = mnet.state_dict()
    assert list(tstate) == list(mstate)
    for k in tstate:
        assert tuple(tstate[k].shape) == mstate[k].shape, k

    # copy PyTorch's weights, run both on the same batch in training mode (batch statistics)
    mnet.load_state_dict({k: v.numpy() for k, v in tstate.items()})
    x = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32)
    tshapes, th = _record_shapes(tnet.named_modules(), lambda o: tuple(o.shape))
    mshapes, mh = _record_shapes(mnet.named_modules(), lambda o: o.shape)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)            # the test machine's cores are shared; spare them
    try:
        with torch.no_grad():
            tout = tnet(torch.from_numpy(x))
    finally:
        torch.set_num_threads(threads)
    with mr.no_grad():
        mout = mnet(mr.tensor(x))
    for h in th + mh:
        h.remove()
    assert tuple(tout.shape) == mout.shape == (2, 1000)
    assert list(tshapes.items()) == list(mshapes.items())       # every module, in call order
    assert mshapes["stem.0"] == (2, 64, 111, 111) and mshapes["stem.1"] == (2, 64, 56, 56)
    assert mshapes["stage4"] == (2, 512, 7, 7) and mshapes["avgpool"] == (2, 512, 1, 1)
    np.testing.assert_allclose(to_numpy(mout), tout.numpy(), rtol=1e-3, atol=1e-3)
    # the running statistics were updated the same way
    np.testing.assert_allclose(to_numpy(mnet.stem[2].running_var),
                               tnet.stem[2].running_var.numpy(), rtol=1e-4, atol=1e-5)
