"""The neural-network operations: thin graph nodes around the kernels in ``minires.kernels``,
plus the input checks that turn a bad call into a clear error instead of a broadcasting accident.
"""
from __future__ import annotations

import numpy

from .. import configuration
from ..devices import backend
from ..autograd import Function, Tensor
from ..kernels import conv as conv_kernel
from ..kernels import group_norm as group_norm_kernel
from ..kernels import grouped_conv as grouped_conv_kernel
from ..kernels import loss as loss_kernel
from ..kernels import norm as norm_kernel
from ..kernels import pool as pool_kernel
from .arguments import pair, pool_stride
from .linalg import _check_dtypes


def _check_input(op, x, ndim=4, what="(N, C, H, W)"):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(x).__name__}")
    if x.ndim != ndim:
        hint = " (add a batch dimension with x.unsqueeze(0))" if x.ndim == ndim - 1 else ""
        raise ValueError(f"{op}: expected a {ndim}-D input {what}, got shape {x.shape}{hint}")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating-point input, got {x.dtype}; use x.float()")


# --- the kernels that conv2d and batch norm run ---
# The dict is mr.config.kernels (one of the process-wide switches); this module, which imports the
# built-in kernels, puts them in. minires.course.use() swaps a student's implementation in for a
# while; each graph node keeps the kernel that ran its forward, so that its backward matches it.
ACTIVE_KERNELS = configuration.ACTIVE_KERNELS
ACTIVE_KERNELS.update({"conv2d": conv_kernel, "batch_norm": norm_kernel})


# --- conv2d ---

class Conv2d(Function):
    def forward(self, x, w, b, *, stride, padding, dilation):
        self.kernel = ACTIVE_KERNELS["conv2d"]
        y, self.cache = self.kernel.conv2d_forward(x, w, b, stride, padding, dilation)
        return y

    def backward(self, g):
        need = self.needs_input_grad
        return self.kernel.conv2d_backward(g, self.cache, need[0], need[1], need[2])


class GroupedConv2d(Function):
    def forward(self, x, w, b, *, stride, padding, dilation, groups):
        y, self.cache = grouped_conv_kernel.grouped_conv2d_forward(x, w, b, stride, padding,
                                                                   dilation, groups)
        return y

    def backward(self, g):
        need = self.needs_input_grad
        return grouped_conv_kernel.grouped_conv2d_backward(g, self.cache, need[0], need[1],
                                                           need[2])


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
           dilation=1, groups: int = 1) -> Tensor:
    """2-D convolution (cross-correlation, as in every framework), NCHW; weight (F, C, kh, kw)."""
    op = "conv2d"
    _check_input(op, input)
    if weight.ndim != 4:
        raise ValueError(f"{op}: weight must be (out_channels, in_channels, kh, kw), got "
                         f"{weight.shape}")
    groups = int(groups)
    if groups < 1 or weight.shape[0] % groups:
        raise ValueError(f"{op}: groups={groups} must be >= 1 and divide the weight's "
                         f"{weight.shape[0]} output channels (weight {weight.shape})")
    if weight.shape[1] * groups != input.shape[1]:
        raise ValueError(f"{op}: input has {input.shape[1]} channels (shape {input.shape}) but the "
                         f"weight {weight.shape} with groups={groups} expects "
                         f"{weight.shape[1] * groups}; check in_channels")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"{op}: bias shape {bias.shape} != ({weight.shape[0]},)")
    _check_dtypes(op, input, weight, bias)
    s, p, d = (pair(stride, "stride", op), pair(padding, "padding", op),
               pair(dilation, "dilation", op))
    if min(s) < 1 or min(d) < 1 or min(p) < 0:
        raise ValueError(f"{op}: stride and dilation must be >= 1 and padding >= 0, got "
                         f"stride={stride}, padding={padding}, dilation={dilation}")
    kh, kw = weight.shape[2:]
    for size, k, pad, dil, axis in ((input.shape[2], kh, p[0], d[0], "height"),
                                    (input.shape[3], kw, p[1], d[1], "width")):
        if dil * (k - 1) + 1 > size + 2 * pad:
            raise ValueError(
                f"{op}: the kernel ({kh}x{kw}, dilation {d}) is larger than the padded input "
                f"{axis} ({size} + 2*{pad}) for input {input.shape}; use a smaller kernel or more "
                f"padding")
    if groups > 1:
        return GroupedConv2d.apply(input, weight, bias, stride=s, padding=p, dilation=d,
                                   groups=groups)
    return Conv2d.apply(input, weight, bias, stride=s, padding=p, dilation=d)


# --- batch norm ---

class BatchNorm(Function):
    def forward(self, x, weight, bias, *, running_mean, running_var, training, momentum, eps):
        self.kernel = ACTIVE_KERNELS["batch_norm"]
        y, self.cache = self.kernel.batch_norm_forward(x, running_mean, running_var, weight, bias,
                                                       training, momentum, eps)
        return y

    def backward(self, g):
        need = self.needs_input_grad
        return self.kernel.batch_norm_backward(g, self.cache, need[0], need[1], need[2])


