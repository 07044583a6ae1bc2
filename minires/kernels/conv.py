r"""2-D convolution as im2col + one matrix product, and its backward pass.

Shapes: input ``x`` (N, C, H, W), weight ``w`` (F, C, kh, kw), bias ``b`` (F,), output
``y`` (N, F, Ho, Wo) with ``Ho = (H + 2 p_h - d_h (kh - 1) - 1) // s_h + 1`` (likewise Wo).

**Forward.** Pad ``x``; ``im2col`` copies, for every output pixel ``(n, i, j)``, the ``kh*kw*C``
input values under the kernel into one row of a matrix ``X_col`` of shape (N*Ho*Wo, kh*kw*C).
With the weight laid out as ``W_col`` (kh*kw*C, F), the convolution is a single GEMM:

.. math::  Y = X_{col} W_{col} + b

**Backward.** Given ``dY = dL/dY`` (N*Ho*Wo, F), the matrix product rule gives

.. math::  dW_{col} = X_{col}^T dY, \qquad db = \sum_{rows} dY, \qquad dX_{col} = dY\, W_{col}^T

The cache keeps ``x``, not ``X_col`` (kh*kw times larger): backward rebuilds the patches for
``dW``. ``col2im`` adds every row of ``dX_col`` back to the input pixels it was copied from (a pixel
under several kernel positions receives the sum of their gradients). Padding is then cropped.
Input rows and columns that no kernel position covers (when ``(H + 2p - k) % s != 0``) get a zero
gradient, and the shapes still agree: ``col2im`` writes into a zero array of the padded input shape.

**Layout.** Inside the kernel, images are channels-last (N, H, W, C): each kernel offset then copies
contiguous runs of C values, and the GEMM output (N*Ho*Wo, F) *is* the NHWC result. The output is
returned as an (N, F, Ho, Wo) *view* of that memory, so the API stays NCHW while the next
convolution's ``transpose(0, 2, 3, 1)`` costs nothing. On NumPy this layout is faster than the
textbook NCHW im2col (measurements in ``docs/benchmarks.md``).

Every function takes its array module ``xp`` from its inputs, so the same code runs on NumPy and
CuPy. im2col and col2im are a loop over the kh*kw kernel offsets, each a strided slice copy (or
``+=``): no scatter with repeated indices, which CuPy leaves undefined.
"""
from __future__ import annotations

from typing import Any, NamedTuple

from ..backend import array_module


class Conv2dCache(NamedTuple):
    """What :func:`conv2d_backward` needs from the forward pass."""
    x: Any                          # (N, C, H, W): the input (backward rebuilds X_col from it)
    w: Any                          # (F, C, kh, kw): the weight
    padded_shape: tuple             # (N, Hp, Wp, C): the padded channels-last input
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    has_bias: bool


def conv_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def pad_nhwc(x_nhwc, ph: int, pw: int, value=0):
    """Zero-pad the two spatial axes of an (N, H, W, C) array (a C-contiguous copy)."""
    xp = array_module(x_nhwc)
    n, h, w, c = x_nhwc.shape
    if ph == 0 and pw == 0:
        return xp.ascontiguousarray(x_nhwc)
    out = xp.empty((n, h + 2 * ph, w + 2 * pw, c), dtype=x_nhwc.dtype) if value != 0 \
        else xp.zeros((n, h + 2 * ph, w + 2 * pw, c), dtype=x_nhwc.dtype)
    if value != 0:
        out.fill(value)
    out[:, ph:ph + h, pw:pw + w, :] = x_nhwc
    return out


def im2col(x_pad, kh, kw, stride, dilation, out_h, out_w):
    """(N, Hp, Wp, C) padded image -> (N, Ho, Wo, kh, kw, C) patches.

    The patches are first a strided *view* of the padded image (no copy: element
    ``[n, i, j, a, b, c]`` sits at ``x_pad[n, i*sh + a*dh, j*sw + b*dw, c]``), then copied once
    into contiguous memory, which is what the matrix product needs: one copy with long contiguous
    runs, faster than kh*kw slice copies with runs of only C values (``docs/benchmarks.md``).
    """
    xp = array_module(x_pad)
    n, _, _, c = x_pad.shape
    sh, sw = stride
    dh, dw = dilation
    s_n, s_h, s_w, s_c = x_pad.strides
    patches = xp.lib.stride_tricks.as_strided(
        x_pad, shape=(n, out_h, out_w, kh, kw, c),
        strides=(s_n, s_h * sh, s_w * sw, s_h * dh, s_w * dw, s_c))
    return xp.ascontiguousarray(patches)


def col2im(dcol, padded_shape, stride, dilation):
    """The adjoint of :func:`im2col`: add each patch gradient back to the pixels it came from."""
    xp = array_module(dcol)
    n, out_h, out_w, kh, kw, c = dcol.shape
    sh, sw = stride
    dh, dw = dilation
    dx_pad = xp.zeros(padded_shape, dtype=dcol.dtype)
    for i in range(kh):
        top = i * dh
        for j in range(kw):
            left = j * dw
            dx_pad[:, top:top + sh * (out_h - 1) + 1:sh,
                   left:left + sw * (out_w - 1) + 1:sw, :] += dcol[:, :, :, i, j, :]
    return dx_pad


