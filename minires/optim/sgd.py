r"""Stochastic gradient descent with momentum, weight decay and Nesterov, PyTorch's update rule.

With gradient ``g``, weight decay ``lambda``, momentum ``mu``, learning rate ``eta``:

.. math::
    g \leftarrow g + \lambda w, \qquad b \leftarrow \mu b + g \;(b = g \text{ at the first step}),
    \qquad w \leftarrow w - \eta\,(g + \mu b \text{ if Nesterov else } b)

(PyTorch's form, in which the learning rate multiplies the velocity, not the gradient inside it.)
The paper trains with ``eta = 0.1, mu = 0.9, lambda = 1e-4``.
"""
from __future__ import annotations

from .optimizer import Optimizer


class SGD(Optimizer):
    def __init__(self, params, lr: float = 0.01, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD: lr, momentum and weight_decay must be >= 0, got lr={lr}, "
                             f"momentum={momentum}, weight_decay={weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum needs momentum > 0 and dampening 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def step(self) -> None:
        for group in self.param_groups:
            lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
            damp, nesterov = group["dampening"], group["nesterov"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = self._decayed_grad(p, wd)
                if mu:
                    state = self.state.setdefault(id(p), {})
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = g.copy()
                    else:
                        buf *= mu
                        buf += (1 - damp) * g if damp else g
                    g = g + mu * buf if nesterov else buf
                p.array -= lr * g
                p._bump_version()   # a graph that kept p refuses to backward
