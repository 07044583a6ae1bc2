r"""Pooling: max, average and adaptive average, forward and backward.

**The maths.** Max and average pooling slide a (kh, kw) window with stride (sh, sw) over the
input padded by (ph, pw), with -inf (max) or zeros (average); the output size floors, as in
PyTorch: ``Ho = (H + 2p - kh) // sh + 1``, so when ``(H + 2p - kh) % sh != 0`` the last rows are
under no window and get a zero gradient.

* **Max pool.** ``y = max_k x_k`` over the window. Its derivative is 1 for the element that won
  and 0 for the others, so backward routes each ``dy`` to the argmax (the first one on ties, as
  PyTorch): ``dx[argmax] += dy``, adding up where windows overlap.
* **Average pool.** ``y = (1/(kh kw)) sum_k x_k`` (padding zeros are counted, PyTorch's default
  ``count_include_pad=True``); backward spreads ``dy / (kh kw)`` over the window, adding up where
  windows overlap.
* **Adaptive average pool** to (oh, ow): output cell ``(i, j)`` averages rows
  ``floor(i H/oh) .. ceil((i+1) H/oh) - 1`` (likewise columns), and backward shares its ``dy``
  equally among them; for output 1x1 this is the global average ``y = mean_{h,w} x`` with
  ``dx = dy / (H W)`` broadcast.

**The plain path** is :mod:`minires.kernels.reference` (``max_pool_forward`` and the others): one
pass per window offset over NCHW arrays, comparing each window with the maximum to route the
gradient. The kernels here are tested against it. They compute the same thing in these steps:

1. **One pass per window offset** (:func:`_window`): each of the kh*kw offsets is one strided
   view of the whole batch, so there is no Python loop over pixels (also in the reference).
2. **Channels-last** (:func:`_to_nhwc`): the passes run on the (N, H, W, C) view of the input,
   free after a convolution (whose output is channels-last memory), so NumPy's inner loops run
   along C, contiguous. The result is returned as an NCHW view of channels-last memory, and a
   gradient is allocated in the memory layout of the input it belongs to
   (:func:`_zeros_nhwc`), so the layers around a pool never stride across memory.
3. **The winner as a small integer** (max pool): forward keeps, per output, the offset that won
   (``int8`` when the window has fewer than 128 entries) instead of the input or a mask per
   offset; backward adds ``dy`` where ``argmax == k``, one pass per offset.
4. **No temporaries per offset** (max pool forward): every pass writes into arrays allocated
   once per call (``out=``, ``copyto(..., where=)``). ``docs/benchmarks.md`` records that this
   bought no measurable time.
5. **Global average pooling** (adaptive, output 1x1, the ResNet head): one ``mean`` and one
   broadcast instead of the loop over output cells.
6. **A block of images at a time, on every core** (max pool,
   :func:`minires.kernels.workers.in_blocks`): the passes over the offsets run per cache-sized
   block of images, the blocks shared among the threads, as in the convolution.
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

from ..devices.backend import array_module
from . import array_pool
from .conv import pad_nhwc
from .workers import in_blocks


class PoolWindow(NamedTuple):
    """Where a pooling window went: what a pooling backward needs (the average pool's cache)."""
    x_shape: tuple                  # (N, C, H, W)
    padded_shape: tuple             # (N, Hp, Wp, C): the padded channels-last input
    channels_last: bool             # the memory layout of the input, for the gradient's
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]


class MaxPool2dCache(NamedTuple):
    """What :func:`max_pool2d_backward` needs: the window, and which offset won at each output."""
    window: PoolWindow
    argmax: Any                     # (N, Ho, Wo, C) small integers: the winning window offset


class AdaptiveAvgPool2dCache(NamedTuple):
    x_shape: tuple                  # (N, C, H, W)
    output_size: tuple[int, int]


def pool_output_size(size, kernel, stride, padding):
    """Window positions along one axis: ``(size + 2 padding - kernel) // stride + 1`` (floors)."""
    return (size + 2 * padding - kernel) // stride + 1


def _to_nhwc(x, ph, pw, value):
    """The (N, H, W, C) view of x (free when x is channels-last, as after a convolution),
    padded with ``value`` when there is padding."""
    x_nhwc = x.transpose(0, 2, 3, 1)
    return pad_nhwc(x_nhwc, ph, pw, value) if (ph or pw) else x_nhwc


