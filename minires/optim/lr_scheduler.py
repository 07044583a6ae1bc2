"""Learning-rate schedules, stepped once per iteration or epoch by the training loop.

* ``MultiStepLR``: multiply by ``gamma`` at each milestone (the paper: /10 at 32k and 48k
  iterations).
* ``LinearLR``: a linear warm-up from ``start_factor`` to ``end_factor`` over ``total_iters``.
* ``WarmupLR`` / :func:`resnet110_warmup`: the paper's ResNet-110 recipe, a constant low rate
  (0.01) for the first 400 iterations, then the base rate (0.1).
* ``SequentialLR`` chains schedules at given milestones.
"""
from __future__ import annotations

from bisect import bisect_right


class LRScheduler:
    def __init__(self, optimizer, last_epoch: int = -1):
        self.optimizer = optimizer
        self.base_lrs = [g.setdefault("initial_lr", g["lr"]) for g in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def get_lr(self) -> list[float]:  # pragma: no cover - abstract
        raise NotImplementedError

    def step(self) -> None:
        self.last_epoch += 1
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "optimizer" and
                not isinstance(v, LRScheduler) and k != "schedulers"}

    def load_state_dict(self, state: dict) -> None:
        self.__dict__.update(state)


class MultiStepLR(LRScheduler):
    def __init__(self, optimizer, milestones, gamma: float = 0.1, last_epoch: int = -1):
        self.milestones = sorted(int(m) for m in milestones)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        factor = self.gamma ** bisect_right(self.milestones, self.last_epoch)
        return [base * factor for base in self.base_lrs]


class StepLR(MultiStepLR):
    def __init__(self, optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1):
        self.step_size = step_size
        self.milestones, self.gamma = [], gamma
        LRScheduler.__init__(self, optimizer, last_epoch)

    def get_lr(self):
        return [base * self.gamma ** (self.last_epoch // self.step_size)
                for base in self.base_lrs]


class LinearLR(LRScheduler):
    def __init__(self, optimizer, start_factor: float = 1 / 3, end_factor: float = 1.0,
                 total_iters: int = 5, last_epoch: int = -1):
        if not 0 < start_factor <= 1 or not 0 <= end_factor <= 1:
            raise ValueError("LinearLR: start_factor must be in (0, 1] and end_factor in [0, 1]")
        self.start_factor, self.end_factor, self.total_iters = start_factor, end_factor, \
            total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        t = min(self.last_epoch, self.total_iters) / max(self.total_iters, 1)
        factor = self.start_factor + (self.end_factor - self.start_factor) * t
        return [base * factor for base in self.base_lrs]


class WarmupLR(LRScheduler):
    """A constant ``warmup_lr`` for the first ``warmup_iters`` steps, then the base rate."""

    def __init__(self, optimizer, warmup_lr: float = 0.01, warmup_iters: int = 400,
                 last_epoch: int = -1):
        self.warmup_lr, self.warmup_iters = warmup_lr, warmup_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch < self.warmup_iters:
            return [self.warmup_lr for _ in self.base_lrs]
        return list(self.base_lrs)


def resnet110_warmup(optimizer, warmup_lr: float = 0.01, warmup_iters: int = 400) -> WarmupLR:
    """The paper's ResNet-110 start: lr 0.01 for 400 iterations, then the base lr (0.1)."""
    return WarmupLR(optimizer, warmup_lr, warmup_iters)


class SequentialLR(LRScheduler):
    """Run ``schedulers[i]`` until ``milestones[i]``, then the next one."""

    def __init__(self, optimizer, schedulers, milestones):
        if len(milestones) != len(schedulers) - 1:
            raise ValueError("SequentialLR: need one milestone fewer than schedulers")
        self.schedulers, self.milestones = list(schedulers), list(milestones)
        self.optimizer = optimizer
        self.last_epoch = 0
        for group, lr in zip(optimizer.param_groups, [g["initial_lr"]
                                                      for g in optimizer.param_groups]):
            group["lr"] = lr
        self.schedulers[0].last_epoch = -1
        self.schedulers[0].step()

    def state_dict(self) -> dict:
        return {"last_epoch": self.last_epoch, "milestones": list(self.milestones),
                "schedulers": [s.state_dict() for s in self.schedulers]}

    def load_state_dict(self, state: dict) -> None:
        self.last_epoch = state["last_epoch"]
        self.milestones = list(state["milestones"])
        for s, st in zip(self.schedulers, state["schedulers"]):
            s.load_state_dict(st)

    def step(self):
        self.last_epoch += 1
        i = bisect_right(self.milestones, self.last_epoch)
        sched = self.schedulers[i]
        if i > 0 and self.milestones[i - 1] == self.last_epoch:
            sched.last_epoch = -1
        sched.step()
