r"""Reference kernels: each one written the obvious way, to read and to test the fast ones against.

Every kernel here follows its definition with loops over what the maths sums over (the kernel
offsets, the channels, the groups, the output cells of an adaptive pool), each iteration one
vectorised operation over the whole batch. None of them is fast, none shares code with the fast
kernels in this package, and all of them run on every device: the array module ``xp`` comes from
the input, as in every kernel.

The names, argument orders and layouts are the students' contract (CS231n's, over NCHW arrays),
the one the checkers in :mod:`minires.course` call:

* ``im2col(x, kh, kw, stride, padding) -> cols`` (N*Ho*Wo, C*kh*kw), the columns ordered
  (channel, kernel row, kernel column) like ``w.reshape(F, -1)``; ``col2im(dcols, x_shape, kh, kw,
  stride, padding) -> dx``.
* ``conv2d_forward(x, w, b, stride, padding) -> (y, cache)``, ``conv2d_backward(dy, cache) ->
  (dx, dw, db)``; ``grouped_conv2d_forward``/``_backward`` with ``groups`` after them.
* ``batch_norm_forward(x, gamma, beta, eps) -> (y, cache)`` (training mode),
  ``batch_norm_backward(dy, cache) -> (dx, dgamma, dbeta)``; in evaluation mode
  ``batch_norm_update_running``, ``batch_norm_eval_forward``, ``batch_norm_eval_backward``.
* ``group_norm_forward(x, num_groups, gamma, beta, eps)``, ``group_norm_backward(dy, cache)``.
* ``relu_forward(x) -> (y, cache)``, ``relu_backward(dy, cache) -> dx``.
* ``max_pool_forward(x, kernel, stride) -> (y, cache)``, ``max_pool_backward(dy, cache) -> dx``,
  likewise ``avg_pool_*`` and ``adaptive_avg_pool_*`` (to an output size, 1x1 by default).
* ``softmax_cross_entropy(logits, labels) -> (loss, dlogits)``, the loss the batch mean.

Where the fast kernels take more than the contract (dilation, padding of a pool, an integer or
a (height, width) pair), the references take it as a trailing argument with the contract's
default, so the tests compare the two on every setting the fast kernels support.
"""
from __future__ import annotations

import math

from ..devices.backend import array_module


def _pair(v) -> tuple[int, int]:
    """An int, or a (height, width) pair, as a pair."""
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


