"""minires.optim: SGD and Adam against hand-computed references and torch.optim, in-place updates
without graphs, argument checks, learning-rate schedules, and optimizer state round trips."""
import numpy as np
import pytest

import minires as mr
import minires.nn.functional as F
from minires import nn, optim
from minires.optim import lr_scheduler

from .conftest import to_numpy

SHAPES = [(3, 4), (4,), (2, 1, 3)]
STEPS = 5


def _grads(seed=0, steps=STEPS):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s) for s in SHAPES] for _ in range(steps)]


def _initial(seed=1):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in SHAPES]


def _run_minires(make_opt, dtype=np.float64, device="cpu", grads=None):
    params = [nn.Parameter(mr.tensor(a.astype(dtype), device=device)) for a in _initial()]
    opt = make_opt(params)
    for step_grads in grads or _grads():
        for p, g in zip(params, step_grads):
            p.grad = mr.tensor(g.astype(dtype), device=device)
        opt.step()
    return [to_numpy(p) for p in params], params, opt


def _run_torch(make_opt, grads=None):
    torch = pytest.importorskip("torch")
    params = [torch.nn.Parameter(torch.tensor(a)) for a in _initial()]
    opt = make_opt(torch.optim, params)
    for step_grads in grads or _grads():
        for p, g in zip(params, step_grads):
            p.grad = torch.tensor(g)
        opt.step()
    return [p.detach().numpy() for p in params]


def _sgd_reference(lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    """PyTorch's SGD rule, written out in NumPy."""
    params = [a.copy() for a in _initial()]
    bufs = [None] * len(params)
    for step_grads in _grads():
        for i, (p, g) in enumerate(zip(params, step_grads)):
            d = g + weight_decay * p
            if momentum:
                bufs[i] = d.copy() if bufs[i] is None else momentum * bufs[i] + (1 - dampening) * d
                d = d + momentum * bufs[i] if nesterov else bufs[i]
            params[i] = p - lr * d
    return params


def _adam_reference(lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    params = [a.copy() for a in _initial()]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    for t, step_grads in enumerate(_grads(), start=1):
        for i, g in enumerate(step_grads):
            g = g + weight_decay * params[i]
            m[i] = betas[0] * m[i] + (1 - betas[0]) * g
            v[i] = betas[1] * v[i] + (1 - betas[1]) * g * g
            mhat = m[i] / (1 - betas[0] ** t)
            vhat = v[i] / (1 - betas[1] ** t)
            params[i] = params[i] - lr * mhat / (np.sqrt(vhat) + eps)
    return params


SGD_CONFIGS = [
    dict(lr=0.1),
    dict(lr=0.1, momentum=0.9),
    dict(lr=0.1, momentum=0.9, weight_decay=1e-2),
    dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    dict(lr=0.1, momentum=0.5, dampening=0.3),
    dict(lr=0.1, weight_decay=0.1),
]


@pytest.mark.parametrize("config", SGD_CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in
                                                                        c.items()))
def test_sgd_matches_hand_reference(config):
    got, _, _ = _run_minires(lambda ps: optim.SGD(ps, **config))
    for a, b in zip(got, _sgd_reference(**config)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_sgd_first_step_by_hand():
    # one step, the formula the docstring states: w - lr * (g + wd * w); buffer = that at step 1
    p = nn.Parameter(mr.tensor(np.array([1.0, -2.0])))
    opt = optim.SGD([p], lr=0.5, momentum=0.9, weight_decay=0.1)
    p.grad = mr.tensor(np.array([0.2, 0.4]))
    opt.step()
    np.testing.assert_allclose(to_numpy(p), [1.0 - 0.5 * 0.3, -2.0 - 0.5 * 0.2])
    p.grad = mr.tensor(np.array([0.0, 0.0]))
    opt.step()                        # buffer 0.9 * [0.3, 0.2] + decay of the new weights
    w = np.array([0.85, -2.1])
    np.testing.assert_allclose(to_numpy(p), w - 0.5 * (0.9 * np.array([0.3, 0.2]) + 0.1 * w))


@pytest.mark.torch
@pytest.mark.parametrize("config", SGD_CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in
                                                                        c.items()))
def test_sgd_matches_torch(config):
    expected = _run_torch(lambda o, ps: o.SGD(ps, **config))
    got, _, _ = _run_minires(lambda ps: optim.SGD(ps, **config))
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


ADAM_CONFIGS = [dict(lr=1e-2), dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6),
                dict(lr=3e-3, weight_decay=1e-2)]


