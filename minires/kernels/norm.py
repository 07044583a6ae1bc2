r"""Batch normalisation over the channel axis, and its compact closed-form backward pass.

Input ``x`` is (N, C) or (N, C, H, W); statistics are per channel, over the other ``M`` entries
(``M = N`` or ``N*H*W``). In training:

.. math::
    \mu = \frac1M \sum x, \quad \sigma^2 = \frac1M \sum (x-\mu)^2, \quad
    \hat x = \frac{x-\mu}{\sqrt{\sigma^2+\epsilon}}, \quad y = \gamma \hat x + \beta

The running statistics follow PyTorch: ``running_mean <- (1-m) running_mean + m mu`` and
``running_var <- (1-m) running_var + m sigma^2 M/(M-1)`` (the *unbiased* variance), while the
normalisation itself uses the biased one. In evaluation ``mu, sigma^2`` are the running values.

**Backward (training).** ``mu`` and ``sigma`` depend on every ``x``, so ``dL/dx`` has three terms;
summed and simplified they give the compact form (per channel, sums over the M entries):

.. math::
    d\beta = \sum dy, \qquad d\gamma = \sum dy\,\hat x, \qquad
    dx = \frac{\gamma}{\sqrt{\sigma^2+\epsilon}}
         \Big(dy - \frac{d\beta}{M} - \hat x\,\frac{d\gamma}{M}\Big)

**Backward (evaluation).** ``mu, sigma`` are constants: ``dx = dy * gamma / sqrt(var + eps)``.

**Layout.** The kernel works on an (M, C) "rows" view of channels-last memory: reductions over
axis 0 vectorise across channels, and the result keeps the input's memory layout.

**Wide rows.** A per-channel vector broadcast against (M, C) rows makes NumPy's inner loop only C
long (16 in a CIFAR ResNet's first stage), and the loop overhead then costs more than the
arithmetic (measurements in ``docs/benchmarks.md``). So the elementwise passes see the same
memory as (M/R, R*C) "wide rows", R consecutive pixels per row, with every per-channel vector
tiled R times (:func:`widen`); a sum over wide rows folds back to channels with
``.reshape(R, C).sum(0)``.
"""
from __future__ import annotations

from typing import Any, NamedTuple

from ..backend import array_module


class BatchNormCache(NamedTuple):
    """What :func:`batch_norm_backward` needs from the forward pass."""
    centered: Any                   # (M/R, R*C) wide rows of x - mean
    inv_std: Any                    # (C,) 1 / sqrt(var + eps)
    weight: Any                     # (C,) gamma, or None
    training: bool                  # batch statistics (True) or running ones
    x_shape: tuple                  # (N, C) or (N, C, H, W)


def _to_rows(x):
    """(N, C[, H, W]) -> (M, C): a view when x is channels-last in memory, else a copy."""
    if x.ndim == 2:
        return x
    c = x.shape[1]
    return x.transpose(0, 2, 3, 1).reshape(-1, c)


def _from_rows(rows, shape):
    if len(shape) == 2:
        return rows
    n, c, h, w = shape
    return rows.reshape(n, h, w, c).transpose(0, 3, 1, 2)


WIDE_ROW = 512
"""Aim for wide rows of at least this many elements."""


def widen(rows):
    """An (M, C) array as (M/R, R*C) wide rows (a view when ``rows`` is contiguous), with R the
    smallest power of two giving ``R*C >= WIDE_ROW`` that divides M. Returns ``(wide, R)``."""
    m, c = rows.shape
    r = 1
    while r * c < WIDE_ROW and m % (2 * r) == 0:
        r *= 2
    return rows.reshape(m // r, r * c), r


def fold(wide_vector, r):
    """Per-channel totals of a vector over wide-row columns: (R*C,) -> (C,)."""
    return wide_vector.reshape(r, -1).sum(axis=0)


def column_sums(rows):
    """Per-channel sums of an (M, C) array as one matrix-vector product ``1^T rows``: BLAS reads
    the array once, faster than ``rows.sum(axis=0)`` (see ``docs/benchmarks.md``)."""
    xp = array_module(rows)
    return xp.ones(rows.shape[0], dtype=rows.dtype) @ rows


def column_dots(a, b):
    """Per-channel ``sum_m a[m, c] * b[m, c]`` without materialising ``a * b``."""
    return array_module(a).einsum("mc,mc->c", a, b)


def batch_norm_forward(x, running_mean, running_var, weight, bias, training, momentum=0.1,
                       eps=1e-5):
    """Returns ``(y, cache)``. Updates ``running_mean``/``running_var`` in place when training."""
    xp = array_module(x)
    rows = _to_rows(x)
    m = rows.shape[0]
    wide, r = widen(rows)
    if training:
        mean = fold(column_sums(wide), r) * (1.0 / m)
        centered = wide - xp.tile(mean, r)
        var = fold(column_dots(centered, centered), r) * (1.0 / m)   # biased: used to normalise
        if running_mean is not None:
            running_mean *= 1 - momentum
            running_mean += momentum * mean
        if running_var is not None:
            running_var *= 1 - momentum
            running_var += (momentum * m / max(m - 1, 1)) * var   # unbiased, as PyTorch
    else:
        mean, var = running_mean, running_var
        centered = wide - xp.tile(mean, r)
    inv_std = 1.0 / xp.sqrt(var + eps)
    # y = gamma * x_hat + beta with x_hat = centered * inv_std, folded into one scale per channel
    scale = inv_std if weight is None else weight * inv_std
    y = centered * xp.tile(scale, r)
    if bias is not None:
        y += xp.tile(bias, r)
    cache = BatchNormCache(centered, inv_std, weight, training, x.shape)
    return _from_rows(y.reshape(rows.shape), x.shape), cache


def batch_norm_backward(dy, cache, need_dx=True, need_dweight=True, need_dbias=True):
    """Gradients ``(dx, dweight, dbias)`` of batch norm; None where not needed."""
    centered, inv_std, weight = cache.centered, cache.inv_std, cache.weight
    xp = array_module(centered)
    dy_rows = _to_rows(dy)
    m = dy_rows.shape[0]
    dy_wide, r = widen(dy_rows)                      # the same R as the forward: same M and C
    dbias = fold(column_sums(dy_wide), r)
    dweight = fold(column_dots(dy_wide, centered), r) * inv_std     # = sum(dy * x_hat)
    dx = None
    if need_dx:
        scale = inv_std if weight is None else weight * inv_std
        dx_wide = dy_wide * xp.tile(scale, r)
        if cache.training:
            # scale * (dy - dbias/M - x_hat * dweight/M), with x_hat = centered * inv_std
            dx_wide += centered * xp.tile(scale * inv_std * dweight * (-1.0 / m), r)
            dx_wide += xp.tile(scale * dbias * (-1.0 / m), r)
        dx = _from_rows(dx_wide.reshape(dy_rows.shape), cache.x_shape)
    return dx, (dweight if need_dweight else None), (dbias if need_dbias else None)