def output_size(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    """How many window positions fit: ``(size + 2p - d(k-1) - 1) // s + 1`` (it floors, so the
    last rows of the padded input are under no window when the division is not exact)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def pad(x, ph: int, pw: int, value: float = 0.0):
    """(N, C, H, W) -> (N, C, H + 2 ph, W + 2 pw), the border filled with ``value``."""
    xp = array_module(x)
    n, c, h, w = x.shape
    out = xp.full((n, c, h + 2 * ph, w + 2 * pw), value, dtype=x.dtype)
    out[:, :, ph:ph + h, pw:pw + w] = x
    return out


def window(x_pad, a: int, e: int, stride, dilation, out_h: int, out_w: int):
    """The (N, C, Ho, Wo) inputs that kernel offset (a, e) meets at every output position:
    ``x_pad[n, c, i*s + a*d, j*s + e*d]`` for all ``i < Ho, j < Wo`` (a strided view)."""
    (sh, sw), (dh, dw) = stride, dilation
    top, left = a * dh, e * dw
    return x_pad[:, :, top:top + sh * (out_h - 1) + 1:sh, left:left + sw * (out_w - 1) + 1:sw]


# ---------------------------------------------------------------------------------------------
# im2col and col2im
# ---------------------------------------------------------------------------------------------

def im2col(x, kh, kw, stride, padding, dilation=1):
    """(N, C, H, W) -> cols (N*Ho*Wo, C*kh*kw): row (n, i, j) holds the padded input under the
    kernel at output position (i, j), ordered (c, a, e) like ``w.reshape(F, -1)``, so that a
    convolution is ``cols @ w.reshape(F, -1).T``. One strided copy per kernel offset (a, e),
    as Chainer's ``im2col_cpu``."""
    xp = array_module(x)
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    n, c, h, w = x.shape
    out_h, out_w = output_size(h, kh, sh, ph, dh), output_size(w, kw, sw, pw, dw)
    x_pad = pad(x, ph, pw)
    cols = xp.zeros((n, c, kh, kw, out_h, out_w), dtype=x.dtype)
    for a in range(kh):
        for e in range(kw):
            cols[:, :, a, e] = window(x_pad, a, e, (sh, sw), (dh, dw), out_h, out_w)
    return cols.transpose(0, 4, 5, 1, 2, 3).reshape(n * out_h * out_w, c * kh * kw)


def col2im(dcols, x_shape, kh, kw, stride, padding, dilation=1):
    """The adjoint of :func:`im2col`: ``dx`` of shape ``x_shape`` from ``dcols`` (N*Ho*Wo,
    C*kh*kw). im2col copied each input pixel into every row whose window covers it, so its
    gradient is the sum of those rows' entries: one ``+=`` per kernel offset (windows overlap).
    Pixels under no window (``(H + 2p - k) % s != 0``) keep a zero gradient."""
    xp = array_module(dcols)
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    n, c, h, w = x_shape
    out_h, out_w = output_size(h, kh, sh, ph, dh), output_size(w, kw, sw, pw, dw)
    dcols = dcols.reshape(n, out_h, out_w, c, kh, kw)
    dx_pad = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=dcols.dtype)
    for a in range(kh):
        for e in range(kw):
            window(dx_pad, a, e, (sh, sw), (dh, dw), out_h, out_w)[...] += \
                dcols[:, :, :, :, a, e].transpose(0, 3, 1, 2)
    return dx_pad[:, :, ph:ph + h, pw:pw + w]


# ---------------------------------------------------------------------------------------------
# Convolution
# ---------------------------------------------------------------------------------------------

def conv2d_forward(x, w, b, stride, padding, dilation=1):
    r"""``y[n, f, i, j] = b[f] + sum_{c, a, e} w[f, c, a, e] * x_pad[n, c, i*s + a*d, j*s + e*d]``.

    x (N, C, H, W), w (F, C, kh, kw), b (F,) or None; stride, padding, dilation ints or pairs.
    The loops are the sums of the definition (channel, kernel row, kernel column), each term one
    product over the whole batch. Returns ``(y, cache)``, y (N, F, Ho, Wo).
    """
    xp = array_module(x)
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    n, c, h, width = x.shape
    f, _, kh, kw = w.shape
    out_h, out_w = output_size(h, kh, sh, ph, dh), output_size(width, kw, sw, pw, dw)
    x_pad = pad(x, ph, pw)
    y = xp.zeros((n, f, out_h, out_w), dtype=x.dtype)
    for ch in range(c):
        for a in range(kh):
            for e in range(kw):
                x_ae = window(x_pad, a, e, (sh, sw), (dh, dw), out_h, out_w)[:, ch]  # (N, Ho, Wo)
                y += w[:, ch, a, e].reshape(1, f, 1, 1) * x_ae[:, None]
    if b is not None:
        y += b.reshape(1, f, 1, 1)
    return y, (x, w, b, (sh, sw), (ph, pw), (dh, dw))


