r"""Softmax cross-entropy on logits, numerically stable.

For logits ``z`` (N, K) and integer targets ``t`` (N,), with ``p = softmax(z)``:

.. math::
    \log p_{n,k} = z_{n,k} - \max_j z_{n,j} - \log \sum_j e^{z_{n,j} - \max_j z_{n,j}}, \qquad
    L = -\frac1N \sum_n \log p_{n, t_n}

Subtracting the row maximum (log-sum-exp) keeps ``exp`` from overflowing and changes nothing
mathematically. **Backward:** ``dL/dz = (p - onehot(t)) / N`` (times the upstream gradient): the
softmax Jacobian and the log cancel into this one line.
"""
from __future__ import annotations

from typing import Any, NamedTuple

from ..backend import array_module


class CrossEntropyCache(NamedTuple):
    """What :func:`cross_entropy_backward` needs from the forward pass."""
    log_p: Any                      # (N, K) log-probabilities
    target: Any                     # (N,) class indices
    reduction: str                  # "mean", "sum" or "none"


def log_softmax(z, axis=-1):
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