def _window(x_nhwc, i, j, stride, out_h, out_w):
    """The (N, Ho, Wo, C) strided view of the inputs under window offset (i, j)."""
    sh, sw = stride
    return x_nhwc[:, i:i + sh * (out_h - 1) + 1:sh, j:j + sw * (out_w - 1) + 1:sw, :]


def _is_channels_last(x_nhwc) -> bool:
    """Whether the (N, H, W, C) view sits on channels-last memory (C the fastest axis)."""
    return x_nhwc.strides[3] <= x_nhwc.strides[2]


def _zeros_nhwc(shape, channels_last, dtype, xp):
    """Zeros of (N, H, W, C) shape laid out like the input was: channels-last or NCHW memory."""
    out = _empty_nhwc(shape, channels_last, dtype, xp)
    out.fill(0)
    return out


def _empty_nhwc(shape, channels_last, dtype, xp):
    """An uninitialised (N, H, W, C) array laid out like the input was (from the array pool)."""
    if channels_last:
        return array_pool.empty(xp, shape, dtype)
    n, h, w, c = shape
    return array_pool.empty(xp, (n, c, h, w), dtype).transpose(0, 2, 3, 1)


def _from_nhwc(dx_pad, ph, pw, h, w):
    """A padded (N, Hp, Wp, C) gradient, cropped to (N, C, H, W) (a view)."""
    return dx_pad[:, ph:ph + h, pw:pw + w, :].transpose(0, 3, 1, 2)