def conv2d_backward(dy, cache):
    r"""Gradients ``(dx, dw, db)`` of :func:`conv2d_forward` from ``dy`` (N, F, Ho, Wo).

    Every term ``w[f, c, a, e] * x_pad[n, c, i s + a d, j s + e d]`` of ``y[n, f, i, j]`` sends
    ``dy[n, f, i, j]`` back to both of its factors:

    .. math::
        dw_{f,c,a,e} = \sum_{n,i,j} dy_{n,f,i,j}\, \tilde x_{n,c,\,is+ad,\,js+ed}, \qquad
        d\tilde x_{n,c,\,is+ad,\,js+ed} \mathrel{+}= \sum_f dy_{n,f,i,j}\, w_{f,c,a,e}, \qquad
        db_f = \sum_{n,i,j} dy_{n,f,i,j}

    A padded pixel under several windows adds up the gradient of each (``+=``); ``dx`` is the
    padded gradient with the padding cropped off, zero where no window reached.
    """
    x, w, b, stride, (ph, pw), dilation = cache
    xp = array_module(dy)
    n, c, h, width = x.shape
    f, _, kh, kw = w.shape
    out_h, out_w = dy.shape[2], dy.shape[3]
    x_pad = pad(x, ph, pw)
    dx_pad = xp.zeros(x_pad.shape, dtype=dy.dtype)
    dw = xp.zeros(w.shape, dtype=dy.dtype)
    for ch in range(c):
        for a in range(kh):
            for e in range(kw):
                x_ae = window(x_pad, a, e, stride, dilation, out_h, out_w)[:, ch]   # (N, Ho, Wo)
                dw[:, ch, a, e] = (dy * x_ae[:, None]).sum(axis=(0, 2, 3))
                dx_ae = window(dx_pad, a, e, stride, dilation, out_h, out_w)[:, ch]
                dx_ae += (dy * w[:, ch, a, e].reshape(1, f, 1, 1)).sum(axis=1)
    db = dy.sum(axis=(0, 2, 3)) if b is not None else None
    return dx_pad[:, :, ph:ph + h, pw:pw + width], dw, db


def grouped_conv2d_forward(x, w, b, stride, padding, groups, dilation=1):
    """``groups`` independent convolutions: output channels ``k F/g ..`` see only input channels
    ``k C/g ..``; w is (F, C/g, kh, kw). One :func:`conv2d_forward` per group."""
    xp = array_module(x)
    c_in, f_out = x.shape[1] // groups, w.shape[0] // groups
    ys, caches = [], []
    for k in range(groups):
        y, cache = conv2d_forward(x[:, k * c_in:(k + 1) * c_in], w[k * f_out:(k + 1) * f_out],
                                  None if b is None else b[k * f_out:(k + 1) * f_out],
                                  stride, padding, dilation)
        ys.append(y)
        caches.append(cache)
    return xp.concatenate(ys, axis=1), caches


def grouped_conv2d_backward(dy, cache):
    """The groups share nothing, so each group's gradients are its own convolution's, joined
    along the channel axis: ``dx[:, block k] = dx of group k``, and likewise ``dw``, ``db``."""
    xp = array_module(dy)
    f_out = dy.shape[1] // len(cache)
    grads = [conv2d_backward(dy[:, k * f_out:(k + 1) * f_out], group_cache)
             for k, group_cache in enumerate(cache)]
    dx = xp.concatenate([g[0] for g in grads], axis=1)
    dw = xp.concatenate([g[1] for g in grads], axis=0)
    db = None if grads[0][2] is None else xp.concatenate([g[2] for g in grads], axis=0)
    return dx, dw, db


# ---------------------------------------------------------------------------------------------
# Batch norm and group norm
# ---------------------------------------------------------------------------------------------

def _per_channel(v, ndim):
    """A (C,) vector shaped to broadcast over the channel axis of an (N, C[, H, W]) array."""
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def _channel_axes(x):
    """The axes batch norm's statistics run over: all but the channels (1)."""
    return (0,) + tuple(range(2, x.ndim))


def batch_norm_forward(x, gamma, beta, eps=1e-5):
    r"""Batch norm in training mode, per channel of (N, C) or (N, C, H, W), over its M entries:

    .. math::
        \mu = \tfrac1M \textstyle\sum x, \quad \sigma^2 = \tfrac1M \sum (x-\mu)^2, \quad
        \hat x = (x-\mu)/\sqrt{\sigma^2+\epsilon}, \quad y = \gamma \hat x + \beta

    (the biased variance). Returns ``(y, cache)``.
    """
    xp = array_module(x)
    axes = _channel_axes(x)
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    std = xp.sqrt(var + eps)
    x_hat = (x - mean) / std
    y = _per_channel(gamma, x.ndim) * x_hat + _per_channel(beta, x.ndim)
    return y, (x_hat, std, gamma)


