"""``use(student)``: run minires's conv2d and batch norm on the student's own kernels.

minires's graph nodes call whatever ``mr.config.kernels`` (``minires.ops.nn_ops.ACTIVE_KERNELS``)
holds when their forward runs. Within ``with mr.course.use(my_kernels):`` that is an adapter from the student's contract
(``conv2d_forward(x, w, b, stride, padding)``, ``batch_norm_forward(x, gamma, beta, eps)``, ...)
to the kernel interface minires uses (pairs of strides and paddings, an optional bias, the
running statistics), so any model, ``models.resnet20()`` included, trains on the student's code::

    with mr.course.use(my_kernels):
        loss = F.cross_entropy(model(x), y)
        loss.backward()                  # through the student's conv2d_backward, batch_norm_backward

Batch norm's running statistics and eval mode use the student's ``batch_norm_update_running`` and
``batch_norm_eval_forward``/``batch_norm_eval_backward`` when they are defined, minires's kernel
otherwise; 2-D (N, C) batch norm always runs on minires's kernel (the contract is 4-D).
"""
from __future__ import annotations

import contextlib

from ..devices.backend import array_module
from ..kernels import norm as norm_kernel
from ..ops import nn_ops
from .verdict import MissingFunctionError, lookup


def _cast(array, like):
    """The student's result in the dtype minires expects (training runs in float32)."""
    return None if array is None else array.astype(like.dtype, copy=False)


class StudentConv:
    """minires's conv2d kernel interface over the student's ``conv2d_forward``/``_backward``."""

    def __init__(self, student):
        self.forward_fn = lookup(student, "conv2d_forward")
        self.backward_fn = lookup(student, "conv2d_backward")

    def conv2d_forward(self, x, w, b, stride, padding, dilation):
        if stride[0] != stride[1] or padding[0] != padding[1] or tuple(dilation) != (1, 1):
            raise NotImplementedError(
                f"conv2d with stride {stride}, padding {padding}, dilation {dilation}: the "
                f"student's conv2d_forward takes one int stride and padding and no dilation")
        bias = b if b is not None else array_module(x).zeros(w.shape[0], dtype=x.dtype)
        y, cache = self.forward_fn(x, w, bias, stride[0], padding[0])
        return _cast(y, x), (cache, x, w, b)

    def conv2d_backward(self, dy, cache, need_dx=True, need_dw=True, need_db=True):
        student_cache, x, w, b = cache
        dx, dw, db = self.backward_fn(dy, student_cache)
        return (_cast(dx, x) if need_dx else None, _cast(dw, w) if need_dw else None,
                _cast(db, b) if (need_db and b is not None) else None)


class StudentBatchNorm:
    """minires's batch-norm kernel interface over the student's batch norm functions."""

    def __init__(self, student):
        self.student = student

    def batch_norm_forward(self, x, running_mean, running_var, weight, bias, training,
                           momentum=0.1, eps=1e-5):
        fn = self.student_fn("batch_norm_forward" if training else "batch_norm_eval_forward")
        if x.ndim != 4 or fn is None:
            y, cache = norm_kernel.batch_norm_forward(x, running_mean, running_var, weight, bias,
                                                      training, momentum, eps)
            return y, ("minires", cache, x, weight, bias)
        xp = array_module(x)
        gamma = weight if weight is not None else xp.ones(x.shape[1], dtype=x.dtype)
        beta = bias if bias is not None else xp.zeros(x.shape[1], dtype=x.dtype)
        if training:
            y, cache = fn(x, gamma, beta, eps)
            if running_mean is not None and running_var is not None:
                self.update_running(running_mean, running_var, x, momentum, eps)
            kind = "batch_norm_backward"
        else:
            y, cache = fn(x, gamma, beta, running_mean, running_var, eps)
            kind = "batch_norm_eval_backward"
        return _cast(y, x), (kind, cache, x, weight, bias)

    def update_running(self, running_mean, running_var, x, momentum, eps):
        update = self.student_fn("batch_norm_update_running")
        if update is None:     # minires's kernel updates the buffers in place
            norm_kernel.batch_norm_forward(x, running_mean, running_var, None, None, True,
                                           momentum, eps)
            return
        new_mean, new_var = update(running_mean, running_var, x, momentum)
        running_mean[...] = new_mean
        running_var[...] = new_var

    def batch_norm_backward(self, dy, cache, need_dx=True, need_dweight=True, need_dbias=True):
        kind, inner, x, weight, bias = cache
        if kind == "minires":
            return norm_kernel.batch_norm_backward(dy, inner, need_dx, need_dweight, need_dbias)
        dx, dgamma, dbeta = self.student_fn(kind)(dy, inner)
        return (_cast(dx, x) if need_dx else None,
                _cast(dgamma, weight) if (need_dweight and weight is not None) else None,
                _cast(dbeta, bias) if (need_dbias and bias is not None) else None)

    def student_fn(self, name):
        fn = lookup(self.student, name)
        if fn is None and name == "batch_norm_eval_backward" and \
                lookup(self.student, "batch_norm_eval_forward") is not None:
            raise MissingFunctionError("batch_norm_eval_forward is defined but "
                                       "batch_norm_eval_backward is not")
        return fn


@contextlib.contextmanager
def use(student, conv2d: bool = True, batch_norm: bool = True):
    """Within the ``with`` block, minires's conv2d and batch norm run the student's functions.

    ``student``: a module, an object or a dict (a notebook's ``globals()``) with
    ``conv2d_forward``/``conv2d_backward`` and/or ``batch_norm_forward``/``batch_norm_backward``.
    ``conv2d=False`` or ``batch_norm=False`` keeps minires's own kernel for that one. Yields the
    names of the kernels that were swapped in.
    """
    chosen = {}
    if conv2d and lookup(student, "conv2d_forward") and lookup(student, "conv2d_backward"):
        chosen["conv2d"] = StudentConv(student)
    if batch_norm and lookup(student, "batch_norm_forward") and \
            lookup(student, "batch_norm_backward"):
        chosen["batch_norm"] = StudentBatchNorm(student)
    if not chosen:
        raise MissingFunctionError(
            "use(): found neither conv2d_forward and conv2d_backward nor batch_norm_forward and "
            "batch_norm_backward in the student's code (or both were turned off)")
    saved = dict(nn_ops.ACTIVE_KERNELS)
    nn_ops.ACTIVE_KERNELS.update(chosen)
    try:
        yield tuple(chosen)
    finally:
        nn_ops.ACTIVE_KERNELS.clear()
        nn_ops.ACTIVE_KERNELS.update(saved)