def max_pool2d_forward(x, kernel_size, stride, padding):
    """Max pooling with ``kernel_size``, ``stride`` and ``padding`` pairs (height, width).
    Returns ``(y, cache)``, ``cache`` a :class:`MaxPool2dCache`."""
    xp = array_module(x)
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    n, c, h, w = x.shape
    out_h, out_w = pool_output_size(h, kh, sh, ph), pool_output_size(w, kw, sw, pw)
    x_pad = _to_nhwc(x, ph, pw, -xp.inf)                # step 2: channels-last
    # y starts as a copy of the first offset's window (it is updated in place), in the input's
    # memory order, so that every pass below walks y and the windows of x in the same order
    first = _window(x_pad, 0, 0, (sh, sw), out_h, out_w)
    y = array_pool.empty_like(xp, first)
    argmax = xp.empty_like(y, dtype=xp.int8 if kh * kw < 128 else xp.int32)   # step 3

    def block(lo, hi):                          # step 6: a block of images at a time
        y_block, argmax_block = y[lo:hi], argmax[lo:hi]
        y_block[...] = first[lo:hi]
        argmax_block.fill(0)
        # step 4: every pass writes into arrays allocated once (out=, where=): no temporaries
        better = xp.empty_like(y_block, dtype=bool)
        for k in range(1, kh * kw):             # step 1: one pass per window offset
            win = _window(x_pad[lo:hi], k // kw, k % kw, (sh, sw), out_h, out_w)
            xp.greater(win, y_block, out=better)     # strict: the first maximum keeps the gradient
            xp.copyto(argmax_block, k, where=better)
            xp.maximum(y_block, win, out=y_block)    # (not where: a NaN propagates, as PyTorch's)
    in_blocks(x_pad, block)
    window = PoolWindow(x.shape, x_pad.shape, _is_channels_last(x_pad), (kh, kw), (sh, sw),
                        (ph, pw))
    return y.transpose(0, 3, 1, 2), MaxPool2dCache(window, argmax)


def max_pool2d_backward(dy, cache):
    """``dx`` of max pooling: each ``dy`` added to the input that won its window (step 3)."""
    xp = array_module(dy)
    window, argmax = cache.window, cache.argmax
    (kh, kw), (ph, pw) = window.kernel_size, window.padding
    out_h, out_w = dy.shape[2], dy.shape[3]
    dy_nhwc = dy.transpose(0, 2, 3, 1)
    dx_pad = _empty_nhwc(window.padded_shape, window.channels_last, dy.dtype, xp)

    def block(lo, hi):                          # step 6: images write only their own pixels
        dx_block, argmax_block, dy_block = dx_pad[lo:hi], argmax[lo:hi], dy_nhwc[lo:hi]
        dx_block.fill(0)
        won = xp.empty_like(argmax_block, dtype=bool)
        routed = xp.empty_like(argmax_block, dtype=dy.dtype)
        for k in range(kh * kw):
            win = _window(dx_block, k // kw, k % kw, window.stride, out_h, out_w)
            xp.equal(argmax_block, k, out=won)
            xp.multiply(dy_block, won, out=routed)
            win += routed                       # overlapping windows add up, as the gradient does
    in_blocks(dx_pad, block)
    return _from_nhwc(dx_pad, ph, pw, window.x_shape[2], window.x_shape[3])


def avg_pool2d_forward(x, kernel_size, stride, padding):
    """Average pooling with ``kernel_size``, ``stride`` and ``padding`` pairs (height, width).
    Returns ``(y, cache)``, ``cache`` a :class:`PoolWindow`."""
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    n, c, h, w = x.shape
    out_h, out_w = pool_output_size(h, kh, sh, ph), pool_output_size(w, kw, sw, pw)
    x_pad = _to_nhwc(x, ph, pw, 0)
    y = _window(x_pad, 0, 0, (sh, sw), out_h, out_w).copy(order="K")   # see max_pool2d_forward
    for k in range(1, kh * kw):
        y += _window(x_pad, k // kw, k % kw, (sh, sw), out_h, out_w)
    y *= 1.0 / (kh * kw)
    window = PoolWindow(x.shape, x_pad.shape, _is_channels_last(x_pad), (kh, kw), (sh, sw),
                        (ph, pw))
    return y.transpose(0, 3, 1, 2), window


def avg_pool2d_backward(dy, cache):
    """``dx`` of average pooling: ``dy / (kh kw)`` added to every input of its window."""
    xp = array_module(dy)
    window = cache                  # the average pool's cache is its window
    (kh, kw), (ph, pw) = window.kernel_size, window.padding
    out_h, out_w = dy.shape[2], dy.shape[3]
    share = dy.transpose(0, 2, 3, 1) * (1.0 / (kh * kw))
    dx_pad = _zeros_nhwc(window.padded_shape, window.channels_last, dy.dtype, xp)
    for k in range(kh * kw):
        _window(dx_pad, k // kw, k % kw, window.stride, out_h, out_w)[...] += share
    return _from_nhwc(dx_pad, ph, pw, window.x_shape[2], window.x_shape[3])


def _adaptive_bounds(size, out):
    """The (start, stop) input indices each of ``out`` adaptive cells averages over."""
    return [(math.floor(i * size / out), math.ceil((i + 1) * size / out)) for i in range(out)]


def adaptive_avg_pool2d_forward(x, output_size):
    """Adaptive average pooling to an ``output_size`` pair (height, width).
    Returns ``(y, cache)``, ``cache`` an :class:`AdaptiveAvgPool2dCache`."""
    xp = array_module(x)
    oh, ow = output_size
    n, c, h, w = x.shape
    cache = AdaptiveAvgPool2dCache(x.shape, (oh, ow))
    if oh == 1 and ow == 1:                     # step 5: global average pooling, the ResNet head
        return x.mean(axis=(2, 3), keepdims=True), cache
    y = xp.empty((n, c, oh, ow), dtype=x.dtype)
    for i, (h0, h1) in enumerate(_adaptive_bounds(h, oh)):
        for j, (w0, w1) in enumerate(_adaptive_bounds(w, ow)):
            y[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
    return y, cache


def adaptive_avg_pool2d_backward(dy, cache):
    """``dx`` of adaptive average pooling: each cell's ``dy / area`` added to its inputs."""
    xp = array_module(dy)
    x_shape, (oh, ow) = cache.x_shape, cache.output_size
    n, c, h, w = x_shape
    if oh == 1 and ow == 1:
        return xp.broadcast_to(dy * (1.0 / (h * w)), x_shape)
    dx = xp.zeros(x_shape, dtype=dy.dtype)
    for i, (h0, h1) in enumerate(_adaptive_bounds(h, oh)):
        for j, (w0, w1) in enumerate(_adaptive_bounds(w, ow)):
            area = (h1 - h0) * (w1 - w0)
            dx[:, :, h0:h1, w0:w1] += dy[:, :, i:i + 1, j:j + 1] * (1.0 / area)
    return dx