@pytest.mark.parametrize("config", ADAM_CONFIGS, ids=str)
def test_adam_matches_hand_reference(config):
    got, _, _ = _run_minires(lambda ps: optim.Adam(ps, **config))
    for a, b in zip(got, _adam_reference(**config)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.torch
@pytest.mark.parametrize("config", ADAM_CONFIGS, ids=str)
def test_adam_matches_torch(config):
    expected = _run_torch(lambda o, ps: o.Adam(ps, **config))
    got, _, _ = _run_minires(lambda ps: optim.Adam(ps, **config))
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9,
                                                       weight_decay=1e-4, nesterov=True),
                                  lambda ps: optim.Adam(ps, lr=1e-3, weight_decay=1e-4)],
                         ids=["sgd", "adam"])
def test_step_updates_in_place_without_graph(device, make):
    params = [nn.Parameter(mr.randn(*s, device=device)) for s in SHAPES]
    before_ids = [id(p) for p in params]
    before_arrays = [id(p.array) for p in params]
    before = [to_numpy(p).copy() for p in params]
    opt = make(params)
    grads = []
    for p in params:
        p.grad = mr.randn(*p.shape, device=device)
        grads.append(to_numpy(p.grad).copy())
    opt.step()
    opt.step()
    for p, i, a, b, g in zip(params, before_ids, before_arrays, before, grads):
        assert id(p) == i and id(p.array) == a            # the same tensor and array, updated
        assert p.device == mr.device(device) and p.dtype == mr.float32
        assert p._ctx is None and p.is_leaf and p.requires_grad
        assert not np.array_equal(to_numpy(p), b)
        np.testing.assert_array_equal(to_numpy(p.grad), g)   # weight decay leaves .grad alone
    for state in opt.state.values():
        for v in state.values():
            if hasattr(v, "shape") and v.ndim:
                assert mr.backend.device_of_array(v) == mr.device(device)
                assert v.dtype == np.float32
    # the updated parameters still train: a new graph from them backpropagates
    loss = sum((p * p).sum() for p in params)
    loss.backward()
    assert all(p.grad is not None for p in params)


def test_step_skips_parameters_without_grad():
    a, b = nn.Parameter(mr.ones(2)), nn.Parameter(mr.ones(2))
    opt = optim.SGD([a, b], lr=0.1, momentum=0.9, weight_decay=0.1)
    a.grad = mr.ones(2)
    opt.step()
    np.testing.assert_array_equal(to_numpy(b), np.ones(2, np.float32))
    assert not np.allclose(to_numpy(a), 1.0)
    assert id(b) not in opt.state


def test_zero_grad():
    model = nn.Linear(3, 2)
    opt = optim.SGD(model.parameters(), lr=0.1)
    model(mr.randn(4, 3)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not to_numpy(p.grad).any() for p in model.parameters())
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    # a second backward accumulates unless the gradients were cleared
    x = mr.randn(4, 3)
    model(x).sum().backward()
    g1 = to_numpy(model.weight.grad).copy()
    model(x).sum().backward()
    np.testing.assert_allclose(to_numpy(model.weight.grad), 2 * g1, rtol=1e-6)


@pytest.mark.parametrize("kwargs", [dict(lr=-0.1), dict(lr=0.1, momentum=-0.5),
                                    dict(lr=0.1, weight_decay=-1e-4),
                                    dict(lr=0.1, nesterov=True),
                                    dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True)])
def test_sgd_bad_hyper_parameters(kwargs):
    with pytest.raises(ValueError):
        optim.SGD([nn.Parameter(mr.ones(2))], **kwargs)


@pytest.mark.parametrize("kwargs", [dict(lr=-1e-3), dict(betas=(1.0, 0.999)),
                                    dict(betas=(0.9, -0.1)), dict(eps=-1e-8),
                                    dict(weight_decay=-1e-4)])