def batch_norm_backward(dy, cache):
    r"""Gradients ``(dx, dgamma, dbeta)`` of :func:`batch_norm_forward`.

    :math:`\mu` and :math:`\sigma` depend on every entry of the channel, so ``dx`` has three
    terms (through :math:`\hat x`, through :math:`\mu`, through :math:`\sigma`); they simplify to
    the three lines of the code (sums per channel over its M entries):

    .. math::
        d\beta = \sum dy, \qquad d\gamma = \sum dy\,\hat x, \qquad
        dx = \frac{\gamma}{\sqrt{\sigma^2+\epsilon}}
             \Big(dy - \frac{d\beta}{M} - \hat x\,\frac{d\gamma}{M}\Big)
    """
    x_hat, std, gamma = cache
    axes = _channel_axes(dy)
    m = dy.size // dy.shape[1]
    dbeta = dy.sum(axis=axes)
    dgamma = (dy * x_hat).sum(axis=axes)
    dx = _per_channel(gamma, dy.ndim) / std * (dy - _per_channel(dbeta, dy.ndim) / m
                                               - x_hat * _per_channel(dgamma, dy.ndim) / m)
    return dx, dgamma, dbeta


def batch_norm_update_running(running_mean, running_var, x, momentum=0.1):
    r"""The running statistics after one training batch, as PyTorch keeps them (new arrays):
    ``running_mean <- (1 - m) running_mean + m mu``, ``running_var <- (1 - m) running_var +
    m sigma^2 M / (M - 1)`` (the *unbiased* variance; the normalisation uses the biased one)."""
    axes = _channel_axes(x)
    count = x.size // x.shape[1]
    mean = x.mean(axis=axes)
    var = ((x - _per_channel(mean, x.ndim)) ** 2).sum(axis=axes) / max(count - 1, 1)
    return ((1 - momentum) * running_mean + momentum * mean,
            (1 - momentum) * running_var + momentum * var)


def batch_norm_eval_forward(x, gamma, beta, running_mean, running_var, eps=1e-5):
    r"""Batch norm in evaluation mode: the running statistics in place of the batch's,
    ``y = gamma (x - running_mean) / sqrt(running_var + eps) + beta``. Returns ``(y, cache)``."""
    xp = array_module(x)
    std = xp.sqrt(_per_channel(running_var, x.ndim) + eps)
    x_hat = (x - _per_channel(running_mean, x.ndim)) / std
    return _per_channel(gamma, x.ndim) * x_hat + _per_channel(beta, x.ndim), (x_hat, std, gamma)


def batch_norm_eval_backward(dy, cache):
    r"""The statistics are constants now, so ``y`` is an affine map of ``x`` per channel:
    ``dx = dy gamma / sqrt(running_var + eps)``, ``dgamma = sum dy x_hat``, ``dbeta = sum dy``."""
    x_hat, std, gamma = cache
    axes = _channel_axes(dy)
    return (_per_channel(gamma, dy.ndim) / std * dy, (dy * x_hat).sum(axis=axes),
            dy.sum(axis=axes))


def group_norm_forward(x, num_groups, gamma, beta, eps=1e-5):
    r"""Group norm (Wu and He, 2018): batch norm's arithmetic per sample, over each group of
    C/G consecutive channels (and H, W) instead of over the batch; the affine is per channel.
    One loop iteration per group. Returns ``(y, cache)``."""
    xp = array_module(x)
    per_group = x.shape[1] // num_groups
    axes = tuple(range(1, x.ndim))                   # a group's channels, H and W
    x_hat, std = xp.zeros_like(x), []
    for g in range(num_groups):
        block = x[:, g * per_group:(g + 1) * per_group]
        mean = block.mean(axis=axes, keepdims=True)
        std.append(xp.sqrt(((block - mean) ** 2).mean(axis=axes, keepdims=True) + eps))
        x_hat[:, g * per_group:(g + 1) * per_group] = (block - mean) / std[g]
    y = _per_channel(gamma, x.ndim) * x_hat + _per_channel(beta, x.ndim)
    return y, (x_hat, std, gamma, num_groups)


