r"""Matrix products.

For ``Y = A B`` with upstream ``dY``: ``dA = dY B^T`` and ``dB = A^T dY`` (batched over leading
axes, whose broadcasting is summed back like any other).

**linear** is ``y = x W^T + b`` with ``W`` (out, in), as in PyTorch: ``dx = dy W``,
``dW = dy^T x`` (summed over every leading axis of x), ``db = sum dy``.
"""
from __future__ import annotations

from ..autograd import Function, Tensor
from ..devices.backend import array_module
from .elementwise import as_operands, unbroadcast


class MatMul(Function):
    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a @ b

    def backward(self, g):
        xp = array_module(g)
        a, b = self.saved_tensors
        # 1-D operands are promoted to matrices, as matmul does, and demoted afterwards
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = g
        if b.ndim == 1:      # first: for 1-D @ 1-D, g is 0-d and becomes (1,), then (1, 1)
            g2 = xp.expand_dims(g2, -1)
        if a.ndim == 1:
            g2 = xp.expand_dims(g2, -2)
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = g2 @ xp.swapaxes(b2, -1, -2)
            ga = unbroadcast(ga, a2.shape).reshape(a.shape)
        if self.needs_input_grad[1]:
            gb = xp.swapaxes(a2, -1, -2) @ g2
            gb = unbroadcast(gb, b2.shape).reshape(b.shape)
        return ga, gb


def matmul(a, b) -> Tensor:
    a, b = as_operands(a, b, "matmul")
    if a.ndim == 0 or b.ndim == 0:
        raise RuntimeError("matmul: both operands need at least one dimension (use * for scalars)")
    ka = a.shape[-1]
    kb = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if ka != kb:
        raise RuntimeError(f"matmul: shapes {a.shape} and {b.shape} cannot be multiplied "
                           f"({ka} != {kb})")
    return MatMul.apply(a, b)


class Linear(Function):
    def forward(self, x, weight, bias=None):
        self.save_for_backward(x, weight)
        self.has_bias = bias is not None
        y = x @ weight.T
        if bias is not None:
            y += bias
        return y

    def backward(self, g):
        x, w = self.saved_tensors
        gx = g @ w if self.needs_input_grad[0] else None
        gw = None
        if self.needs_input_grad[1]:
            gw = g.reshape(-1, g.shape[-1]).T @ x.reshape(-1, x.shape[-1])
        gb = g.reshape(-1, g.shape[-1]).sum(axis=0) if self.has_bias else None
        return gx, gw, gb


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``y = input @ weight.T + bias``; input (..., in), weight (out, in), bias (out,)."""
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be (out_features, in_features), got {weight.shape}")
    if input.ndim < 1 or input.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear: input of shape {input.shape} has {input.shape[-1] if input.ndim else 0} "
            f"features but the weight {weight.shape} expects {weight.shape[1]}; flatten the input "
            f"first (x.flatten(1)) or fix in_features")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"linear: bias shape {bias.shape} != ({weight.shape[0]},)")
    _check_dtypes("linear", input, weight, bias)
    return Linear.apply(input, weight, bias)


def _check_dtypes(op, *tensors):
    dtypes = {t.dtype for t in tensors if t is not None}
    if len(dtypes) > 1:
        names = ", ".join(f"{t.dtype.name} {t.shape}" for t in tensors if t is not None)
        raise TypeError(f"{op}: mixed dtypes ({names}); convert the input with .float() or the "
                        f"model with .double() so that they agree")