def test_adam_bad_hyper_parameters(kwargs):
    with pytest.raises(ValueError):
        optim.Adam([nn.Parameter(mr.ones(2))], **kwargs)


def test_empty_or_wrong_parameters_raise():
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="empty"):
        optim.Adam(nn.ReLU().parameters())
    with pytest.raises(ValueError):
        optim.SGD([mr.ones(2)], lr=0.1)                   # does not require grad
    with pytest.raises(TypeError):
        optim.SGD([np.ones(2)], lr=0.1)


def test_param_groups_have_their_own_settings():
    a, b = nn.Parameter(mr.ones(2)), nn.Parameter(mr.ones(2))
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.1)
    a.grad, b.grad = mr.ones(2), mr.ones(2)
    opt.step()
    np.testing.assert_allclose(to_numpy(a), 0.9)
    np.testing.assert_allclose(to_numpy(b), 0.0)


# --- learning-rate schedules ------------------------------------------------------------------

def _lrs(make_sched, steps, lr=0.1):
    opt = optim.SGD([nn.Parameter(mr.ones(1))], lr=lr, momentum=0.9)
    sched = make_sched(opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        assert sched.get_last_lr() == [out[-1]]
        opt.step()
        sched.step()
    return out


def _torch_lrs(make_sched, steps, lr=0.1):
    torch = pytest.importorskip("torch")
    opt = torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=lr, momentum=0.9)
    sched = make_sched(torch.optim.lr_scheduler, opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_multistep_lr():
    lrs = _lrs(lambda o: lr_scheduler.MultiStepLR(o, milestones=[4, 2], gamma=0.1), 7)
    np.testing.assert_allclose(lrs, [0.1, 0.1, 0.01, 0.01, 0.001, 0.001, 0.001], rtol=1e-12)
    lrs = _lrs(lambda o: lr_scheduler.MultiStepLR(o, [1], gamma=0.5), 3, lr=0.2)
    np.testing.assert_allclose(lrs, [0.2, 0.1, 0.1])


def test_linear_lr_warmup():
    lrs = _lrs(lambda o: lr_scheduler.LinearLR(o, start_factor=0.1, total_iters=4), 7)
    np.testing.assert_allclose(lrs, [0.01, 0.0325, 0.055, 0.0775, 0.1, 0.1, 0.1], rtol=1e-12)
    with pytest.raises(ValueError):
        lr_scheduler.LinearLR(optim.SGD([nn.Parameter(mr.ones(1))], lr=0.1), start_factor=0)


def test_resnet110_warmup():
    lrs = _lrs(lambda o: lr_scheduler.resnet110_warmup(o), 403)
    assert lrs[:400] == [0.01] * 400
    assert lrs[400:] == [0.1] * 3
    lrs = _lrs(lambda o: lr_scheduler.WarmupLR(o, warmup_lr=0.02, warmup_iters=2), 4, lr=0.5)
    assert lrs == [0.02, 0.02, 0.5, 0.5]


def test_sequential_lr_warmup_then_steps():
    def make(o):
        warm = lr_scheduler.LinearLR(o, start_factor=0.25, total_iters=2)
        steps = lr_scheduler.MultiStepLR(o, milestones=[3, 5], gamma=0.1)
        return lr_scheduler.SequentialLR(o, [warm, steps], milestones=[2])
    lrs = _lrs(make, 9)
    # 2 warm-up steps (0.025, 0.0625), then MultiStepLR restarted at its epoch 0 at step 2
    np.testing.assert_allclose(lrs, [0.025, 0.0625, 0.1, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001],
                               rtol=1e-12)
    with pytest.raises(ValueError):
        lr_scheduler.SequentialLR(optim.SGD([nn.Parameter(mr.ones(1))], lr=0.1), [], [1])


@pytest.mark.torch
@pytest.mark.parametrize("name", ["multistep", "linear", "sequential"])
def test_schedules_match_torch(name):
    def build(mod, o):
        if name == "multistep":
            return mod.MultiStepLR(o, milestones=[3, 6], gamma=0.2)
        if name == "linear":
            return mod.LinearLR(o, start_factor=0.2, end_factor=0.9, total_iters=5)
        warm = mod.LinearLR(o, start_factor=0.1, total_iters=3)
        steps = mod.MultiStepLR(o, milestones=[4], gamma=0.1)
        return mod.SequentialLR(o, [warm, steps], milestones=[3])
    expected = _torch_lrs(build, 10)
    np.testing.assert_allclose(_lrs(lambda o: build(lr_scheduler, o), 10), expected, rtol=1e-12)


# --- optimizer state ---------------------------------------------------------------------------

def _train(model, opt, batches):
    for x, y in batches:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()


def _batches(device, n, seed):
    rng = np.random.default_rng(seed)
    return [(mr.tensor(rng.standard_normal((8, 5)).astype(np.float32), device=device),
             mr.tensor(rng.integers(0, 3, 8), device=device)) for _ in range(n)]


def _model(device):
    mr.manual_seed(7)
    return nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 3)).to(device)


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9,
                                                       weight_decay=1e-3, nesterov=True),
                                  lambda ps: optim.Adam(ps, lr=1e-2)], ids=["sgd", "adam"])
