"""Adadelta and the schedules PyTorch programs use (issue 14, item 4): their formulas checked by
hand and, where torch is installed, step by step against torch over many steps."""
import math

import numpy as np
import pytest

import minires as mr
from minires import optim
from minires.optim import lr_scheduler


def _param(values=(1.0, -2.0, 0.5)):
    return mr.tensor(np.asarray(values), requires_grad=True)


def test_adadelta_against_its_formula():
    p = _param()
    opt = optim.Adadelta([p], lr=0.5, rho=0.8, eps=1e-6, weight_decay=0.1)
    w = p.numpy().copy()
    v, u = np.zeros(3), np.zeros(3)
    for step in range(5):
        opt.zero_grad()
        (p * p * p).sum().backward()
        g = 3 * w ** 2 + 0.1 * w
        v = 0.8 * v + 0.2 * g * g
        delta = np.sqrt(u + 1e-6) / np.sqrt(v + 1e-6) * g
        u = 0.8 * u + 0.2 * delta * delta
        w = w - 0.5 * delta
        opt.step()
        np.testing.assert_allclose(p.numpy(), w, rtol=1e-12)


def _lrs(make, steps, lr=0.1, metric=None, momentum=0.9):
    p = _param()
    opt = optim.SGD([p], lr=lr, momentum=momentum)
    sched = make(opt)
    out = []
    for i in range(steps):
        out.append((opt.param_groups[0]["lr"], opt.param_groups[0]["momentum"]))
        opt.step()
        sched.step(metric(i)) if metric else sched.step()
    return out


def test_schedules_by_hand():
    cos = _lrs(lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=10, eta_min=0.01), 11)
    assert cos[0][0] == pytest.approx(0.1) and cos[10][0] == pytest.approx(0.01)
    assert cos[5][0] == pytest.approx(0.055)
    lam = _lrs(lambda o: lr_scheduler.LambdaLR(o, lambda e: 0.5 ** e), 4)
    assert [round(x[0], 6) for x in lam] == [0.1, 0.05, 0.025, 0.0125]
    step = _lrs(lambda o: lr_scheduler.StepLR(o, step_size=2, gamma=0.5), 5)
    assert [round(x[0], 6) for x in step] == [0.1, 0.1, 0.05, 0.05, 0.025]
    one = _lrs(lambda o: lr_scheduler.OneCycleLR(o, max_lr=1.0, total_steps=10), 10)
    assert one[0] == (pytest.approx(0.04), 0.95) and max(x[0] for x in one) == pytest.approx(1.0)
    assert min(x[1] for x in one) == pytest.approx(0.85)
    plateau = _lrs(lambda o: lr_scheduler.ReduceLROnPlateau(o, patience=2, factor=0.5), 8,
                   metric=lambda i: 1.0)
    assert [round(x[0], 6) for x in plateau] == [0.1] * 4 + [0.05] * 3 + [0.025]


def _torch_lrs(torch, make, steps, lr=0.1, metric=None):
    p = torch.nn.Parameter(torch.zeros(3))
    opt = torch.optim.SGD([p], lr=lr, momentum=0.9)
    sched = make(opt)
    out = []
    for i in range(steps):
        out.append((opt.param_groups[0]["lr"], opt.param_groups[0]["momentum"]))
        opt.step()
        sched.step(metric(i)) if metric else sched.step()
    return out


@pytest.mark.torch
@pytest.mark.parametrize("name", ["cosine", "onecycle", "onecycle3", "lambda", "plateau",
                                  "step"])
def test_schedules_match_torch_over_many_steps(name):
    torch = pytest.importorskip("torch")
    losses = np.abs(np.sin(np.arange(300) / 7.0)) + 1 / (1 + np.arange(300) / 30)
    cases = {
        "cosine": (lambda m: m.CosineAnnealingLR, dict(T_max=37, eta_min=0.001), 200),
        "onecycle": (lambda m: m.OneCycleLR, dict(max_lr=0.5, total_steps=250, pct_start=0.25),
                     250),
        "onecycle3": (lambda m: m.OneCycleLR, dict(max_lr=0.5, epochs=5, steps_per_epoch=40,
                                                   three_phase=True, anneal_strategy="linear"),
                      200),
        "lambda": (lambda m: m.LambdaLR, dict(lr_lambda=lambda e: 1 / (1 + 0.05 * e)), 200),
        "plateau": (lambda m: m.ReduceLROnPlateau, dict(patience=3, factor=0.5, cooldown=2,
                                                        min_lr=1e-4), 300),
        "step": (lambda m: m.StepLR, dict(step_size=30, gamma=0.3), 200),
    }
    cls, kwargs, steps = cases[name]
    metric = (lambda i: losses[i]) if name == "plateau" else None
    mine = _lrs(lambda o: cls(lr_scheduler)(o, **kwargs), steps, metric=metric)
    theirs = _torch_lrs(torch, lambda o: cls(torch.optim.lr_scheduler)(o, **kwargs), steps,
                        metric=metric)
    np.testing.assert_allclose(np.array(mine), np.array(theirs), rtol=1e-10, atol=1e-12)


@pytest.mark.torch
def test_adadelta_matches_torch():
    torch = pytest.importorskip("torch")
    w0 = np.array([1.0, -2.0, 0.5])
    mine, theirs = _param(w0), torch.tensor(w0, requires_grad=True)
    a = optim.Adadelta([mine], lr=0.7, weight_decay=0.01)
    b = torch.optim.Adadelta([theirs], lr=0.7, weight_decay=0.01)
    for _ in range(20):
        a.zero_grad()
        b.zero_grad()
        (mine * mine * mine).sum().backward()
        (theirs ** 3).sum().backward()
        a.step()
        b.step()
    np.testing.assert_allclose(mine.numpy(), theirs.detach().numpy(), rtol=1e-12)
    assert not math.isclose(mine.numpy()[0], w0[0])
