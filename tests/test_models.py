"""The paper's models: exact parameter counts, structure (blocks, branches, shortcut options A/B/C),
plain twins, output shapes on every device, the residual formula, and a whole-network gradcheck."""
import functools

import numpy as np
import pytest

import minires as mr
from minires import nn
from minires.models import (BasicBlock, Bottleneck, ZeroPadShortcut, cifar_resnet, get_model,
                            imagenet_resnet, plain18, plain20, resnet18, resnet20, resnet50,
                            resnet56, resnet110, summary)
from minires.models.blocks import Block

from .conftest import to_numpy


def n_params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.fixture
def fast_init(monkeypatch):
    """Skip drawing He-initialised weights (the counts do not depend on the values): building
    ResNet-152 then takes a fraction of the time."""
    monkeypatch.setattr(nn.init, "kaiming_normal_", lambda t, *a, **k: t)


# --- parameter counts, pinned exactly -------------------------------------------------------

@pytest.mark.parametrize("depth, option, expected", [
    (20, "A", 269_722), (20, "B", 272_474), (56, "A", 853_018), (110, "A", 1_727_962)])
def test_cifar_param_counts(depth, option, expected):
    assert n_params(cifar_resnet(depth, shortcut=option)) == expected


def test_named_constructors_and_get_model_agree():
    assert n_params(resnet20()) == 269_722
    assert n_params(resnet56()) == 853_018
    assert n_params(resnet110()) == 1_727_962
    m = get_model("ResNet20")
    assert m.name == "resnet20" and m.depth == 20 and m.residual
    assert n_params(m) == 269_722
    p = get_model("plain56")
    assert p.name == "plain56" and not p.residual


@pytest.mark.parametrize("depth, expected", [
    (18, 11_689_512), (34, 21_797_672), (50, 25_557_032), (101, 44_549_160),
    (152, 60_192_808)])
def test_imagenet_param_counts(depth, expected, fast_init):
    # the torchvision counts of the same architectures (option B shortcuts)
    assert n_params(imagenet_resnet(depth)) == expected


def test_imagenet_param_count_with_real_init():
    # the fixture above only skips the random draw; check one net built the normal way too
    assert n_params(resnet18()) == 11_689_512


# --- plain twins --------------------------------------------------------------------------

def test_plain20_has_same_layers_minus_shortcuts():
    r, p = resnet20(), plain20()
    assert n_params(p) == n_params(r) == 269_722      # option A shortcuts have no parameters
    assert not p.residual and r.residual
    for br, bp in zip(r.blocks, p.blocks):
        assert "shortcut" in br._modules and "shortcut" not in bp._modules
        assert [n for n, _ in br.branch.named_parameters()] == \
            [n for n, _ in bp.branch.named_parameters()]
        assert [t.shape for t in br.branch.parameters()] == \
            [t.shape for t in bp.branch.parameters()]
    r_names = {n for n, _ in r.named_parameters()}
    p_names = {n for n, _ in p.named_parameters()}
    assert r_names == p_names


def test_plain18_lacks_exactly_the_projection_params():
    r, p = resnet18(), plain18()
    projection = sum(t.numel() for n, t in r.named_parameters() if ".shortcut." in n)
    # three projections (64->128, 128->256, 256->512): 1x1 conv weights + BN weight and bias
    assert projection == (64 * 128 + 2 * 128) + (128 * 256 + 2 * 256) + (256 * 512 + 2 * 512)
    assert n_params(p) == n_params(r) - projection == 11_515_688
    assert {n for n, _ in p.named_parameters()} == \
        {n for n, _ in r.named_parameters() if ".shortcut." not in n}


# --- structure ----------------------------------------------------------------------------

