r"""Batch normalisation over the channel axis, and its compact closed-form backward pass.

**The maths.** Input ``x`` is (N, C) or (N, C, H, W); statistics are per channel, over the other
``M`` entries (``M = N`` or ``N*H*W``). In training:

.. math::
    \mu = \frac1M \sum x, \quad \sigma^2 = \frac1M \sum (x-\mu)^2, \quad
    \hat x = \frac{x-\mu}{\sqrt{\sigma^2+\epsilon}}, \quad y = \gamma \hat x + \beta

The running statistics follow PyTorch: ``running_mean <- (1-m) running_mean + m mu`` and
``running_var <- (1-m) running_var + m sigma^2 M/(M-1)`` (the *unbiased* variance), while the
normalisation itself uses the biased one. In evaluation ``mu, sigma^2`` are the running values.

**Backward (training): three lines.** ``mu`` and ``sigma`` depend on every ``x``, so ``dL/dx`` has
three terms (through ``x-hat``, ``mu`` and ``sigma``); summed and simplified they give (per channel,
sums over the M entries):

.. math::
    d\beta = \sum dy, \qquad d\gamma = \sum dy\,\hat x, \qquad
    dx = \frac{\gamma}{\sqrt{\sigma^2+\epsilon}}
         \Big(dy - \frac{d\beta}{M} - \hat x\,\frac{d\gamma}{M}\Big)

**Backward (evaluation).** ``mu, sigma`` are constants: ``dx = dy * gamma / sqrt(var + eps)``.

**The plain path** is those formulas with NumPy reductions over the axes ``(0, 2, 3)``:
:func:`minires.kernels.reference.batch_norm_forward` and
:func:`~minires.kernels.reference.batch_norm_backward`, against which this kernel is tested.
This kernel computes the same quantities (it keeps ``x - mu``, not ``x-hat``, and folds
``gamma / sigma`` into one scale per channel), in three named steps, each defined below the
kernel with the reason it is there:

1. **Rows** (:func:`_to_rows`): the input as an (M, C) matrix of channels-last rows, so every
   per-channel reduction is over axis 0 and the result keeps the input's memory layout.
2. **Reductions by BLAS** (:func:`column_sums`, :func:`column_dots`): the per-channel sums as a
   matrix-vector product and an ``einsum``, which read the array once.
3. **Wide rows** (:func:`widen`, :func:`fold`, :data:`WIDE_ROW`): the elementwise passes on
   (M/R, R*C) rows instead of (M, C), because C-long inner loops are too short for NumPy.
4. **Blocks of rows, on every core** (:func:`~minires.kernels.workers.in_blocks`): every
   pass goes through the rows a cache-sized block at a time, the blocks shared among the threads;
   a reduction adds its blocks' partial sums in block order, and a pass that both makes an array
   and reduces it (``x - mu``, then its squares' sums) does both while the block is in cache.

With R = 1 (:func:`widen` returns the rows unchanged) and one block, steps 1 and 2 alone remain,
and the code below reads as the formulas above.
"""
from __future__ import annotations

from typing import Any, NamedTuple

from ..devices.backend import array_module
from . import array_pool
from .workers import add_in_order, in_blocks


class BatchNormCache(NamedTuple):
    """What :func:`batch_norm_backward` needs from the forward pass."""
    centered: Any                   # (M/R, R*C) wide rows of x - mean
    inv_std: Any                    # (C,) 1 / sqrt(var + eps)
    weight: Any                     # (C,) gamma, or None
    training: bool                  # batch statistics (True) or running ones
    x_shape: tuple                  # (N, C) or (N, C, H, W)


# ---------------------------------------------------------------------------------------------
# The kernel
# ---------------------------------------------------------------------------------------------

def update_running_stats(running_mean, running_var, mean, var, m: int, momentum: float) -> None:
    """In place, as PyTorch keeps them: ``running <- (1 - momentum) running + momentum batch``,
    the variance the *unbiased* one (``var * m / (m - 1)``) though the normalisation uses the
    biased ``var``. Either running array may be None (not tracked)."""
    if running_mean is not None:
        running_mean *= 1 - momentum
        running_mean += momentum * mean
    if running_var is not None:
        running_var *= 1 - momentum
        running_var += (momentum * m / max(m - 1, 1)) * var


