r"""Pooling: max, average and adaptive average, forward and backward.

All three slide a (kh, kw) window with stride (sh, sw) over zero- (average) or -inf- (max) padded
input; the output size floors, as in PyTorch: ``Ho = (H + 2p - kh) // sh + 1``. They loop over the
kh*kw window offsets, each a strided slice of the whole batch (no Python loop over pixels).

**Max pool.** ``y = max_k x_k`` over the window. Its derivative is 1 for the element that won and 0
for the others, so backward routes each ``dy`` to the argmax (the first one on ties):
``dx[argmax] += dy``. The winning offset is kept as a small integer array.

**Average pool.** ``y = (1/(kh kw)) sum_k x_k`` (padding zeros are counted, PyTorch's default
``count_include_pad=True``); backward spreads ``dy / (kh kw)`` over the window.

**Adaptive average pool** to (oh, ow): output cell ``(i, j)`` averages rows
``floor(i H/oh) .. ceil((i+1) H/oh)`` (likewise columns); for output 1 this is the global average
``y = mean_{h,w} x`` with ``dx = dy / (H W)`` broadcast.
"""
from __future__ import annotations

import math

from ..backend import array_module
from .conv import _pair


def pool_output_size(size, kernel, stride, padding):
    return (size + 2 * padding - kernel) // stride + 1


def _pad(x, ph, pw, value):
    xp = array_module(x)
    if ph == 0 and pw == 0:
        return x
    n, c, h, w = x.shape
    out = xp.full((n, c, h + 2 * ph, w + 2 * pw), value, dtype=x.dtype)
    out[:, :, ph:ph + h, pw:pw + w] = x
    return out


def _window(x_pad, i, j, stride, out_h, out_w):
    sh, sw = stride
    return x_pad[:, :, i:i + sh * (out_h - 1) + 1:sh, j:j + sw * (out_w - 1) + 1:sw]


def max_pool2d_forward(x, kernel_size, stride=None, padding=0):
    xp = array_module(x)
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(stride if stride is not None else kernel_size)
    ph, pw = _pair(padding)
    n, c, h, w = x.shape
    out_h, out_w = pool_output_size(h, kh, sh, ph), pool_output_size(w, kw, sw, pw)
    x_pad = _pad(x, ph, pw, -xp.inf)
    y = None
    argmax = xp.zeros((n, c, out_h, out_w), dtype=xp.int8 if kh * kw < 128 else xp.int32)
    for i in range(kh):
        for j in range(kw):
            win = _window(x_pad, i, j, (sh, sw), out_h, out_w)
            if y is None:
                y = win.copy()
                continue
            better = win > y                    # strict: the first maximum keeps the gradient
            y = xp.where(better, win, y)
            argmax[better] = i * kw + j
    cache = (argmax, x.shape, x_pad.shape, (kh, kw), (sh, sw), (ph, pw))
    return y, cache


def max_pool2d_backward(dy, cache):
    xp = array_module(dy)
    argmax, x_shape, padded_shape, (kh, kw), stride, (ph, pw) = cache
    out_h, out_w = dy.shape[2], dy.shape[3]
    dx_pad = xp.zeros(padded_shape, dtype=dy.dtype)
    for i in range(kh):
        for j in range(kw):
            win = _window(dx_pad, i, j, stride, out_h, out_w)
            win += xp.where(argmax == i * kw + j, dy, 0)
    h, w = x_shape[2], x_shape[3]
    return dx_pad[:, :, ph:ph + h, pw:pw + w]


def avg_pool2d_forward(x, kernel_size, stride=None, padding=0):
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(stride if stride is not None else kernel_size)
    ph, pw = _pair(padding)
    n, c, h, w = x.shape
    out_h, out_w = pool_output_size(h, kh, sh, ph), pool_output_size(w, kw, sw, pw)
    x_pad = _pad(x, ph, pw, 0)
    y = None
    for i in range(kh):
        for j in range(kw):
            win = _window(x_pad, i, j, (sh, sw), out_h, out_w)
            y = win.copy() if y is None else y + win
    y *= 1.0 / (kh * kw)
    return y, (x.shape, x_pad.shape, (kh, kw), (sh, sw), (ph, pw))


def avg_pool2d_backward(dy, cache):
    xp = array_module(dy)
    x_shape, padded_shape, (kh, kw), stride, (ph, pw) = cache
    out_h, out_w = dy.shape[2], dy.shape[3]
    share = dy * (1.0 / (kh * kw))
    dx_pad = xp.zeros(padded_shape, dtype=dy.dtype)
    for i in range(kh):
        for j in range(kw):
            _window(dx_pad, i, j, stride, out_h, out_w)[...] += share
    h, w = x_shape[2], x_shape[3]
    return dx_pad[:, :, ph:ph + h, pw:pw + w]


def _adaptive_bounds(size, out):
    return [(math.floor(i * size / out), math.ceil((i + 1) * size / out)) for i in range(out)]


def adaptive_avg_pool2d_forward(x, output_size):
    xp = array_module(x)
    oh, ow = _pair(output_size)
    n, c, h, w = x.shape
    if oh == 1 and ow == 1:                     # global average pooling, the ResNet head
        return x.mean(axis=(2, 3), keepdims=True), (x.shape, 1, 1)
    y = xp.empty((n, c, oh, ow), dtype=x.dtype)
    for i, (h0, h1) in enumerate(_adaptive_bounds(h, oh)):
        for j, (w0, w1) in enumerate(_adaptive_bounds(w, ow)):
            y[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
    return y, (x.shape, oh, ow)


def adaptive_avg_pool2d_backward(dy, cache):
    xp = array_module(dy)
    x_shape, oh, ow = cache
    n, c, h, w = x_shape
    if oh == 1 and ow == 1:
        return xp.broadcast_to(dy * (1.0 / (h * w)), x_shape)
    dx = xp.zeros(x_shape, dtype=dy.dtype)
    for i, (h0, h1) in enumerate(_adaptive_bounds(h, oh)):
        for j, (w0, w1) in enumerate(_adaptive_bounds(w, ow)):
            area = (h1 - h0) * (w1 - w0)
            dx[:, :, h0:h1, w0:w1] += dy[:, :, i:i + 1, j:j + 1] * (1.0 / area)
    return dx