def test_blocks_in_order_with_branch_and_shortcut():
    m = resnet20()
    assert len(m.blocks) == 9
    assert [name for name, _ in m.blocks.named_children()] == [str(i) for i in range(9)]
    assert m.stage_starts == [0, 3, 6]
    widths = []
    for b in m.blocks:
        assert isinstance(b, Block) and isinstance(b, BasicBlock)
        assert b.residual
        assert isinstance(b.branch, nn.Module) and isinstance(b.shortcut, nn.Module)
        widths.append(b.branch.conv2.out_channels)
    assert widths == [16] * 3 + [32] * 3 + [64] * 3
    for b in plain20().blocks:
        assert not b.residual and not hasattr(b, "shortcut")


def _shortcut_kinds(model):
    kinds = []
    for b in model.blocks:
        s = b.shortcut
        if isinstance(s, nn.Identity):
            kinds.append("I")
        elif isinstance(s, ZeroPadShortcut):
            kinds.append("Z")
        else:
            assert isinstance(s, nn.Sequential)
            assert isinstance(s.conv, nn.Conv2d) and s.conv.kernel_size == (1, 1)
            assert s.conv.bias is None and isinstance(s.bn, nn.BatchNorm2d)
            kinds.append("P")
    return "".join(kinds)


def test_shortcut_options():
    assert _shortcut_kinds(resnet20(shortcut="A")) == "III" + "ZII" + "ZII"
    assert _shortcut_kinds(resnet20(shortcut="B")) == "III" + "PII" + "PII"
    assert _shortcut_kinds(resnet20(shortcut="C")) == "PPP" + "PPP" + "PPP"
    assert _shortcut_kinds(resnet18()) == "II" + "PI" + "PI" + "PI"       # ImageNet default B
    b = cifar_resnet(20).blocks[3].shortcut
    assert b.stride == 2 and b.out_channels == 32
    assert n_params(ZeroPadShortcut(32, 2)) == 0
    with pytest.raises(ValueError):
        cifar_resnet(20, shortcut="D")


def test_bottleneck_structure():
    m = resnet50()
    first = m.blocks[0]
    assert isinstance(first, Bottleneck)
    convs = [first.branch.conv1, first.branch.conv2, first.branch.conv3]
    assert [c.kernel_size for c in convs] == [(1, 1), (3, 3), (1, 1)]
    assert [c.out_channels for c in convs] == [64, 64, 256]
    # dimensions change at the first block of every stage: 64 -> 256 channels is a projection
    assert _shortcut_kinds(m) == "PII" + "PIII" + "PIIIII" + "PII"
    assert m.blocks[3].branch.conv2.stride == (2, 2)    # the 3x3 conv strides
    assert m.blocks[3].branch.conv1.stride == (1, 1)


@pytest.mark.parametrize("build", [resnet20, lambda: resnet20(shortcut="C"), resnet18])
def test_convs_followed_by_bn_have_no_bias(build):
    m = build()
    modules = list(m.named_modules())
    checked = 0
    for (name, mod), (_, nxt) in zip(modules, modules[1:]):
        if isinstance(mod, nn.Conv2d):
            assert isinstance(nxt, nn.BatchNorm2d), name
            assert mod.bias is None, name
            checked += 1
    assert checked >= 19
    assert m.fc.bias is not None


@pytest.mark.parametrize("depth", [21, 19, 2, 0, -4])
def test_invalid_cifar_depth_raises(depth):
    with pytest.raises(ValueError, match="6n"):
        cifar_resnet(depth)


def test_invalid_imagenet_depth_and_names_raise():
    with pytest.raises(ValueError):
        imagenet_resnet(20)
    for bad in ["vgg16", "resnet", "resnet21", "plainXX", "", "resnet-20"]:
        with pytest.raises(ValueError):
            get_model(bad)


# --- forward shapes on every device -------------------------------------------------------