def _patch_rows(x_pad, kh, kw, stride, dilation, out_h, out_w):
    """The patch matrix X_col (N*Ho*Wo, kh*kw*C) of an (N, Hp, Wp, C) padded image."""
    n, _, _, c = x_pad.shape
    sh, sw = stride
    if kh == 1 and kw == 1:
        # a 1x1 convolution needs no patches: subsample, then the image *is* X_col
        x_col = array_module(x_pad).ascontiguousarray(
            x_pad[:, :sh * (out_h - 1) + 1:sh, :sw * (out_w - 1) + 1:sw, :])
    else:
        x_col = im2col(x_pad, kh, kw, stride, dilation, out_h, out_w)
    return x_col.reshape(n * out_h * out_w, kh * kw * c)


def correlate_nhwc(x_pad, w_col, kh, kw, stride, dilation, out_h, out_w):
    """The core of a convolution: patches of an (N, Hp, Wp, C) padded image times the
    (kh*kw*C, F) weight matrix. Returns ``(y_rows, x_col)``: (N*Ho*Wo, F) and the patches."""
    x_col = _patch_rows(x_pad, kh, kw, stride, dilation, out_h, out_w)
    return x_col @ w_col, x_col


def conv2d_forward(x, w, b=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1)):
    """y = conv2d(x, w) + b, with ``stride``, ``padding`` and ``dilation`` pairs (height, width).
    Returns ``(y, cache)``; ``y`` is (N, F, Ho, Wo), ``cache`` a :class:`Conv2dCache`."""
    sh, sw = stride
    ph, pw = padding
    dh, dw = dilation
    n, c, h, width = x.shape
    f, _, kh, kw = w.shape
    out_h = conv_output_size(h, kh, sh, ph, dh)
    out_w = conv_output_size(width, kw, sw, pw, dw)

    x_pad = pad_nhwc(x.transpose(0, 2, 3, 1), ph, pw)           # (N, Hp, Wp, C)
    w_col = w.transpose(2, 3, 1, 0).reshape(kh * kw * c, f)     # rows ordered (i, j, channel)
    y, _ = correlate_nhwc(x_pad, w_col, kh, kw, (sh, sw), (dh, dw), out_h, out_w)
    if b is not None:
        y += b
    y = y.reshape(n, out_h, out_w, f).transpose(0, 3, 1, 2)    # NCHW view of NHWC memory
    # The cache keeps the input, not the patch matrix: X_col is kh*kw times larger than x, and x
    # is usually kept alive anyway (it is the previous ReLU's output), so backward rebuilds the
    # patches instead (one more im2col) and a network's peak memory stops scaling with kh*kw.
    cache = Conv2dCache(x, w, x_pad.shape, (sh, sw), (ph, pw), (dh, dw), b is not None)
    return y, cache


def conv2d_backward(dy, cache, need_dx=True, need_dw=True, need_db=True):
    """Gradients ``(dx, dw, db)`` of conv2d from ``dy`` (N, F, Ho, Wo); None where not needed.

    For stride 1, ``dx`` is itself a convolution: of ``dy``, padded by ``d(k-1) - p``, with the
    kernel flipped in space and its in/out channels swapped (each input pixel collects
    ``w[f, c, i, j] * dy`` from every output it fed). That is one more im2col + GEMM, faster
    than ``dY W^T`` followed by the col2im scatter (``docs/benchmarks.md``). Strided
    convolutions use col2im.
    """
    xp = array_module(dy)
    x, w, stride, dilation = cache.x, cache.w, cache.stride, cache.dilation
    n, c, h, width = x.shape
    f, _, kh, kw = w.shape
    out_h, out_w = dy.shape[2], dy.shape[3]
    dy_nhwc = dy.transpose(0, 2, 3, 1)
    dy_rows = xp.ascontiguousarray(dy_nhwc).reshape(n * out_h * out_w, f)

    dw = db = dx = None
    if need_dw:
        x_pad = pad_nhwc(x.transpose(0, 2, 3, 1), *cache.padding)
        x_col = _patch_rows(x_pad, kh, kw, stride, dilation, out_h, out_w)
        dw = (x_col.T @ dy_rows).reshape(kh, kw, c, f).transpose(3, 2, 0, 1)
        dw = xp.ascontiguousarray(dw)
        del x_pad, x_col
    if need_db and cache.has_bias:
        db = dy_rows.sum(axis=0)
    if need_dx:
        ph, pw = cache.padding
        dh, dw_ = dilation
        qh, qw = dh * (kh - 1) - ph, dw_ * (kw - 1) - pw       # the padding of the transposed conv
        if stride == (1, 1) and qh >= 0 and qw >= 0:
            w_flipped = w[:, :, ::-1, ::-1].transpose(2, 3, 0, 1).reshape(kh * kw * f, c)
            dy_pad = pad_nhwc(dy_rows.reshape(n, out_h, out_w, f), qh, qw)
            dx_rows, _ = correlate_nhwc(dy_pad, w_flipped, kh, kw, (1, 1), dilation, h, width)
            dx = dx_rows.reshape(n, h, width, c).transpose(0, 3, 1, 2)
        else:
            w_col = w.transpose(2, 3, 1, 0).reshape(kh * kw * c, f)
            dx_col = (dy_rows @ w_col.T).reshape(n, out_h, out_w, kh, kw, c)
            if kh == 1 and kw == 1:
                dx_pad = xp.zeros(cache.padded_shape, dtype=dy.dtype)
                sh, sw = stride
                dx_pad[:, :sh * (out_h - 1) + 1:sh, :sw * (out_w - 1) + 1:sw, :] = \
                    dx_col.reshape(n, out_h, out_w, c)
            else:
                dx_pad = col2im(dx_col, cache.padded_shape, stride, dilation)
            dx = dx_pad[:, ph:ph + h, pw:pw + width, :].transpose(0, 3, 1, 2)
    return dx, dw, db