def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Batch normalisation over dim 1 of an (N, C) or (N, C, H, W) input (PyTorch's argument
    order). In training, uses batch statistics and updates the running buffers in place."""
    op = "batch_norm"
    if input.ndim not in (2, 4):
        raise ValueError(f"{op}: expected a 2-D (N, C) or 4-D (N, C, H, W) input, got shape "
                         f"{input.shape}")
    c = input.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        if t is not None and t.shape != (c,):
            raise ValueError(f"{op}: {name} has shape {t.shape} but the input {input.shape} has "
                             f"{c} channels; check num_features")
        if t is not None and t.device != input.device:   # before the in-place buffer update
            raise RuntimeError(f"{op}: input on {input.device}, {name} on {t.device}; move the "
                               f"module or the input with .to('{input.device}')")
    _check_dtypes(op, input, weight, bias, running_mean, running_var)
    if not training and (running_mean is None or running_var is None):
        raise ValueError(f"{op}: evaluation mode needs running_mean and running_var")
    if training:
        m = input.numel() // max(c, 1)
        if m <= 1:
            raise ValueError(f"{op}: expected more than 1 value per channel when training, got "
                             f"input shape {input.shape}")
    rm = running_mean.array if running_mean is not None else None
    rv = running_var.array if running_var is not None else None
    out = BatchNorm.apply(input, weight, bias, running_mean=rm, running_var=rv,
                          training=bool(training), momentum=float(momentum), eps=float(eps))
    if training:            # the running buffers were written in place: count it
        for buffer in (running_mean, running_var):
            if buffer is not None:
                buffer._bump_version()
    return out


# --- group norm ---

class GroupNorm(Function):
    def forward(self, x, num_groups, weight, bias, eps):
        y, self.cache = group_norm_kernel.group_norm_forward(x, num_groups, weight, bias, eps)
        return y

    def backward(self, g):
        need = self.needs_input_grad
        dx, dw, db = group_norm_kernel.group_norm_backward(g, self.cache, need[0], need[2],
                                                           need[3])
        return dx, None, dw, db, None


def group_norm(input: Tensor, num_groups: int, weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Group normalisation of an (N, C, ...) input over ``num_groups`` groups of channels
    (PyTorch's argument order), with an optional per-channel affine."""
    op = "group_norm"
    if not isinstance(input, Tensor) or input.ndim < 2:
        raise ValueError(f"{op}: expected an (N, C, ...) tensor, got "
                         f"{getattr(input, 'shape', type(input).__name__)}")
    c = input.shape[1]
    if num_groups < 1 or c % num_groups:
        raise ValueError(f"{op}: num_groups={num_groups} must divide the {c} channels of the "
                         f"input {input.shape}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.shape != (c,):
            raise ValueError(f"{op}: {name} has shape {t.shape} but the input {input.shape} has "
                             f"{c} channels; check num_channels")
    _check_dtypes(op, input, weight, bias)
    return GroupNorm.apply(input, int(num_groups), weight, bias, float(eps))


# --- pooling ---

class MaxPool2d(Function):

    def forward(self, x, *, kernel_size, stride, padding):
        y, self.cache = pool_kernel.max_pool2d_forward(x, kernel_size, stride, padding)
        return y

    def backward(self, g):
        return pool_kernel.max_pool2d_backward(g, self.cache)


class AvgPool2d(Function):

    def forward(self, x, *, kernel_size, stride, padding):
        y, self.cache = pool_kernel.avg_pool2d_forward(x, kernel_size, stride, padding)
        return y

    def backward(self, g):
        return pool_kernel.avg_pool2d_backward(g, self.cache)


class AdaptiveAvgPool2d(Function):

    def forward(self, x, *, output_size):
        y, self.cache = pool_kernel.adaptive_avg_pool2d_forward(x, output_size)
        return y

    def backward(self, g):
        return pool_kernel.adaptive_avg_pool2d_backward(g, self.cache)


def _pool_args(op, input, kernel_size, stride, padding):
    _check_input(op, input)
    k = pair(kernel_size, "kernel_size", op)
    s = pair(pool_stride(kernel_size, stride), "stride", op)
    p = pair(padding, "padding", op)
    if min(k) < 1 or min(s) < 1 or min(p) < 0:
        raise ValueError(f"{op}: kernel_size and stride must be >= 1, padding >= 0")
    if p[0] * 2 > k[0] or p[1] * 2 > k[1]:
        raise ValueError(f"{op}: padding {p} should be at most half the kernel size {k}")
    for size, kk, pp in ((input.shape[2], k[0], p[0]), (input.shape[3], k[1], p[1])):
        if kk > size + 2 * pp:
            raise ValueError(f"{op}: kernel {k} is larger than the padded input "
                             f"{input.shape[2:]} (padding {p})")
    return k, s, p


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0) -> Tensor:
    k, s, p = _pool_args("max_pool2d", input, kernel_size, stride, padding)
    return MaxPool2d.apply(input, kernel_size=k, stride=s, padding=p)


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0) -> Tensor:
    k, s, p = _pool_args("avg_pool2d", input, kernel_size, stride, padding)
    return AvgPool2d.apply(input, kernel_size=k, stride=s, padding=p)