def batch_norm_forward(x, running_mean, running_var, weight, bias, training, momentum=0.1,
                       eps=1e-5):
    """Returns ``(y, cache)``, ``cache`` a :class:`BatchNormCache`. Updates ``running_mean`` and
    ``running_var`` in place when training. ``weight`` (gamma) and ``bias`` (beta) may be None.

    On wide rows (step 3), a per-channel vector ``v`` enters as ``tile(v, r)`` and a per-channel
    sum as ``fold(column_sums(...), r)``; with r = 1 both are the plain vector and sum. Each pass
    goes a block of rows at a time (step 4): ``[lo:hi]`` is one block.
    """
    xp = array_module(x)
    rows = _to_rows(x)                                          # step 1: (M, C)
    m = rows.shape[0]
    wide, r = widen(rows)                                       # step 3: (M/R, R*C)
    centered = array_pool.empty(xp, wide.shape, wide.dtype)
    if training:
        mean = fold(column_sums(wide), r) * (1.0 / m)                       # mu
        mean_wide = xp.tile(mean, r)

        def center(lo, hi):                                      # x - mu, and its squares' sums
            xp.subtract(wide[lo:hi], mean_wide, out=centered[lo:hi])
            return column_dots(centered[lo:hi], centered[lo:hi])
        var = fold(add_in_order(in_blocks(wide, center)), r) * (1.0 / m)  # sigma^2, biased
        update_running_stats(running_mean, running_var, mean, var, m, momentum)
    else:
        mean, var = running_mean, running_var
        mean_wide = xp.tile(mean, r)
        in_blocks(wide, lambda lo, hi: xp.subtract(wide[lo:hi], mean_wide, out=centered[lo:hi]))
    inv_std = 1.0 / xp.sqrt(var + eps)
    # y = gamma * x_hat + beta with x_hat = centered * inv_std, folded into one scale per channel
    scale_wide = xp.tile(inv_std if weight is None else weight * inv_std, r)
    bias_wide = None if bias is None else xp.tile(bias, r)
    y = array_pool.empty(xp, wide.shape, wide.dtype)

    def normalise(lo, hi):
        xp.multiply(centered[lo:hi], scale_wide, out=y[lo:hi])
        if bias_wide is not None:
            y[lo:hi] += bias_wide
    in_blocks(wide, normalise)
    cache = BatchNormCache(centered, inv_std, weight, training, x.shape)
    return _from_rows(y.reshape(rows.shape), x.shape), cache


def batch_norm_backward(dy, cache, need_dx=True, need_dweight=True, need_dbias=True):
    """Gradients ``(dx, dweight, dbias)`` of batch norm; None where not needed.

    The three lines of the module docstring, with ``x_hat = centered * inv_std`` and
    ``scale = gamma * inv_std``::

        dbeta  = sum(dy)
        dgamma = sum(dy * x_hat)
        dx     = scale * (dy - dbeta / M - x_hat * dgamma / M)    # training
        dx     = scale * dy                                       # evaluation

    Both sums are made in one pass over the rows, ``dx`` in a second, a block at a time.
    """
    centered, inv_std, weight = cache.centered, cache.inv_std, cache.weight
    xp = array_module(centered)
    dy_rows = _to_rows(dy)                                        # step 1
    m = dy_rows.shape[0]
    dy_wide, r = widen(dy_rows)                   # step 3: the same R as the forward (same M, C)
    sums = in_blocks(dy_wide, lambda lo, hi: (column_sums(dy_wide[lo:hi]),
                                              column_dots(dy_wide[lo:hi], centered[lo:hi])))
    dbias = fold(add_in_order([s for s, _ in sums]), r)                # dbeta = sum(dy)
    dweight = fold(add_in_order([d for _, d in sums]), r) * inv_std    # dgamma = sum(dy * x_hat)
    dx = None
    if need_dx:
        scale = inv_std if weight is None else weight * inv_std
        scale_wide = xp.tile(scale, r)
        if cache.training:
            # - scale * x_hat * dgamma / M (x_hat = centered * inv_std) and - scale * dbeta / M
            centered_coef = xp.tile(scale * inv_std * dweight * (-1.0 / m), r)
            constant = xp.tile(scale * dbias * (-1.0 / m), r)
        dx_wide = array_pool.empty(xp, dy_wide.shape, dy_wide.dtype)

        def input_gradient(lo, hi):
            out = dx_wide[lo:hi]
            xp.multiply(dy_wide[lo:hi], scale_wide, out=out)                 # scale * dy
            if cache.training:
                out += centered[lo:hi] * centered_coef
                out += constant
        in_blocks(dy_wide, input_gradient)
        dx = _from_rows(dx_wide.reshape(dy_rows.shape), cache.x_shape)
    return dx, (dweight if need_dweight else None), (dbias if need_dbias else None)


