"""Programs in the style of popular PyTorch code run under minires with only the import changed
(issue 14): a torchvision-style ResNet-50 and ResNeXt-50, a CIFAR ResNet-20 with option-A
``LambdaLayer`` shortcuts and its top-1 training script, and the tutorial's small CIFAR net fed by
``minires.utils.data.DataLoader``. The programs live in ``tests/torch_programs/`` and import only
``minires as torch``, ``minires.nn as nn``, ``minires.nn.functional as F``, ``minires.optim as
optim``. Where PyTorch is installed, the same source runs under it (imports switched back), the
weights are copied from PyTorch's model, and outputs and gradients are compared in float64."""
import math
import pathlib
import types

import numpy as np
import pytest

import minires as mr
from minires.data import load_embedded

from .torch_programs import cifar_resnet, tutorial_cifar, tv_resnet

PROGRAMS = pathlib.Path(__file__).parent / "torch_programs"


def under_torch(name: str) -> types.ModuleType:
    """The program ``name`` with its imports switched back to PyTorch."""
    source = (PROGRAMS / f"{name}.py").read_text()
    source = source.replace("import minires.", "import torch.").replace("import minires ",
                                                                         "import torch ")
    module = types.ModuleType(f"torch_{name}")
    exec(compile(source, str(PROGRAMS / f"{name}.py"), "exec"), module.__dict__)
    return module


def test_programs_import_only_minires():
    for path in PROGRAMS.glob("*.py"):
        imports = [line for line in path.read_text().splitlines()
                   if line.startswith(("import ", "from "))]
        assert all("minires" in line for line in imports), (path.name, imports)


def test_parameter_counts_are_torchvisions():
    # the published counts of torchvision's resnet50 and resnext50_32x4d, and of the CIFAR
    # ResNet-20 (0.27M in the paper's Table 6)
    mr.manual_seed(0)
    assert sum(p.numel() for p in tv_resnet.resnet50().parameters()) == 25_557_032
    assert sum(p.numel() for p in tv_resnet.resnext50_32x4d().parameters()) == 25_028_904
    assert sum(p.numel() for p in cifar_resnet.resnet20().parameters()) == 269_722


def test_zero_init_residual_starts_each_block_as_its_shortcut(device):
    mr.manual_seed(0)
    model = tv_resnet.resnext50_32x4d(layers=(1, 1, 1, 1), zero_init_residual=True,
                                      num_classes=10).to(device)
    blocks = [m for m in model.modules() if isinstance(m, tv_resnet.Bottleneck)]
    assert len(blocks) == 4 and all(b.conv2.groups == 32 for b in blocks)
    assert all(not b.bn3.weight.numpy().any() for b in blocks)
    block = blocks[0]
    x = mr.randn(2, 64, 4, 4, device=device)
    expected = block.downsample(x).relu()
    np.testing.assert_allclose(block(x).numpy(), expected.numpy(), rtol=1e-6, atol=1e-6)
    out = model(mr.randn(2, 3, 32, 32, device=device))
    out.sum().backward()
    assert out.shape == (2, 10) and all(p.grad is not None for p in model.parameters())


def test_cifar_resnet20_trains_and_reports_top1(device):
    mr.manual_seed(0)
    train, _ = load_embedded(image_size=8, num_train=16, num_test=8, seed=0)
    data = mr.utils.data.TensorDataset(mr.tensor(train.images), mr.tensor(train.labels))
    loader = mr.utils.data.DataLoader(data, batch_size=8, shuffle=True, generator=0,
                                      device=device)
    model = cifar_resnet.resnet20(width=8).to(device)
    criterion = mr.nn.CrossEntropyLoss()
    optimizer = mr.optim.SGD(model.parameters(), 0.1, momentum=0.9, weight_decay=1e-4)
    log = []
    first_loss, first_top1 = cifar_resnet.train(loader, model, criterion, optimizer, 0, log)
    for epoch in range(1, 4):
        loss, top1 = cifar_resnet.train(loader, model, criterion, optimizer, epoch, log)
    assert loss < first_loss and 0 <= first_top1 <= 100 and 0 <= top1 <= 100
    assert log[-1].startswith("Epoch: [3]") and "Prec@1" in log[-1]
    val = cifar_resnet.validate(loader, model, criterion)
    # top-1 from topk agrees with the argmax of the logits
    with mr.no_grad():
        model.eval()
        hits = sum(int((model(x).argmax(1) == y).sum()) for x, y in loader)
    assert val == pytest.approx(100 * hits / len(data))


