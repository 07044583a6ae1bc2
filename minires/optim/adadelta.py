r"""Adadelta (Zeiler, 2012), PyTorch's update rule.

With gradient ``g`` (plus ``lambda w`` for weight decay), decay ``rho``, and two running averages
``v`` (of ``g^2``) and ``u`` (of the squared updates), both starting at zero:

.. math::
    v \leftarrow \rho v + (1-\rho) g^2, \qquad
    \Delta = \frac{\sqrt{u + \epsilon}}{\sqrt{v + \epsilon}}\, g, \qquad
    u \leftarrow \rho u + (1-\rho) \Delta^2, \qquad
    w \leftarrow w - \eta \Delta

The ratio of the two root-mean-squares gives each step the units of ``w``; ``eta`` (default 1.0)
only scales it.
"""
from __future__ import annotations

from .optimizer import Optimizer


class Adadelta(Optimizer):
    def __init__(self, params, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0.0):
        if lr < 0 or not 0.0 <= rho <= 1.0 or eps < 0 or weight_decay < 0:
            raise ValueError(f"Adadelta: need lr >= 0, 0 <= rho <= 1, eps >= 0, weight_decay >= 0;"
                             f" got lr={lr}, rho={rho}, eps={eps}, weight_decay={weight_decay}")
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay))

    def step(self) -> None:
        for group in self.param_groups:
            lr, rho, eps, wd = group["lr"], group["rho"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = self._decayed_grad(p, wd)
                xp = p.xp
                state = self.state.setdefault(id(p), {})
                if "square_avg" not in state:
                    state["square_avg"] = xp.zeros_like(p.array)
                    state["acc_delta"] = xp.zeros_like(p.array)
                v, u = state["square_avg"], state["acc_delta"]
                v *= rho
                v += (1 - rho) * (g * g)
                delta = xp.sqrt(u + eps) / xp.sqrt(v + eps) * g
                u *= rho
                u += (1 - rho) * (delta * delta)
                p.array -= lr * delta
                p._bump_version()   # a graph that kept p refuses to backward
