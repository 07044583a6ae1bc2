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
2. *im2col as one copy of a strided view* (:func:`im2col`): ``as_strided`` exposes all patches as
   a view of the padded image with no copy; one copy of that view makes them contiguous.
3. *A 1x1 convolution needs no patches* (:func:`patch_matrix`): the (subsampled) image is the
   patch matrix.
4. *Patch matrices from a caching pool* (:mod:`minires.kernels.array_pool`): they are the largest
   arrays of a training step and live for one matrix product; reusing their memory step after step
   saves the operating system zeroing fresh pages every time, in any user's loop.
5. *Three ways to the input gradient* (:func:`input_gradient`): for stride 1, ``dx`` is itself a
   convolution of ``dy`` with the flipped kernel (an im2col + product, no scatter); a strided 1x1
   convolution scatters ``dY W^T`` into every s-th pixel; everything else is the plain
   ``dY W^T`` + ``col2im``.
6. *Keep or rebuild the patches* (:class:`PatchBudget`): the cache keeps the input ``x`` (alive
   anyway: it is the previous layer's output) and backward rebuilds ``X_col`` for ``dW``, so that
   memory does not scale with kh*kw. Within a memory budget, the layers whose rebuild costs the
   most time per byte keep their patch matrix instead.

Which trick bought what, measured, is in ``docs/benchmarks.md``. Every function takes its array
module ``xp`` from its inputs, so the same code runs on NumPy, CuPy and the strict stand-in; no
scatter with repeated indices appears (CuPy leaves those undefined): col2im is a loop of strided
``+=``, one per kernel offset.
"""
from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

from ..devices.backend import array_module
from . import array_pool


@dataclass
class Conv2dCache:
    """What :func:`conv2d_backward` needs from the forward pass."""
    x: Any                          # (N, C, H, W): the input (backward rebuilds X_col from it)
    w: Any                          # (F, C, kh, kw): the weight
    padded_shape: tuple             # (N, Hp, Wp, C): the padded channels-last input
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    has_bias: bool
    x_col: Any = None               # the patch matrix, where PatchBudget let this layer keep it


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
    """(N, Hp, Wp, C) padded image -> (N, Ho, Wo, kh, kw, C) patches, C-contiguous.

    Speed trick 2: the patches are first a strided *view* of the padded image (element
    ``[n, i, j, a, e, c]`` sits at ``x_pad[n, i*sh + a*dh, j*sw + e*dw, c]``: the strides say so,
    no copy), then copied once into contiguous memory, which is what the matrix product needs.
    One copy with long contiguous runs beats kh*kw slice copies with runs of only C values.
    """
    xp = array_module(x_pad)
    n, _, _, c = x_pad.shape
    sh, sw = stride
    dh, dw = dilation
    s_n, s_h, s_w, s_c = x_pad.strides
    patches = xp.lib.stride_tricks.as_strided(
        x_pad, shape=(n, out_h, out_w, kh, kw, c),
        strides=(s_n, s_h * sh, s_w * sw, s_h * dh, s_w * dw, s_c))
    out = array_pool.empty(xp, patches.shape, x_pad.dtype)     # speed trick 4
    out[...] = patches
    return out


def col2im(dcol, padded_shape, stride, dilation):
    """The adjoint of :func:`im2col`: add each patch gradient back to the pixels it came from.

    One strided ``+=`` per kernel offset ``(a, e)``: the offset's gradients for all output pixels
    land on the pixels ``(i*sh + a*dh, j*sw + e*dw)``, distinct within one offset, so no index is
    written twice in one operation."""
    xp = array_module(dcol)
    n, out_h, out_w, kh, kw, c = dcol.shape
    sh, sw = stride
    dh, dw = dilation
    dx_pad = array_pool.zeros(xp, padded_shape, dcol.dtype)
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

    start = time.perf_counter()
    x_pad = pad_nhwc(x.transpose(0, 2, 3, 1), *padding)              # (N, Hp, Wp, C), trick 1
    x_col = patch_matrix(x_pad, kh, kw, stride, dilation, out_h, out_w)
    # nothing to rebuild when the patches are the image itself (a 1x1, stride-1 convolution)
    image_is_patches = kh == kw == 1 and tuple(stride) == (1, 1)
    build_seconds = 0.0 if image_is_patches else time.perf_counter() - start
    y = x_col @ weight_matrix(w)                                      # Y = X_col W_col
    if b is not None:
        y += b
    y = y.reshape(n, out_h, out_w, f).transpose(0, 3, 1, 2)          # NCHW view of NHWC memory
    cache = Conv2dCache(x, w, x_pad.shape, tuple(stride), tuple(padding), tuple(dilation),
                        b is not None)
    PATCH_BUDGET.offer(cache, x_col, build_seconds)                   # trick 6
    return y, cache


def conv2d_backward(dy, cache, need_dx=True, need_dw=True, need_db=True):
    """Gradients ``(dx, dw, db)`` of conv2d from ``dy`` (N, F, Ho, Wo); None where not needed:
    ``dW_col = X_col^T dY``, ``db`` the column sums of ``dY``, ``dx`` by :func:`input_gradient`."""
    xp = array_module(dy)
    n, f, out_h, out_w = dy.shape
    c, kh, kw = cache.w.shape[1:]
    dy_rows = xp.ascontiguousarray(dy.transpose(0, 2, 3, 1)).reshape(n * out_h * out_w, f)
    PATCH_BUDGET.backward_started()

    dw = db = dx = None
    if need_dw:
        x_col = cache.x_col
        if x_col is None:                                 # trick 6: rebuild the patches
            x_pad = pad_nhwc(cache.x.transpose(0, 2, 3, 1), *cache.padding)
            x_col = patch_matrix(x_pad, kh, kw, cache.stride, cache.dilation, out_h, out_w)
            del x_pad
        dw = (x_col.T @ dy_rows).reshape(kh, kw, c, f).transpose(3, 2, 0, 1)
        dw = xp.ascontiguousarray(dw)
        del x_col
    # a kept patch matrix has done its job: free it now, not when the graph goes (a second
    # backward through a retained graph rebuilds it from x)
    cache.x_col = None
    if need_db and cache.has_bias:
        db = dy_rows.sum(axis=0)
    if need_dx:
        dx = input_gradient(dy_rows, cache, out_h, out_w)
    return dx, dw, db


# --- speed trick 3: a 1x1 convolution needs no patches ------------------------------------------

def patch_matrix(x_pad, kh, kw, stride, dilation, out_h, out_w):
    """The patch matrix X_col (N*Ho*Wo, kh*kw*C) of an (N, Hp, Wp, C) padded image.

    A 1x1 kernel covers one pixel: its patches are the pixels themselves, every s-th one, so the
    (subsampled) image already is X_col and im2col would only copy it."""
    n, _, _, c = x_pad.shape
    sh, sw = stride
    if kh == 1 and kw == 1:
        if (sh, sw) == (1, 1):
            x_col = x_pad
        else:
            sub = x_pad[:, :sh * (out_h - 1) + 1:sh, :sw * (out_w - 1) + 1:sw, :]
            x_col = array_pool.empty(array_module(x_pad), sub.shape, sub.dtype)
            x_col[...] = sub
    else:
        x_col = im2col(x_pad, kh, kw, stride, dilation, out_h, out_w)
    return x_col.reshape(n * out_h * out_w, kh * kw * c)


# --- speed trick 5: three ways to the input gradient --------------------------------------------

def input_gradient(dy_rows, cache, out_h, out_w):
    """dx (N, C, H, W), an NCHW view of channels-last memory, from ``dy_rows`` (N*Ho*Wo, F)."""
    n, c, h, width = cache.x.shape
    f, _, kh, kw = cache.w.shape
    ph, pw = cache.padding
    dh, dw = cache.dilation
    qh, qw = dh * (kh - 1) - ph, dw * (kw - 1) - pw        # the padding of the transposed conv
    if cache.stride == (1, 1) and qh >= 0 and qw >= 0:
        dx = input_gradient_by_flipped_conv(dy_rows, cache, out_h, out_w, (qh, qw))
        return dx.reshape(n, h, width, c).transpose(0, 3, 1, 2)
    dx_col = dy_rows @ weight_matrix(cache.w).T                      # dX_col = dY W_col^T
    if kh == 1 and kw == 1:
        dx_pad = input_gradient_1x1(dx_col, cache, out_h, out_w)
    else:
        dx_pad = col2im(dx_col.reshape(n, out_h, out_w, kh, kw, c), cache.padded_shape,
                        cache.stride, cache.dilation)
    return dx_pad[:, ph:ph + h, pw:pw + width, :].transpose(0, 3, 1, 2)


def input_gradient_by_flipped_conv(dy_rows, cache, out_h, out_w, transposed_padding):
    """For stride 1, dx is a convolution of ``dy`` padded by ``d(k-1) - p``, with the kernel
    flipped in space and its in/out channels swapped: each input pixel collects
    ``w[f, c, a, e] * dy`` from every output it fed. That is an im2col + product, cheaper than
    ``dY W^T`` (kh*kw times larger than dx) followed by col2im's kh*kw scatters."""
    n, c, h, width = cache.x.shape
    f, _, kh, kw = cache.w.shape
    w_flipped = cache.w[:, :, ::-1, ::-1].transpose(2, 3, 0, 1).reshape(kh * kw * f, c)
    dy_pad = pad_nhwc(dy_rows.reshape(n, out_h, out_w, f), *transposed_padding)
    dy_col = patch_matrix(dy_pad, kh, kw, (1, 1), cache.dilation, h, width)
    return dy_col @ w_flipped                                        # (N*H*W, C)


def input_gradient_1x1(dx_col, cache, out_h, out_w):
    """A strided 1x1 convolution read every s-th pixel: its gradient goes back to those pixels
    (no overlaps, so an assignment), and the pixels it skipped get zero."""
    xp = array_module(dx_col)
    n, c = cache.x.shape[:2]
    sh, sw = cache.stride
    dx_pad = array_pool.zeros(xp, cache.padded_shape, dx_col.dtype)
    dx_pad[:, :sh * (out_h - 1) + 1:sh, :sw * (out_w - 1) + 1:sw, :] = \
        dx_col.reshape(n, out_h, out_w, c)
    return dx_pad


# --- speed trick 6: keep or rebuild the patches, under a memory budget --------------------------

class PatchBudget:
    """Which convolutions keep their patch matrix for the backward pass, under a memory budget.

    Rebuilding a layer's patches in backward costs what building them cost in forward (the pad and
    the im2col copy); keeping them costs their bytes until backward. So every forward clocks its
    build and records, per layer shape, the seconds per byte a kept matrix would save. At the first
    backward after a run of forwards (the end of a forward pass), the budget plans: it ranks the
    shapes by seconds saved per byte and gives each, in that order, a quota of the bytes its
    layers built in that pass, until ``budget_bytes`` is shared out (the last shape admitted may
    get only part of its bytes, so only its first layers keep). From the next forward pass on, a
    layer keeps its matrix while its shape's quota and the whole budget have room for it. A kept
    matrix is freed by the backward that used it (or with its cache, whichever comes first).

    The first forward pass keeps nothing (nothing is measured yet). ``budget_bytes = 0`` turns
    keeping off: backward then always rebuilds, the lowest peak memory. The default is chosen so
    that a ResNet training step stays below PyTorch's peak memory (``benchmarks/bench_step.py``
    measures both; ``docs/benchmarks.md``).
    """

    def __init__(self, budget_bytes: int):
        self.budget_bytes = budget_bytes
        self.kept_bytes = 0                  # kept patch matrices alive now
        self.seconds_per_byte: dict = {}     # layer shape -> measured build time / bytes
        self.plan: dict = {}                 # layer shape -> bytes it may keep (its quota)
        self._kept_by_shape: dict = {}       # layer shape -> bytes it keeps now
        self._pass_bytes: dict = {}          # layer shape -> bytes built in this forward pass
        self._lock = threading.Lock()

    def offer(self, cache: Conv2dCache, x_col, build_seconds: float) -> None:
        """Called by every forward with its patch matrix: record its cost, keep it if admitted."""
        key = (tuple(cache.x.shape), tuple(cache.w.shape), cache.stride, cache.padding,
               cache.dilation, str(x_col.dtype))
        nbytes = x_col.size * x_col.dtype.itemsize
        if nbytes == 0 or build_seconds == 0.0:
            return
        with self._lock:
            rate = build_seconds / nbytes
            self.seconds_per_byte[key] = min(rate, self.seconds_per_byte.get(key, rate))
            self._pass_bytes[key] = self._pass_bytes.get(key, 0) + nbytes
            kept_here = self._kept_by_shape.get(key, 0)
            keep = (kept_here + nbytes <= self.plan.get(key, 0)
                    and self.kept_bytes + nbytes <= self.budget_bytes)
            if not keep:
                return
            self.kept_bytes += nbytes
            self._kept_by_shape[key] = kept_here + nbytes
        try:
            # the count of kept bytes follows the matrix's life, however it ends
            weakref.finalize(x_col, self._release, key, nbytes)
        except TypeError:                        # an array type without weak references
            self._release(key, nbytes)
            return
        cache.x_col = x_col

    def _release(self, key, nbytes: int) -> None:
        with self._lock:
            self.kept_bytes -= nbytes
            self._kept_by_shape[key] -= nbytes

    def backward_started(self) -> None:
        """The first backward after a run of forwards closes that forward pass: plan again."""
        with self._lock:
            if not self._pass_bytes:
                return
            ranked = sorted(self._pass_bytes, key=lambda k: -self.seconds_per_byte[k])
            plan, left = {}, self.budget_bytes
            for key in ranked:
                if left <= 0:
                    break
                plan[key] = min(self._pass_bytes[key], left)
                left -= plan[key]
            self.plan = plan
            self._pass_bytes = {}


PATCH_BUDGET = PatchBudget(budget_bytes=192 * 2**20)
