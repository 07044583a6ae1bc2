"""Recording gradient flow *during* training, as a callback of :func:`minires.train.fit`.

Every ``every`` steps, :class:`GradientTracker` stores, for each conv/linear weight: the gradient
norm, the weight norm and the update-to-weight ratio ``||W_after - W_before|| / ||W_before||``
of that step (about 1e-3 is the classic healthy value). It works through the training loop's
per-step hooks (``on_after_backward`` and ``on_after_step``, see :class:`minires.train.Callback`)
and costs nothing on the other steps; with no tracker the loop does no extra work at all.
"""
from __future__ import annotations

import numpy

from .gradflow import weight_layers
from .norms import array_norm


class GradientTracker:
    """A training callback that records per-layer gradient norms every ``every`` steps."""

    def __init__(self, every: int = 10):
        if every < 1:
            raise ValueError(f"GradientTracker: every must be >= 1, got {every}")
        self.every = every
        self.steps: list[int] = []
        self.names: list[str] = []
        self.grad_norms: list[list[float]] = []
        self.weight_norms: list[list[float]] = []
        self.update_ratios: list[list[float]] = []
        self._before = None

    def _due(self, step: int) -> bool:
        return step % self.every == 0

    def on_after_backward(self, step: int, model) -> None:
        if not self._due(step):
            return
        layers = weight_layers(model)
        self.names = [n for n, _ in layers]
        self.steps.append(step)
        self.grad_norms.append([array_norm(w.grad.array) if w.grad is not None else 0.0
                                for _, w in layers])
        self.weight_norms.append([array_norm(w.array) for _, w in layers])
        self._before = [w.array.copy() for _, w in layers]

    def on_after_step(self, step: int, model) -> None:
        if self._before is None:
            return
        layers = weight_layers(model)
        self.update_ratios.append([
            array_norm(w.array - before) / max(norm, 1e-30)
            for (_, w), before, norm in zip(layers, self._before, self.weight_norms[-1])])
        self._before = None

    def __call__(self, step, model, metrics):
        """The record hook of ``fit`` (every ``eval_every`` steps): nothing to do here."""

    def as_array(self, what: str = "grad_norms") -> numpy.ndarray:
        """(layers, recorded steps) array, for a heat map."""
        values = getattr(self, what)
        return numpy.asarray(values, dtype=float).T if values else numpy.zeros((0, 0))

    def to_dict(self) -> dict:
        return {"every": self.every, "steps": self.steps, "names": self.names,
                "grad_norms": self.grad_norms, "weight_norms": self.weight_norms,
                "update_ratios": self.update_ratios}