def test_optimizer_state_round_trip_continues_identically(device, make):
    first, second = _batches(device, 3, 0), _batches(device, 3, 1)
    # uninterrupted
    model = _model(device)
    opt = make(model.parameters())
    _train(model, opt, first + second)
    uninterrupted = [to_numpy(p) for p in model.parameters()]
    # interrupted after `first`, the states copied to the host, restored into fresh objects
    model = _model(device)
    opt = make(model.parameters())
    _train(model, opt, first)
    model_state = {k: to_numpy(v).copy() for k, v in model.state_dict().items()}
    opt_state = opt.state_dict()
    _train(model, opt, _batches(device, 2, 9))          # training on must not alter the copy
    for s in opt_state["state"].values():
        for v in s.values():
            assert not hasattr(v, "shape") or isinstance(v, np.ndarray)
    restored = _model(device)
    restored.load_state_dict(model_state)
    opt2 = make(restored.parameters())
    opt2.load_state_dict(opt_state)
    for s in opt2.state.values():
        for v in s.values():
            if hasattr(v, "shape") and v.ndim:
                assert mr.backend.device_of_array(v) == mr.device(device)
    _train(restored, opt2, second)
    for a, b in zip(uninterrupted, restored.parameters()):
        np.testing.assert_array_equal(a, to_numpy(b))


def test_optimizer_state_dict_contents():
    model = nn.Linear(2, 2)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(mr.randn(3, 2)).sum().backward()
    opt.step()
    sd = opt.state_dict()
    assert sorted(sd) == ["param_groups", "state"]
    assert sd["param_groups"][0]["params"] == [0, 1]
    assert sd["param_groups"][0]["lr"] == 0.1 and sd["param_groups"][0]["momentum"] == 0.9
    assert sorted(sd["state"]) == [0, 1]
    np.testing.assert_array_equal(sd["state"][0]["momentum_buffer"], to_numpy(model.weight.grad))
    # the learning rate of a restored optimizer comes from the checkpoint
    opt2 = optim.SGD(nn.Linear(2, 2).parameters(), lr=0.5, momentum=0.9)
    sd["param_groups"][0]["lr"] = 0.01
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["lr"] == 0.01


def test_mismatched_optimizer_state_raises():
    model = nn.Linear(2, 2)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(mr.randn(3, 2)).sum().backward()
    opt.step()
    sd = opt.state_dict()
    other = optim.SGD(nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2)).parameters(), lr=0.1)
    with pytest.raises(ValueError):
        other.load_state_dict(sd)                         # 4 parameters, the state has 2
    wrong_shape = optim.SGD(nn.Linear(3, 2).parameters(), lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="shape"):
        wrong_shape.load_state_dict(sd)                   # weight (2, 3) vs state (2, 2)
    two_groups = optim.SGD([{"params": [model.weight]}, {"params": [model.bias]}], lr=0.1)
    with pytest.raises(ValueError):
        two_groups.load_state_dict(sd)