def group_norm_backward(dy, cache):
    r"""Gradients ``(dx, dgamma, dbeta)`` of :func:`group_norm_forward`. Per group, with
    ``g = gamma dy`` the gradient reaching :math:`\hat x` and means over the group's entries,
    the same three terms as batch norm's:

    .. math::
        dx = \frac{1}{\sqrt{\sigma^2+\epsilon}}\Big(g - \overline{g}
             - \hat x\,\overline{g\,\hat x}\Big), \qquad
        d\gamma_c = \sum_{n,h,w} dy\,\hat x, \qquad d\beta_c = \sum_{n,h,w} dy
    """
    x_hat, std, gamma, num_groups = cache
    xp = array_module(dy)
    per_group = dy.shape[1] // num_groups
    axes = tuple(range(1, dy.ndim))
    g_all = _per_channel(gamma, dy.ndim) * dy
    dx = xp.zeros_like(dy)
    for g in range(num_groups):
        block = slice(g * per_group, (g + 1) * per_group)
        gb, xb = g_all[:, block], x_hat[:, block]
        dx[:, block] = (gb - gb.mean(axis=axes, keepdims=True)
                        - xb * (gb * xb).mean(axis=axes, keepdims=True)) / std[g]
    channel_axes = _channel_axes(dy)
    return dx, (dy * x_hat).sum(axis=channel_axes), dy.sum(axis=channel_axes)


# ---------------------------------------------------------------------------------------------
# ReLU
# ---------------------------------------------------------------------------------------------

def relu_forward(x):
    """``y = max(x, 0)``; the cache is x."""
    return x * (x > 0), x


def relu_backward(dy, cache):
    """``dx = dy`` where ``x > 0``, else 0 (the derivative of max(x, 0); 0 at x = 0)."""
    return dy * (cache > 0)


# ---------------------------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------------------------

def _pool_setup(x, kernel, stride, padding, fill):
    (kh, kw), (ph, pw) = _pair(kernel), _pair(padding)
    stride = _pair(kernel if stride is None else stride)
    n, c, h, w = x.shape
    out_h, out_w = output_size(h, kh, stride[0], ph), output_size(w, kw, stride[1], pw)
    return pad(x, ph, pw, fill), (kh, kw), stride, (ph, pw), out_h, out_w


def max_pool_forward(x, kernel, stride=None, padding=0):
    """``y[n, c, i, j] = max over the (kh, kw) window at (i*s, j*s)`` of the input padded with
    -inf. One pass per window offset. Returns ``(y, cache)``."""
    xp = array_module(x)
    x_pad, (kh, kw), stride, padding, out_h, out_w = _pool_setup(x, kernel, stride, padding,
                                                                 -math.inf)
    y = xp.full((x.shape[0], x.shape[1], out_h, out_w), -math.inf, dtype=x.dtype)
    for a in range(kh):
        for e in range(kw):
            y = xp.maximum(y, window(x_pad, a, e, stride, (1, 1), out_h, out_w))
    return y, (x_pad, y, (kh, kw), stride, padding, x.shape)


def max_pool_backward(dy, cache):
    """The max is a choice, so its derivative is 1 for the input that won the window and 0 for
    the others: each ``dy`` goes to its window's argmax (the first one in reading order on ties,
    as PyTorch), and an input that won several overlapping windows collects each one's ``dy``."""
    xp = array_module(dy)
    x_pad, y, (kh, kw), stride, (ph, pw), (n, c, h, w) = cache
    dx_pad = xp.zeros(x_pad.shape, dtype=dy.dtype)
    routed = xp.zeros(y.shape, dtype=bool)            # windows whose maximum has had its dy
    for a in range(kh):
        for e in range(kw):
            won = (window(x_pad, a, e, stride, (1, 1), *y.shape[2:]) == y) & ~routed
            window(dx_pad, a, e, stride, (1, 1), *y.shape[2:])[...] += dy * won
            routed |= won
    return dx_pad[:, :, ph:ph + h, pw:pw + w]


