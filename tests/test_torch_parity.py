"""Parity with PyTorch CPU (the optional oracle): forward and backward of the layers a ResNet uses,
in float64 (to ~1e-10) and float32 (to ~1e-4), on every device. Skipped where torch is absent."""
import numpy as np
import pytest

import minires as mr

torch = pytest.importorskip("torch")
F = torch.nn.functional
pytestmark = pytest.mark.torch


@pytest.fixture(params=[np.float64, np.float32], ids=["float64", "float32"])
def dtype(request):
    return np.dtype(request.param)


def tol(dtype):
    return dict(rtol=1e-10, atol=1e-10) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-4)


def pair_of(array, dtype, device, requires_grad=True):
    """The same values as a minires tensor on ``device`` and a torch CPU tensor."""
    a = np.asarray(array).astype(dtype)
    return (mr.tensor(a, device=device, requires_grad=requires_grad),
            torch.tensor(a, requires_grad=requires_grad))


def close(mine, theirs, dtype):
    assert mine is not None, "minires computed no gradient"
    np.testing.assert_allclose(mine.numpy(), theirs.detach().numpy(), **tol(dtype))


CONV_CASES = [
    ((2, 3, 8, 8), (4, 3, 3, 3), 1, 1, 1),
    ((2, 3, 8, 8), (4, 3, 3, 3), 2, 1, 1),
    ((2, 2, 9, 7), (3, 2, 3, 3), 2, 0, 1),            # (H + 2p - k) % s != 0
    ((1, 2, 9, 9), (3, 2, 3, 3), 1, 2, 2),            # dilation
    ((2, 4, 6, 6), (5, 4, 1, 1), 2, 0, 1),            # the 1x1 projection shortcut
    ((1, 2, 7, 6), (2, 2, 3, 2), (2, 1), (1, 0), (1, 2)),
]


@pytest.mark.parametrize("xs, ws, stride, padding, dilation", CONV_CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d(device, dtype, xs, ws, stride, padding, dilation, bias):
    rng = np.random.default_rng(0)
    x, tx = pair_of(rng.standard_normal(xs), dtype, device)
    w, tw = pair_of(rng.standard_normal(ws), dtype, device)
    b, tb = pair_of(rng.standard_normal(ws[0]), dtype, device) if bias else (None, None)
    y = mr.ops.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation)
    ty = F.conv2d(tx, tw, tb, stride=stride, padding=padding, dilation=dilation)
    close(y, ty, dtype)
    g = rng.standard_normal(ty.shape).astype(dtype)
    y.backward(mr.tensor(g, device=device))
    ty.backward(torch.tensor(g))
    close(x.grad, tx.grad, dtype)
    close(w.grad, tw.grad, dtype)
    if bias:
        close(b.grad, tb.grad, dtype)


@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 5, 5)], ids=["2d", "4d"])
def test_batch_norm_three_steps_then_eval(device, dtype, shape):
    rng = np.random.default_rng(1)
    c = shape[1]
    w, tw = pair_of(rng.uniform(0.5, 1.5, c), dtype, device)
    b, tb = pair_of(rng.standard_normal(c), dtype, device)
    rm, trm = pair_of(np.zeros(c), dtype, device, requires_grad=False)
    rv, trv = pair_of(np.ones(c), dtype, device, requires_grad=False)
    for step in range(3):
        x, tx = pair_of(rng.standard_normal(shape) * (step + 1) + step, dtype, device)
        y = mr.ops.batch_norm(x, rm, rv, w, b, True, 0.1, 1e-5)
        ty = F.batch_norm(tx, trm, trv, tw, tb, True, 0.1, 1e-5)
        close(y, ty, dtype)
        close(rm, trm, dtype)
        close(rv, trv, dtype)
        g = rng.standard_normal(shape).astype(dtype)
        y.backward(mr.tensor(g, device=device))
        ty.backward(torch.tensor(g))
        close(x.grad, tx.grad, dtype)
    close(w.grad, tw.grad, dtype)           # accumulated over the three steps
    close(b.grad, tb.grad, dtype)
    x, tx = pair_of(rng.standard_normal(shape), dtype, device)
    y = mr.ops.batch_norm(x, rm, rv, w, b, False, 0.1, 1e-5)
    ty = F.batch_norm(tx, trm, trv, tw, tb, False, 0.1, 1e-5)
    close(y, ty, dtype)
    g = rng.standard_normal(shape).astype(dtype)
    y.backward(mr.tensor(g, device=device))
    ty.backward(torch.tensor(g))
    close(x.grad, tx.grad, dtype)
    close(w.grad, tw.grad, dtype)
    close(rv, trv, dtype)