# ---------------------------------------------------------------------------------------------
# Step 1. Rows: an (M, C) view of channels-last memory
# ---------------------------------------------------------------------------------------------
# Batch norm's statistics are per channel, over everything else. Seen as an (M, C) matrix, every
# reduction is over axis 0 and vectorises across the channels. A convolution's output is an
# NCHW view of channels-last (NHWC) memory (see conv.py), so the (M, C) rows are then a free view,
# and the result, built as rows and viewed back, keeps that layout for the next convolution.

def _to_rows(x):
    """(N, C[, H, W]) -> (M, C): a view when x is channels-last in memory, else a copy."""
    if x.ndim == 2:
        return x
    c = x.shape[1]
    return x.transpose(0, 2, 3, 1).reshape(-1, c)


def _from_rows(rows, shape):
    """The inverse of :func:`_to_rows`: (M, C) rows -> an (N, C[, H, W]) view."""
    if len(shape) == 2:
        return rows
    n, c, h, w = shape
    return rows.reshape(n, h, w, c).transpose(0, 3, 1, 2)


# ---------------------------------------------------------------------------------------------
# Step 2. Per-channel reductions by BLAS
# ---------------------------------------------------------------------------------------------
# ``rows.sum(axis=0)`` walks the array column by column in NumPy's reduction machinery; a
# matrix-vector product reads it once, in memory order (measured in docs/benchmarks.md).

def column_sums(rows):
    """Per-channel sums of an (M, C) array as one matrix-vector product ``1^T rows``: BLAS reads
    the array once, faster than ``rows.sum(axis=0)`` (see ``docs/benchmarks.md``)."""
    xp = array_module(rows)
    return add_in_order(in_blocks(
        rows, lambda lo, hi: xp.ones(hi - lo, dtype=rows.dtype) @ rows[lo:hi]))


def column_dots(a, b):
    """Per-channel ``sum_m a[m, c] * b[m, c]`` without materialising ``a * b``."""
    xp = array_module(a)
    return add_in_order(in_blocks(a, lambda lo, hi: xp.einsum("mc,mc->c", a[lo:hi], b[lo:hi])))


# ---------------------------------------------------------------------------------------------
# Step 3. Wide rows: longer inner loops for the elementwise passes
# ---------------------------------------------------------------------------------------------
# Why: a per-channel vector broadcast against (M, C) rows makes NumPy's inner loop only C long
# (16 in a CIFAR ResNet's first stage), and the loop overhead then costs more than the arithmetic
# (measured in docs/benchmarks.md). The same memory seen as (M/R, R*C) rows, R consecutive pixels
# per row, has an inner loop R times longer; the per-channel vectors are tiled R times to match
# (``xp.tile(v, r)``), and a per-column sum over wide rows folds back to channels (:func:`fold`):
# column k of a wide row is channel k % C. Nothing changes mathematically, and with R = 1 the
# kernel is the plain (M, C) computation.

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


# ---------------------------------------------------------------------------------------------
# Step 4. Blocks of rows, on every core
# ---------------------------------------------------------------------------------------------
# Why: NumPy runs each elementwise pass and reduction on one core. Cut into cache-sized blocks of
# rows (minires.kernels.workers.in_blocks), the passes are shared among the cores, and two passes
# over the same block (make x - mu, then sum its squares) find it still in cache. Inside a block,
# the BLAS reductions of step 2 run on one thread: the block's thread is already one core's worth.
# The blocks' partial sums are added by minires.kernels.workers.add_in_order, in block order.
