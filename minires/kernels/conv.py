r"""2-D convolution as im2col + one matrix product, and its backward pass.

**The maths.** Input ``x`` (N, C, H, W), weight ``w`` (F, C, kh, kw), bias ``b`` (F,), output
``y`` (N, F, Ho, Wo) with ``Ho = (H + 2 p_h - d_h (kh - 1) - 1) // s_h + 1`` (likewise Wo):

.. math::  y[n, f, i, j] = b[f] + \sum_{c, a, e} w[f, c, a, e]\;
           x_{pad}[n, c, i s_h + a d_h, j s_w + e d_w]

Copy, for every output pixel ``(n, i, j)``, the ``kh*kw*C`` input values under the kernel into one
row of a *patch matrix* ``X_col`` (N*Ho*Wo, kh*kw*C) (this copy is ``im2col``), and lay the weight
out as ``W_col`` (kh*kw*C, F). The convolution is then one matrix product, and its backward is
the matrix product rule, given ``dY = dL/dY`` as an (N*Ho*Wo, F) matrix:

.. math::  Y = X_{col} W_{col} + b, \qquad dW_{col} = X_{col}^T dY, \qquad db = \sum_{rows} dY,
           \qquad dX_{col} = dY\, W_{col}^T

``col2im``, the adjoint of im2col, adds every row of ``dX_col`` back to the input pixels it was
copied from (a pixel under several kernel positions receives the sum of their gradients); the
padding is then cropped. Input rows and columns that no kernel position covers (when
``(H + 2p - k) % s != 0``) get a zero gradient.

**The file, top to bottom.** The plain path first: :func:`pad_nhwc`, :func:`im2col`,
:func:`col2im`, then :func:`conv2d_forward` and :func:`conv2d_backward`, which read as the
equations above. Then each speed trick, as a named step that the plain path calls:

1. *Channels-last images.* Inside the kernel, images are (N, H, W, C): the patch of one output
   pixel is then kh*kw contiguous runs of C values, and the product's output (N*Ho*Wo, F) *is* the
   NHWC result. It is returned as an (N, F, Ho, Wo) *view* of that memory, so the API stays NCHW
   while the next convolution's ``transpose(0, 2, 3, 1)`` costs nothing. Patch rows are therefore
   ordered (kh, kw, C) (the weight is transposed to match), not (C, kh, kw) as in the course.
2. *Patches as a strided view* (:func:`patch_view`): ``as_strided`` exposes all patches as a view
   of the padded image with no copy; one copy of (part of) that view makes them contiguous.
3. *A 1x1 convolution needs no patches*: with stride 1 the image is its own patch matrix.
4. *A block of images at a time, on every core* (:func:`patches_times`,
   :func:`patches_transposed_times`, :mod:`minires.kernels.workers`): neither the patch matrix
   nor the padded image is ever built whole. The threads take blocks of images as they get free;
   for each, they pad the block's images, copy its patches (small enough to stay in the CPU's
   cache) and multiply them at once, so the patches never travel to main memory and back. The
   backward pass rebuilds the patches the same way instead of keeping them: in cache, rebuilding
   costs less than keeping would.
5. *Two ways to the input gradient* (:func:`input_gradient`): for stride 1, ``dx`` is itself a
   convolution of ``dy`` with the flipped kernel (patches and a product, no scatter); otherwise
   ``dY W^T`` followed by :func:`col2im`, block by block.

Which trick bought what, measured, is in ``docs/benchmarks.md``. Every function takes its array
module ``xp`` from its inputs, so the same code runs on NumPy, CuPy and the strict stand-in (on
those two the whole batch is one block); no scatter with repeated indices appears (CuPy leaves
those undefined): col2im is a loop of strided ``+=``, one per kernel offset.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..devices.backend import array_module
from . import array_pool
from .workers import add_in_order, map_blocks


@dataclass
class Conv2dCache:
    """What :func:`conv2d_backward` needs from the forward pass."""
    x: Any                          # (N, C, H, W): the input (backward rebuilds the patches from it)
    w: Any                          # (F, C, kh, kw): the weight
    padded_shape: tuple             # (N, Hp, Wp, C): the padded channels-last input
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    has_bias: bool


def conv_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


# --- the plain path -----------------------------------------------------------------------------

def pad_nhwc(x_nhwc, ph: int, pw: int, value=0):
    """Pad the two spatial axes of an (N, H, W, C) array with ``value`` (a C-contiguous copy)."""
    xp = array_module(x_nhwc)
    n, h, w, c = x_nhwc.shape
    if ph == 0 and pw == 0:
        return xp.ascontiguousarray(x_nhwc)
    out = array_pool.empty(xp, (n, h + 2 * ph, w + 2 * pw, c), x_nhwc.dtype)
    out.fill(value)
    out[:, ph:ph + h, pw:pw + w, :] = x_nhwc
    return out


def im2col(x_pad, kh, kw, stride, dilation, out_h, out_w):
    """(N, Hp, Wp, C) padded image -> (N, Ho, Wo, kh, kw, C) patches, C-contiguous: row
    ``(n, i, j)`` of the patch matrix holds ``x_pad[n, i*sh + a*dh, j*sw + e*dw, c]`` for every
    kernel offset ``(a, e)`` and channel ``c``. (The kernels never build it whole: see trick 4.)"""
    xp = array_module(x_pad)
    return xp.ascontiguousarray(patch_view(x_pad, kh, kw, stride, dilation, out_h, out_w))


def col2im(dcol, padded_shape, stride, dilation, out=None):
    """The adjoint of :func:`im2col`: add each patch gradient ``dcol`` (N, Ho, Wo, kh, kw, C) back
    to the pixels of the padded image (N, Hp, Wp, C) it came from; returns that image's gradient,
    a new zero array of ``padded_shape`` with the sums added, or ``out`` with them added in place.

    One strided ``+=`` per kernel offset ``(a, e)``: the offset's gradients for all output pixels
    land on the pixels ``(i*sh + a*dh, j*sw + e*dw)``, distinct within one offset, so no index is
    written twice in one operation."""
    dx_pad = out if out is not None else array_pool.zeros(array_module(dcol), padded_shape,
                                                          dcol.dtype)
    n, out_h, out_w, kh, kw, c = dcol.shape
    sh, sw = stride
    dh, dw = dilation
    for a in range(kh):
        top = a * dh
        for e in range(kw):
            left = e * dw
            dx_pad[:, top:top + sh * (out_h - 1) + 1:sh,
                   left:left + sw * (out_w - 1) + 1:sw, :] += dcol[:, :, :, a, e, :]
    return dx_pad


def weight_matrix(w):
    """W_col (kh*kw*C, F): the weight (F, C, kh, kw) with rows ordered like the patches."""
    f, c, kh, kw = w.shape
    return w.transpose(2, 3, 1, 0).reshape(kh * kw * c, f)


def conv2d_forward(x, w, b=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1)):
    """y = conv2d(x, w) + b, with ``stride``, ``padding`` and ``dilation`` pairs (height, width).
    Returns ``(y, cache)``; ``y`` is (N, F, Ho, Wo), ``cache`` a :class:`Conv2dCache`."""
    n, c, h, width = x.shape
    f, _, kh, kw = w.shape
    out_h = conv_output_size(h, kh, stride[0], padding[0], dilation[0])
    out_w = conv_output_size(width, kw, stride[1], padding[1], dilation[1])
    stride, padding, dilation = tuple(stride), tuple(padding), tuple(dilation)

    x_nhwc = x.transpose(0, 2, 3, 1)                                  # trick 1: a view
    y = patches_times(x_nhwc, padding, weight_matrix(w), kh, kw, stride, dilation, out_h, out_w)
    if b is not None:                                                 # Y = X_col W_col + b
        y += b
    y = y.reshape(n, out_h, out_w, f).transpose(0, 3, 1, 2)          # NCHW view of NHWC memory
    padded_shape = (n, h + 2 * padding[0], width + 2 * padding[1], c)
    cache = Conv2dCache(x, w, padded_shape, stride, padding, dilation, b is not None)
    return y, cache


def conv2d_backward(dy, cache, need_dx=True, need_dw=True, need_db=True):
    """Gradients ``(dx, dw, db)`` of conv2d from ``dy`` (N, F, Ho, Wo); None where not needed:
    ``dW_col = X_col^T dY``, ``db`` the column sums of ``dY``, ``dx`` by :func:`input_gradient`."""
    n, f, out_h, out_w = dy.shape
    c, kh, kw = cache.w.shape[1:]
    dy_nhwc = dy.transpose(0, 2, 3, 1)              # dY's rows, (N, Ho, Wo, F): a view

    dw = db = dx = None
    if need_dw:                                      # trick 4: the patches rebuilt, not kept
        dw_col = patches_transposed_times(cache.x.transpose(0, 2, 3, 1), cache.padding, dy_nhwc,
                                          kh, kw, cache.stride, cache.dilation)
        dw = dw_col.reshape(kh, kw, c, f).transpose(3, 2, 0, 1)
        dw = array_module(dy).ascontiguousarray(dw)
    if need_db and cache.has_bias:
        db = dy.sum(axis=(0, 2, 3))
    if need_dx:
        dx = input_gradient(dy_nhwc, cache)
    return dx, dw, db


# --- trick 2: the patches as a strided view ------------------------------------------------------

def patch_view(x_pad, kh, kw, stride, dilation, out_h, out_w):
    """All patches of an (N, Hp, Wp, C) padded image as an (N, Ho, Wo, kh, kw, C) *view*: element
    ``[n, i, j, a, e, c]`` sits at ``x_pad[n, i*sh + a*dh, j*sw + e*dw, c]``, which the strides
    say, with no copy. Copying (part of) it is what builds patch rows."""
    xp = array_module(x_pad)
    n, _, _, c = x_pad.shape
    sh, sw = stride
    dh, dw = dilation
    s_n, s_h, s_w, s_c = x_pad.strides
    return xp.lib.stride_tricks.as_strided(
        x_pad, shape=(n, out_h, out_w, kh, kw, c),
        strides=(s_n, s_h * sh, s_w * sw, s_h * dh, s_w * dw, s_c))


# --- trick 4: a block of images at a time, on every core -----------------------------------------

def _padded_images(x_nhwc, lo, hi, padding, scratch):
    """Images lo:hi of ``x_nhwc``, padded with zeros, (images, Hp, Wp, C), in a buffer that the
    calling thread reuses for its next block (its border is zeroed once and never written)."""
    xp = array_module(x_nhwc)
    ph, pw = padding
    images = x_nhwc[lo:hi]
    if ph == pw == 0 and images.flags.c_contiguous:
        return images                                              # nothing to pad or copy
    m, h, w, c = images.shape
    buffer = scratch.get("padded")
    if buffer is None or buffer.shape[0] < m:
        buffer = scratch["padded"] = xp.zeros((m, h + 2 * ph, w + 2 * pw, c), x_nhwc.dtype)
    block = buffer[:m]
    block[:, ph:ph + h, pw:pw + w, :] = images
    return block


def _patch_rows(padded, kh, kw, stride, dilation, out_h, out_w, scratch):
    """The block's rows of the patch matrix, (images*Ho*Wo, kh*kw*C), copied from its padded
    images into a buffer that the calling thread reuses for its next block."""
    xp = array_module(padded)
    c = padded.shape[-1]
    if kh == kw == 1 and tuple(stride) == (1, 1):                   # trick 3
        return padded.reshape(-1, c)
    patches = patch_view(padded, kh, kw, stride, dilation, out_h, out_w)
    buffer = scratch.get("patches")
    if buffer is None or buffer.shape[0] < patches.shape[0]:
        buffer = scratch["patches"] = xp.empty(patches.shape, patches.dtype)
    block = buffer[:patches.shape[0]]
    block[...] = patches
    return block.reshape(-1, kh * kw * c)


def patches_times(x_nhwc, padding, w_col, kh, kw, stride, dilation, out_h, out_w):
    """``im2col(pad(x_nhwc)) @ w_col`` as (N*Ho*Wo, F) rows, without the whole patch matrix, nor
    even the whole padded image: a cache-sized block of images at a time, the threads taking
    blocks as they get free, each block padded, its patches copied and at once multiplied into
    the block's rows of the result."""
    xp = array_module(x_nhwc)
    n, h, w, c = x_nhwc.shape
    f = w_col.shape[1]
    rows = out_h * out_w                                       # rows per image
    y = array_pool.empty(xp, (n * rows, f), x_nhwc.dtype)

    def block(lo, hi, scratch):
        padded = _padded_images(x_nhwc, lo, hi, padding, scratch)
        cols = _patch_rows(padded, kh, kw, stride, dilation, out_h, out_w, scratch)
        xp.matmul(cols, w_col, out=y[lo * rows:hi * rows])

    map_blocks(xp, n, rows * kh * kw * c * x_nhwc.itemsize, block)
    return y


