r"""Softmax cross-entropy on logits, numerically stable.

For logits ``z`` (N, K) and integer targets ``t`` (N,), with ``p = softmax(z)``:

.. math::
    \log p_{n,k} = z_{n,k} - \max_j z_{n,j} - \log \sum_j e^{z_{n,j} - \max_j z_{n,j}}, \qquad
    L = -\frac1N \sum_n \log p_{n, t_n}

Subtracting the row maximum (log-sum-exp) keeps ``exp`` from overflowing and changes nothing
mathematically. **Backward:** ``dL/dz = (p - onehot(t)) / N`` (times the upstream gradient): the
softmax Jacobian and the log cancel into this one line.

**The plain path** is :func:`minires.kernels.reference.softmax_cross_entropy`: the same formulas
with a one-hot (N, K) matrix of the targets. This kernel is tested against it, and differs in two
steps:

1. **Pick, do not multiply.** The target's log-probability is gathered by index,
   ``log_p[arange(N), t]``, and backward subtracts 1 at the same indices (one index per row, so
   no repeated indices, which CuPy's scatter leaves undefined): no (N, K) one-hot matrix.
2. **PyTorch's reductions.** ``reduction`` is "mean" (the course's), "sum" or "none" (a loss per
   sample), and the upstream gradient ``dloss`` scales the result accordingly.
"""
from __future__ import annotations

from typing import Any, NamedTuple

from ..devices.backend import array_module


class CrossEntropyCache(NamedTuple):
    """What :func:`cross_entropy_backward` needs from the forward pass."""
    log_p: Any                      # (N, K) log-probabilities
    target: Any                     # (N,) class indices
    reduction: str                  # "mean", "sum" or "none"


def log_softmax(z, axis=-1):
    """``z - max - log sum exp(z - max)`` along ``axis`` (the max keeps ``exp`` finite)."""
    xp = array_module(z)
    shifted = z - z.max(axis=axis, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


def cross_entropy_forward(logits, target, reduction="mean"):
    """Returns ``(loss, cache)``; ``loss`` is 0-d for "mean"/"sum", (N,) for "none"."""
    xp = array_module(logits)
    n = logits.shape[0]
    log_p = log_softmax(logits, axis=1)
    picked = -log_p[xp.arange(n), target]
    if reduction == "mean":
        loss = picked.sum() * (1.0 / n)
    elif reduction == "sum":
        loss = picked.sum()
    else:
        loss = picked
    return loss.astype(logits.dtype, copy=False), CrossEntropyCache(log_p, target, reduction)


def cross_entropy_backward(dloss, cache):
    """``dL/dz = dloss * (p - onehot(t))``, divided by N for "mean"; ``dloss`` is 0-d, or (N,)
    for "none"."""
    log_p, target, reduction = cache
    xp = array_module(log_p)
    n = log_p.shape[0]
    dz = xp.exp(log_p)                              # softmax probabilities
    dz[xp.arange(n), target] -= 1                   # one index per row: no repeated indices
    if reduction == "mean":
        dz *= dloss * (1.0 / n)
    elif reduction == "sum":
        dz *= dloss
    else:
        dz *= dloss[:, None]
    return dz