@pytest.mark.parametrize("residual", [True, False])
def test_cifar_output_shapes(device, residual):
    m = cifar_resnet(20, residual=residual).to(device)
    for size in (32, 16):
        out = m(mr.randn(2, 3, size, size, device=device))
        assert out.shape == (2, 10)
        assert out.device == mr.device(device) and out.dtype == mr.float32
        assert np.isfinite(to_numpy(out)).all()


@functools.lru_cache(maxsize=None)
def _cached_imagenet(name):
    # built once for all devices (construction costs more than the forward pass); each test moves
    # it to its device in place first, so the order of the tests does not matter
    return get_model(name).eval()


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_imagenet_output_shapes(device, name):
    m = _cached_imagenet(name).to(device)
    assert next(m.parameters()).device == mr.device(device)
    size = 64 if name == "resnet18" else 32     # 32x32 still leaves a 1x1 map for the pool
    with mr.no_grad():
        out = m(mr.randn(1, 3, size, size, device=device))
    assert out.shape == (1, 1000) and out.device == mr.device(device)
    assert np.isfinite(to_numpy(out)).all()


def test_network_rejects_non_image_input():
    with pytest.raises(ValueError, match="N, C, H, W"):
        resnet20()(mr.randn(3, 32, 32))


# --- the residual formula -----------------------------------------------------------------

@pytest.mark.parametrize("option", ["A", "B"])
def test_residual_block_is_relu_of_branch_plus_shortcut(device, option):
    block = BasicBlock(8, 16, stride=2, residual=True, shortcut=option).to(device)
    x = mr.randn(2, 8, 6, 6, device=device)
    y = to_numpy(block(x))
    branch = to_numpy(block.branch(x))
    shortcut = to_numpy(block.shortcut(x))
    np.testing.assert_allclose(y, np.maximum(branch + shortcut, 0), rtol=1e-6, atol=1e-6)
    if option == "A":
        xs = to_numpy(x)[:, :, ::2, ::2]
        expected = np.concatenate([xs, np.zeros_like(xs)], axis=1)
        np.testing.assert_array_equal(shortcut, expected)
    # the plain twin is relu(branch(x)) with the same branch
    plain = BasicBlock(8, 16, stride=2, residual=False).to(device)
    plain.branch.load_state_dict(block.branch.state_dict())
    np.testing.assert_allclose(to_numpy(plain(x)), np.maximum(branch, 0), rtol=1e-6, atol=1e-6)


def test_identity_shortcut_passes_input():
    block = BasicBlock(4, 4, stride=1, shortcut="A")
    assert isinstance(block.shortcut, nn.Identity)
    x = mr.randn(2, 4, 5, 5)
    np.testing.assert_allclose(to_numpy(block(x)),
                               np.maximum(to_numpy(block.branch(x)) + to_numpy(x), 0), rtol=1e-6,
                               atol=1e-6)


# --- the whole network's backward, numerically ----------------------------------------------

def test_gradcheck_tiny_resnet_train_mode():
    mr.manual_seed(1)
    model = cifar_resnet(8, width=2).double().train()
    params = list(model.parameters())
    assert all(p.dtype == mr.float64 for p in params)
    x = mr.randn(3, 3, 8, 8, dtype=mr.float64, requires_grad=True)

    def fn(inp, *ps):   # the parameters are the model's own: gradcheck perturbs them in place
        return model(inp)

    assert mr.gradcheck(fn, (x, *params), fast_mode=True)
    # and the check can fail: a wrong gradient through a hook is caught
    handle = model.blocks[1].register_forward_hook(lambda m, i, out: _scale_grad(out, 1.5))
    with pytest.raises(mr.GradcheckError):
        mr.gradcheck(fn, (x, *params), fast_mode=True)
    handle.remove()


def _scale_grad(out, factor):
    if out.requires_grad:       # gradcheck's own forward passes run under no_grad
        out.register_hook(lambda g: g * factor)
    return out


# --- summary: parameters and FLOPs per layer --------------------------------------------------

def _hook_count(model):
    return sum(len(m._forward_hooks) for m in model.modules())