def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:
    _check_input("adaptive_avg_pool2d", input)
    o = pair(output_size, "output_size", "adaptive_avg_pool2d")
    if min(o) < 1:
        raise ValueError(f"adaptive_avg_pool2d: output_size must be >= 1, got {output_size}")
    return AdaptiveAvgPool2d.apply(input, output_size=o)


# --- losses ---

class LogSoftmax(Function):

    def forward(self, x, *, axis):
        y = loss_kernel.log_softmax(x, axis)
        self.save_for_backward(y)
        self.axis = axis
        return y

    def backward(self, g):
        xp = backend.array_module(g)
        (y,) = self.saved_tensors
        # d log_softmax: g - softmax * sum(g)
        return g - xp.exp(y) * g.sum(axis=self.axis, keepdims=True)


def log_softmax(input: Tensor, dim: int = -1) -> Tensor:
    return LogSoftmax.apply(input, axis=dim % input.ndim)


def softmax(input: Tensor, dim: int = -1) -> Tensor:
    from .elementwise import exp
    return exp(log_softmax(input, dim))


class CrossEntropy(Function):
    def forward(self, logits, target, *, reduction):
        loss, self.cache = loss_kernel.cross_entropy_forward(logits, target, reduction)
        return loss

    def backward(self, g):
        return loss_kernel.cross_entropy_backward(g, self.cache), None   # no gradient for target


def cross_entropy(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Softmax cross-entropy of logits (N, K) against integer class targets (N,), averaged over
    the batch by default (``reduction="mean" | "sum" | "none"``)."""
    op = "cross_entropy"
    if not isinstance(input, Tensor) or input.ndim != 2:
        raise ValueError(f"{op}: expected logits of shape (N, num_classes), got "
                         f"{getattr(input, 'shape', type(input).__name__)}")
    if input.dtype.kind != "f":
        raise TypeError(f"{op}: logits must be floating point, got {input.dtype}")
    if not isinstance(target, Tensor):
        raise TypeError(f"{op}: target must be a Tensor of class indices, got "
                        f"{type(target).__name__}; wrap it with mr.tensor(labels)")
    if target.dtype.kind not in "iu":
        raise TypeError(f"{op}: target must hold integer class indices (int64), got "
                        f"{target.dtype}; one-hot or float targets are not supported, use "
                        f"labels.long() or argmax(1)")
    if target.shape != (input.shape[0],):
        raise ValueError(f"{op}: target shape {target.shape} does not match the batch of logits "
                         f"{input.shape}; expected ({input.shape[0]},)")
    if target.device != input.device:
        raise RuntimeError(f"{op}: logits on {input.device}, target on {target.device}; move the "
                           f"target with .to('{input.device}')")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if target.numel():
        xp = target.xp
        lo, hi = backend.to_host(xp.stack([target.array.min(), target.array.max()])).tolist()
        if lo < 0 or hi >= input.shape[1]:
            raise ValueError(f"{op}: target values must be in [0, {input.shape[1] - 1}] for "
                             f"{input.shape[1]} classes, got values from {lo} to {hi}")
    if reduction == "mean" and input.shape[0] == 0:
        # the mean of no losses is 0/0: NaN, as in PyTorch (and a zero gradient of shape (0, K))
        return CrossEntropy.apply(input, target, reduction="sum") * float("nan")
    return CrossEntropy.apply(input, target, reduction=reduction)


def nll_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of log-probabilities (use after log_softmax)."""
    from .reduce import mean, sum as sum_
    from .shape import getitem
    picked = getitem(input, (Tensor._wrap(input.xp.arange(input.shape[0])), target))
    if reduction == "mean":
        return -mean(picked)
    if reduction == "sum":
        return -sum_(picked)
    return -picked


def mse_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    from .reduce import mean, sum as sum_
    diff = input - target
    sq = diff * diff
    return mean(sq) if reduction == "mean" else sum_(sq) if reduction == "sum" else sq


class Dropout(Function):

    def forward(self, x, *, mask, scale):
        self.mask = mask * scale
        return x * self.mask

    def backward(self, g):
        return g * self.mask


def dropout(input: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    if not 0 <= p < 1:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    if not training or p == 0:
        return input
    from ..random import host_generator
    mask = host_generator().random(input.shape) >= p
    mask = backend.to_device(mask.astype(input.dtype), input.device)
    return Dropout.apply(input, mask=mask, scale=input.xp.asarray(1.0 / (1 - p), dtype=input.dtype))