def patches_transposed_times(x_nhwc, padding, dy_nhwc, kh, kw, stride, dilation):
    """``im2col(pad(x_nhwc))^T @ dY`` (kh*kw*C, F), the weight gradient: one product per block of
    images, then their sum, in block order (so the result does not depend on which thread
    worked which block)."""
    xp = array_module(x_nhwc)
    c = x_nhwc.shape[-1]
    n, out_h, out_w, f = dy_nhwc.shape

    def block(lo, hi, scratch):
        padded = _padded_images(x_nhwc, lo, hi, padding, scratch)
        cols = _patch_rows(padded, kh, kw, stride, dilation, out_h, out_w, scratch)
        dy_rows = xp.ascontiguousarray(dy_nhwc[lo:hi]).reshape(-1, f)
        return cols.T @ dy_rows

    bytes_per_image = out_h * out_w * kh * kw * c * x_nhwc.itemsize
    return add_in_order(map_blocks(xp, n, bytes_per_image, block))


# --- trick 5: two ways to the input gradient -----------------------------------------------------

def input_gradient(dy_nhwc, cache):
    """dx (N, C, H, W), an NCHW view of channels-last memory, from ``dy_nhwc`` (N, Ho, Wo, F)."""
    n, c, h, width = cache.x.shape
    f, _, kh, kw = cache.w.shape
    ph, pw = cache.padding
    dh, dw = cache.dilation
    qh, qw = dh * (kh - 1) - ph, dw * (kw - 1) - pw        # the padding of the transposed conv
    if cache.stride == (1, 1) and qh >= 0 and qw >= 0:
        dx = input_gradient_by_flipped_conv(dy_nhwc, cache, (qh, qw))
        return dx.reshape(n, h, width, c).transpose(0, 3, 1, 2)
    dx_pad = input_gradient_by_col2im(dy_nhwc, cache)
    return dx_pad[:, ph:ph + h, pw:pw + width, :].transpose(0, 3, 1, 2)