def test_summary_resnet20():
    m = resnet20()
    m.blocks[2].eval()                                    # a mixed state, restored afterwards
    modes = [mod.training for mod in m.modules()]
    user_hook = m.fc.register_forward_hook(lambda *a: None)
    state = mr.random.get_rng_state()
    s = summary(m, (3, 32, 32))
    assert mr.random.get_rng_state() == state              # no random draws
    assert s.total_params == s.trainable_params == 269_722
    assert s.non_trainable_params == 0
    # the commonly quoted 40.8 M MACs (conv and fc layers) per 32x32 image
    assert s.total_macs == pytest.approx(40.8e6, rel=0.05)
    assert s.total_macs == 40_551_040                       # exactly, by the formulas
    assert s.total_flops > 2 * s.total_macs
    leaves = [n for n, mod in m.named_modules() if not list(mod.children())]
    assert [r.name for r in s.rows] == leaves               # each leaf once, in call order
    assert sum(r.params for r in s.rows) == 269_722
    stem = s.rows[0]
    assert (stem.name, stem.type, stem.output_shape) == ("stem.conv", "Conv2d", (1, 16, 32, 32))
    assert stem.macs == 3 * 3 * 3 * 16 * 32 * 32 and stem.flops == 2 * stem.macs
    bn = s.rows[1]
    assert bn.type == "BatchNorm2d" and bn.macs == 0 and bn.flops == 4 * 16 * 32 * 32
    fc = s.rows[-1]
    assert fc.type == "Linear" and fc.macs == 640 and fc.flops == 2 * 640 + 10
    assert fc.output_shape == (1, 10) and s.output_shape == (1, 10)
    # hooks removed (the user's own kept), modes restored
    assert _hook_count(m) == 1
    user_hook.remove()
    assert _hook_count(m) == 0
    assert [mod.training for mod in m.modules()] == modes
    text = str(s)
    assert "stem.conv (Conv2d)" in text and "[1, 16, 32, 32]" in text
    assert "269,722" in text and "40.55 M" in text
    assert len(text.splitlines()) == len(s.rows) + 11


def test_summary_batch_size_dtype_and_device(device):
    m = cifar_resnet(8, width=4).to(device)
    s = summary(m, (3, 16, 16), batch_size=3)
    assert s.rows[0].output_shape == (3, 4, 16, 16) and s.output_shape == (3, 10)
    per_sample = summary(m, (3, 16, 16)).total_macs
    assert s.total_macs == per_sample                      # counts are per sample
    s64 = summary(m.double(), (3, 16, 16), dtype=mr.float64)
    assert s64.total_params == s.total_params
    with pytest.raises(TypeError):
        summary(m, (3, 16, 16))                             # float32 zeros into a float64 model
    assert _hook_count(m) == 0 and all(mod.training for mod in m.modules())
    with pytest.raises(ValueError):
        summary(m, (3, 16, 16), batch_size=0)


def test_summary_resnet18_imagenet_flops():
    m = _cached_imagenet("resnet18")
    s = summary(m, (3, 224, 224))
    assert s.total_params == 11_689_512
    assert s.total_macs == pytest.approx(1.8e9, rel=0.05)    # the paper's "1.8 x 10^9 FLOPs"
    assert s.output_shape == (1, 1000)
    assert _hook_count(m) == 0 and not m.training


def test_parse_model_name_is_the_one_name_check():
    assert mr.models.parse_model_name(" ResNet20 ") == (True, 20)
    assert mr.models.parse_model_name("plain18") == (False, 18)
    assert mr.models.is_imagenet_name("resnet50") and not mr.models.is_imagenet_name("resnet56")
    with pytest.raises(ValueError, match="unknown model"):
        mr.models.parse_model_name("vgg16")
    with pytest.raises(ValueError, match="6n\\+2"):
        mr.models.get_model("resnet21")