def test_tutorial_net_with_the_dataloader(device):
    mr.manual_seed(0)
    train, test = load_embedded(image_size=32, num_train=64, num_test=16, seed=1)
    log = []
    net, losses, accuracy, correct_pred, total_pred = tutorial_cifar.train_and_test(
        train, test, epochs=2, batch_size=8, log=log)
    assert len(losses) == 16 and all(math.isfinite(v) for v in losses)
    assert sum(total_pred.values()) == 16 and 0 <= accuracy <= 100
    assert accuracy == 100 * sum(correct_pred.values()) // 16
    assert log[1].startswith("[2] loss:")


# --- parity with PyTorch: the same source, PyTorch's weights, float64 ---

def _copy_from_torch(mine, theirs):
    mine.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})


def _close(mine, theirs, name, tol=1e-9):
    """Equal to ``tol`` relative to the array's scale (float64 sums in another order differ by
    rounding, which elements near zero would magnify)."""
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else theirs
    scale = max(float(np.abs(theirs).max()), 1e-300)
    assert np.abs(mine.numpy() - theirs).max() <= tol * scale, name


def _compare(mine, theirs, x, target, tol=1e-9):
    torch = pytest.importorskip("torch")
    out = mine(mr.tensor(x))
    ref = theirs(torch.tensor(x))
    _close(out, ref, "output", tol)
    mr.nn.functional.cross_entropy(out, mr.tensor(target)).backward()
    torch.nn.functional.cross_entropy(ref, torch.tensor(target)).backward()
    named = dict(theirs.named_parameters())
    for name, p in mine.named_parameters():
        _close(p.grad, named[name].grad, name, tol)
    mine_buffers = dict(mine.named_buffers())
    for name, b in theirs.named_buffers():
        _close(mine_buffers[name], b, name, tol)


def _perturb_norms(torch, model):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)


@pytest.mark.torch
def test_torchvision_style_resnext_matches_torch():
    # the classes of ResNeXt-50 (ResNet-50's, with grouped 3x3 convolutions) with one block per
    # stage and 4 groups instead of 32: PyTorch's float64 grouped convolution on CPU takes
    # seconds. (ResNet-50's ungrouped path is ResNeXt's with groups=1: tests/test_torch_parity.)
    groups, width_per_group = 4, 4
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    kwargs = dict(layers=(1, 1, 1, 1), num_classes=10, groups=groups,
                  width_per_group=width_per_group)
    theirs = under_torch("tv_resnet").ResNet(under_torch("tv_resnet").Bottleneck,
                                              **kwargs).double()
    _perturb_norms(torch, theirs)
    mine = tv_resnet.ResNet(tv_resnet.Bottleneck, **kwargs).double()
    _copy_from_torch(mine, theirs)
    rng = np.random.default_rng(0)
    # the last stage normalises 2 values per channel (batch 2, 1x1 maps): its batch norm
    # magnifies float64 rounding to about 1e-8 of the gradients' scale
    _compare(mine, theirs, rng.standard_normal((2, 3, 16, 16)), np.array([3, 7]), tol=1e-7)


@pytest.mark.torch
def test_cifar_resnet20_and_tutorial_net_match_torch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    theirs = under_torch("cifar_resnet").resnet20(width=8).double()
    _perturb_norms(torch, theirs)
    mine = cifar_resnet.resnet20(width=8).double()
    _copy_from_torch(mine, theirs)
    _compare(mine, theirs, rng.standard_normal((4, 3, 8, 8)), np.array([0, 1, 2, 9]))
    theirs = under_torch("tutorial_cifar").Net().double()
    mine = tutorial_cifar.Net().double()
    _copy_from_torch(mine, theirs)
    _compare(mine, theirs, rng.standard_normal((3, 3, 32, 32)), np.array([4, 0, 5]))
