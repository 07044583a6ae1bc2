"""Differentiable operations on tensors (graph nodes around the kernels), and the arithmetic
methods of :class:`~minires.autograd.Tensor`.

``minires.autograd`` holds only the engine; this package attaches ``+ - * / @ **``, indexing,
``sum``/``mean``/``max``, ``reshape``/``transpose``/... to ``Tensor`` (see :mod:`.methods`), so the
engine never imports the operations built on it.
"""
from .elementwise import (abs, add, cast, clamp, div, eq, exp, ge, gt, identity, le, log, lt,
                          mul, ne, neg, pow, relu, sigmoid, sqrt, sub, tanh, transfer, unbroadcast, where)
from .linalg import linear, matmul
from .nn_ops import (adaptive_avg_pool2d, avg_pool2d, batch_norm, conv2d, cross_entropy, dropout,
                     group_norm, log_softmax, max_pool2d, mse_loss, nll_loss, softmax)
from .reduce import amax, argmax, argmin, max, mean, min, sum, topk
from .shape import (cat, clone, expand, flatten, getitem, pad, permute, reshape, squeeze, stack,
                    transpose, unsqueeze, view, zero_pad_shortcut)
from . import methods as _methods  # noqa: F401  (attaches the Tensor methods)
