r"""Grouped convolution (``groups = g``): ``g`` independent convolutions side by side.

Shapes: input ``x`` (N, C, H, W), weight ``w`` (F, C/g, kh, kw), bias ``b`` (F,). The channels are
split into ``g`` consecutive blocks: input block ``k`` holds channels ``k C/g .. (k+1) C/g - 1``,
output block ``k`` holds ``k F/g .. (k+1) F/g - 1``, and weight rows ``k F/g ..`` belong to it.

**Forward.** Output block ``k`` sees only input block ``k``:

.. math::  y_{[:, k]} = \mathrm{conv2d}(x_{[:, k]},\ w_{[k]}) + b_{[k]}

``g = 1`` is the ordinary convolution; ``g = C = F`` is a *depthwise* convolution (one filter per
channel); ResNeXt uses ``g = 32`` in its 3x3 convolutions (its "cardinality").

**Backward.** The blocks share nothing, so the gradient of each block is the ordinary
convolution's gradient (:func:`minires.kernels.conv.conv2d_backward`) of that block alone:

.. math::  dx_{[:, k]} = \partial_x \mathrm{conv}(dy_{[:, k]}), \quad
           dw_{[k]} = \partial_w \mathrm{conv}(dy_{[:, k]}), \quad db_{[k]} = \sum dy_{[:, k]}

and the results are concatenated back along the channel axis (``x`` feeds only its own block, so
no sums across blocks appear).

**The plain path** is :func:`minires.kernels.reference.grouped_conv2d_forward`, the reference
convolution once per group; this kernel is the same loop over the groups around the fast
convolution (:mod:`minires.kernels.conv`), ``g`` smaller matrix products instead of one, and
adds no speed trick of its own. It is tested against the reference.
"""
from __future__ import annotations

from ..devices.backend import array_module
from .conv import conv2d_backward, conv2d_forward


def grouped_conv2d_forward(x, w, b, stride, padding, dilation, groups: int):
    """``y`` (N, F, Ho, Wo) and a cache for the backward; one :func:`conv2d_forward` per group."""
    xp = array_module(x)
    c_in = x.shape[1] // groups
    f_out = w.shape[0] // groups
    ys, caches = [], []
    for k in range(groups):
        bias = None if b is None else b[k * f_out:(k + 1) * f_out]
        y, cache = conv2d_forward(x[:, k * c_in:(k + 1) * c_in], w[k * f_out:(k + 1) * f_out],
                                  bias, stride, padding, dilation)
        ys.append(y)
        caches.append(cache)
    return xp.concatenate(ys, axis=1), (caches, f_out)


def grouped_conv2d_backward(dy, cache, need_dx=True, need_dw=True, need_db=True):
    """Gradients ``(dx, dw, db)`` of the grouped convolution; None where not needed."""
    xp = array_module(dy)
    caches, f_out = cache
    dxs, dws, dbs = [], [], []
    for k, group_cache in enumerate(caches):
        dx, dw, db = conv2d_backward(dy[:, k * f_out:(k + 1) * f_out], group_cache,
                                     need_dx, need_dw, need_db)
        dxs.append(dx)
        dws.append(dw)
        dbs.append(db)
    dx = xp.concatenate(dxs, axis=1) if need_dx else None
    dw = xp.concatenate(dws, axis=0) if need_dw else None
    db = xp.concatenate(dbs, axis=0) if need_db and dbs[0] is not None else None
    return dx, dw, db