def avg_pool_forward(x, kernel, stride=None, padding=0):
    """``y = (1 / (kh kw)) sum of the (kh, kw) window`` of the zero-padded input (padding zeros
    count, PyTorch's default). Returns ``(y, cache)``."""
    xp = array_module(x)
    x_pad, (kh, kw), stride, padding, out_h, out_w = _pool_setup(x, kernel, stride, padding, 0.0)
    y = xp.zeros((x.shape[0], x.shape[1], out_h, out_w), dtype=x.dtype)
    for a in range(kh):
        for e in range(kw):
            y += window(x_pad, a, e, stride, (1, 1), out_h, out_w)
    return y / (kh * kw), (x_pad.shape, (kh, kw), stride, padding, x.shape)


def avg_pool_backward(dy, cache):
    """Each input of a window contributed ``1 / (kh kw)`` of it: ``dy / (kh kw)`` goes to every
    input of its window, added up where windows overlap."""
    xp = array_module(dy)
    padded_shape, (kh, kw), stride, (ph, pw), (n, c, h, w) = cache
    dx_pad = xp.zeros(padded_shape, dtype=dy.dtype)
    for a in range(kh):
        for e in range(kw):
            window(dx_pad, a, e, stride, (1, 1), *dy.shape[2:])[...] += dy / (kh * kw)
    return dx_pad[:, :, ph:ph + h, pw:pw + w]


def adaptive_avg_pool_forward(x, output_size=(1, 1)):
    """Average pooling to a fixed output size (oh, ow): cell (i, j) averages input rows
    ``floor(i H / oh) .. ceil((i + 1) H / oh) - 1`` and likewise columns. Output (1, 1) is the
    global average of each channel, the ResNet head. Returns ``(y, cache)``."""
    xp = array_module(x)
    oh, ow = _pair(output_size)
    n, c, h, w = x.shape
    y = xp.zeros((n, c, oh, ow), dtype=x.dtype)
    for i in range(oh):
        for j in range(ow):
            rows = slice(i * h // oh, -(-(i + 1) * h // oh))          # floor, ceil
            cols = slice(j * w // ow, -(-(j + 1) * w // ow))
            y[:, :, i, j] = x[:, :, rows, cols].mean(axis=(2, 3))
    return y, x.shape


def adaptive_avg_pool_backward(dy, cache):
    """Each cell's ``dy`` is shared equally by the inputs it averaged: ``dy / area`` to each,
    added up where cells overlap (when the output size does not divide the input's)."""
    xp = array_module(dy)
    n, c, h, w = cache
    oh, ow = dy.shape[2], dy.shape[3]
    dx = xp.zeros(cache, dtype=dy.dtype)
    for i in range(oh):
        for j in range(ow):
            rows = slice(i * h // oh, -(-(i + 1) * h // oh))
            cols = slice(j * w // ow, -(-(j + 1) * w // ow))
            area = (rows.stop - rows.start) * (cols.stop - cols.start)
            dx[:, :, rows, cols] += dy[:, :, i:i + 1, j:j + 1] / area
    return dx


# ---------------------------------------------------------------------------------------------
# Softmax cross-entropy
# ---------------------------------------------------------------------------------------------

def softmax_cross_entropy(logits, labels):
    r"""The batch mean of ``-log softmax(logits)[n, labels[n]]`` and its gradient.

    With ``p = softmax(z)``, computed as ``log p = z - max - log sum exp(z - max)`` (each row's
    maximum subtracted first, so that ``exp`` cannot overflow; it cancels), the softmax's
    Jacobian and the log cancel into one line:

    .. math::  L = -\frac1N \sum_n \log p_{n, t_n}, \qquad
               \frac{\partial L}{\partial z} = \frac{p - \mathrm{onehot}(t)}{N}

    Returns ``(loss, dlogits)``; ``loss`` a 0-d array.
    """
    xp = array_module(logits)
    n, k = logits.shape
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))   # log softmax
    onehot = labels[:, None] == xp.arange(k)[None, :]
    loss = -(log_p * onehot).sum() / n
    return loss, (xp.exp(log_p) - onehot) / n
