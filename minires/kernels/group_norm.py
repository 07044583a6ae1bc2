r"""Group normalisation (Wu and He, 2018): batch norm's arithmetic over channel groups of one
sample instead of over the batch.

Input ``x`` (N, C, ...) with C split into ``G`` groups of C/G consecutive channels. Statistics are
per sample and group, over the ``M = (C/G) * H * W`` entries of that group (no running
statistics: training and evaluation compute the same thing):

.. math::
    \mu = \frac1M \sum x, \quad \sigma^2 = \frac1M \sum (x-\mu)^2, \quad
    \hat x = \frac{x-\mu}{\sqrt{\sigma^2+\epsilon}}, \quad y = \gamma_c \hat x + \beta_c

with a per-*channel* affine ``gamma, beta``.

**Backward.** Write ``g = dy * gamma_c`` (the gradient reaching ``x-hat``). Exactly as for batch
norm, ``mu`` and ``sigma`` depend on every ``x`` of the group; the three terms simplify to (means
over the group's M entries):

.. math::
    dx = \frac{1}{\sqrt{\sigma^2+\epsilon}}
         \Big(g - \overline{g} - \hat x\,\overline{g \hat x}\Big), \qquad
    d\gamma_c = \sum_{n, h, w} dy\,\hat x, \qquad d\beta_c = \sum_{n, h, w} dy

**The plain path** is :func:`minires.kernels.reference.group_norm_forward` and
:func:`~minires.kernels.reference.group_norm_backward`: a loop over the groups, each normalised
by the formulas above. This kernel is tested against it and has one step more: **all groups at
once**. The groups are consecutive channels, so ``x.reshape(N, G, M)`` lays out every group of
every sample as one row, and each mean above is one reduction over the last axis.
"""
from __future__ import annotations

from ..devices.backend import array_module


def group_norm_forward(x, num_groups: int, weight=None, bias=None, eps: float = 1e-5):
    """``y`` (x's shape) and a cache for the backward; ``weight`` (gamma) and ``bias`` (beta),
    (C,) each, may be None."""
    xp = array_module(x)
    n, c = x.shape[0], x.shape[1]
    groups = x.reshape(n, num_groups, -1)                    # (N, G, M)
    mean = groups.mean(axis=2, keepdims=True)
    centered = groups - mean
    var = (centered * centered).mean(axis=2, keepdims=True)
    inv_std = 1.0 / xp.sqrt(var + eps)
    x_hat = (centered * inv_std).reshape(x.shape)
    channel = (1, c) + (1,) * (x.ndim - 2)                   # broadcast a (C,) vector over x
    y = x_hat * weight.reshape(channel) if weight is not None else x_hat.copy()
    if bias is not None:
        y += bias.reshape(channel)
    return y, (x_hat, inv_std, weight, num_groups)


def group_norm_backward(dy, cache, need_dx=True, need_dweight=True, need_dbias=True):
    """Gradients ``(dx, dweight, dbias)``; None where not needed. ``dx`` is the module
    docstring's line, with ``g = dy * gamma`` and the means over the last axis of (N, G, M)."""
    x_hat, inv_std, weight, num_groups = cache
    n, c = dy.shape[0], dy.shape[1]
    reduce = (0,) + tuple(range(2, dy.ndim))                 # every axis but the channels
    dweight = (dy * x_hat).sum(axis=reduce) if need_dweight and weight is not None else None
    dbias = dy.sum(axis=reduce) if need_dbias else None
    dx = None
    if need_dx:
        channel = (1, c) + (1,) * (dy.ndim - 2)
        g = dy * weight.reshape(channel) if weight is not None else dy
        g = g.reshape(n, num_groups, -1)
        xh = x_hat.reshape(n, num_groups, -1)
        dx = inv_std * (g - g.mean(axis=2, keepdims=True)
                        - xh * (g * xh).mean(axis=2, keepdims=True))
        dx = dx.reshape(dy.shape)
    return dx, dweight, dbias
