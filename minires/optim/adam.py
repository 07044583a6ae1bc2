r"""Adam (Kingma & Ba, 2015), PyTorch's form (L2 weight decay added to the gradient).

.. math::
    m \leftarrow \beta_1 m + (1-\beta_1) g, \quad v \leftarrow \beta_2 v + (1-\beta_2) g^2, \quad
    w \leftarrow w - \eta \frac{m / (1-\beta_1^t)}{\sqrt{v / (1-\beta_2^t)} + \epsilon}
"""
from __future__ import annotations

import math

from ..devices.backend import array_module
from .optimizer import Optimizer


class Adam(Optimizer):
    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        if lr < 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1) or eps < 0 \
                or weight_decay < 0:
            raise ValueError(f"Adam: invalid lr={lr}, betas={betas}, eps={eps} or "
                             f"weight_decay={weight_decay}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay))

    def step(self) -> None:
        for group in self.param_groups:
            lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], \
                group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                xp = array_module(p.array)
                g = self._decayed_grad(p, wd)
                state = self.state.setdefault(id(p), {})
                if "exp_avg" not in state:
                    state["step"] = 0
                    state["exp_avg"] = xp.zeros_like(p.array)
                    state["exp_avg_sq"] = xp.zeros_like(p.array)
                state["step"] += 1
                t = state["step"]
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m *= b1
                m += (1 - b1) * g
                v *= b2
                v += (1 - b2) * (g * g)
                step_size = lr / (1 - b1 ** t)
                denom = xp.sqrt(v) * (1.0 / math.sqrt(1 - b2 ** t)) + eps
                p.array -= step_size * (m / denom)
                p._bump_version()   # a graph that kept p refuses to backward