def input_gradient_by_flipped_conv(dy_nhwc, cache, transposed_padding):
    """For stride 1, dx is a convolution of ``dy`` padded by ``d(k-1) - p``, with the kernel
    flipped in space and its in/out channels swapped: each input pixel collects
    ``w[f, c, a, e] * dy`` from every output it fed. That is patches and a product, cheaper than
    ``dY W^T`` (kh*kw times larger than dx) followed by col2im's kh*kw scatters."""
    n, c, h, width = cache.x.shape
    f, _, kh, kw = cache.w.shape
    w_flipped = cache.w[:, :, ::-1, ::-1].transpose(2, 3, 0, 1).reshape(kh * kw * f, c)
    return patches_times(dy_nhwc, transposed_padding, w_flipped, kh, kw, (1, 1), cache.dilation,
                         h, width)


def input_gradient_by_col2im(dy_nhwc, cache):
    """Any stride: ``dX_col = dY W_col^T``, then :func:`col2im` into the padded dx, a block of
    images at a time (images are independent, so each block writes only its own pixels)."""
    xp = array_module(dy_nhwc)
    n, out_h, out_w, f = dy_nhwc.shape
    c, kh, kw = cache.w.shape[1:]
    w_col_t = weight_matrix(cache.w).T
    dx_pad = array_pool.zeros(xp, cache.padded_shape, dy_nhwc.dtype)

    def block(lo, hi, scratch):
        dy_rows = xp.ascontiguousarray(dy_nhwc[lo:hi]).reshape(-1, f)
        dx_col = (dy_rows @ w_col_t).reshape(hi - lo, out_h, out_w, kh, kw, c)
        col2im(dx_col, None, cache.stride, cache.dilation, out=dx_pad[lo:hi])

    map_blocks(xp, n, out_h * out_w * kh * kw * c * dy_nhwc.itemsize, block)
    return dx_pad