POOL_CASES = [((2, 3, 8, 8), 2, None, 0), ((2, 2, 7, 7), 3, 2, 1), ((1, 2, 9, 8), 2, 3, 0),
              ((2, 1, 7, 6), (3, 2), (2, 1), (1, 1))]


@pytest.mark.parametrize("xs, k, s, p", POOL_CASES)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pools(device, dtype, xs, k, s, p, kind):
    rng = np.random.default_rng(2)
    size = int(np.prod(xs))
    x, tx = pair_of((rng.permutation(size) * 0.01 - size * 0.005).reshape(xs), dtype, device)
    y = getattr(mr.ops, f"{kind}_pool2d")(x, k, s, p)
    ty = getattr(F, f"{kind}_pool2d")(tx, k, s, p)
    close(y, ty, dtype)
    g = rng.standard_normal(ty.shape).astype(dtype)
    y.backward(mr.tensor(g, device=device))
    ty.backward(torch.tensor(g))
    close(x.grad, tx.grad, dtype)


@pytest.mark.parametrize("in_hw, out", [((8, 8), 1), ((5, 7), (2, 3)), ((7, 5), 3),
                                        ((4, 5), (6, 2))])
def test_adaptive_avg_pool2d(device, dtype, in_hw, out):
    rng = np.random.default_rng(3)
    x, tx = pair_of(rng.standard_normal((2, 3) + in_hw), dtype, device)
    y = mr.ops.adaptive_avg_pool2d(x, out)
    ty = F.adaptive_avg_pool2d(tx, out)
    close(y, ty, dtype)
    g = rng.standard_normal(ty.shape).astype(dtype)
    y.backward(mr.tensor(g, device=device))
    ty.backward(torch.tensor(g))
    close(x.grad, tx.grad, dtype)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_linear_cross_entropy(device, dtype, reduction):
    rng = np.random.default_rng(4)
    x, tx = pair_of(rng.standard_normal((6, 5)), dtype, device)
    w, tw = pair_of(rng.standard_normal((4, 5)), dtype, device)
    b, tb = pair_of(rng.standard_normal(4), dtype, device)
    target = np.array([0, 3, 3, 1, 2, 0])
    loss = mr.ops.cross_entropy(mr.ops.linear(x, w, b), mr.tensor(target, device=device),
                                reduction=reduction)
    tloss = F.cross_entropy(F.linear(tx, tw, tb), torch.tensor(target), reduction=reduction)
    close(loss, tloss, dtype)
    (loss * 1.5).sum().backward()
    (tloss * 1.5).sum().backward()
    for mine, theirs in ((x, tx), (w, tw), (b, tb)):
        close(mine.grad, theirs.grad, dtype)


def test_small_resnet_stem(device, dtype):
    # conv -> bn -> relu -> conv -> bn + shortcut -> relu -> global pool -> linear -> loss
    rng = np.random.default_rng(5)
    x, tx = pair_of(rng.standard_normal((2, 3, 8, 8)), dtype, device, requires_grad=False)
    params = [pair_of(rng.standard_normal(s) * 0.3, dtype, device)
              for s in ((4, 3, 3, 3), (4, 4, 3, 3), (10, 4))]
    rms = [pair_of(np.zeros(4), dtype, device, False) for _ in range(2)]
    rvs = [pair_of(np.ones(4), dtype, device, False) for _ in range(2)]
    target = np.array([3, 7])

    def run(lib, side):
        p = [pp[side] for pp in params]
        conv = mr.ops.conv2d if lib == "mr" else F.conv2d
        bn = mr.ops.batch_norm if lib == "mr" else F.batch_norm
        relu = (lambda t: t.relu()) if lib == "mr" else F.relu
        h = relu(bn(conv(x if lib == "mr" else tx, p[0], padding=1), rms[0][side], rvs[0][side],
                    None, None, True, 0.1, 1e-5))
        h2 = bn(conv(h, p[1], padding=1), rms[1][side], rvs[1][side], None, None, True, 0.1,
                1e-5)
        h = relu(h2 + h)
        pooled = (mr.ops.adaptive_avg_pool2d if lib == "mr" else F.adaptive_avg_pool2d)(h, 1)
        logits = (mr.ops.linear if lib == "mr" else F.linear)(pooled.flatten(1), p[2])
        ce = mr.ops.cross_entropy if lib == "mr" else F.cross_entropy
        return ce(logits, mr.tensor(target, device=device) if lib == "mr"
                  else torch.tensor(target))

    loss, tloss = run("mr", 0), run("torch", 1)
    close(loss, tloss, dtype)
    loss.backward()
    tloss.backward()
    for mine, theirs in params:
        close(mine.grad, theirs.grad, dtype)
    for (mine, theirs) in rms + rvs:
        close(mine, theirs, dtype)
