"""Reverse-mode automatic differentiation: ``Tensor``, ``Function`` and ``backward``.

Operations on tensors that require grad record a graph whose nodes are ``Function`` objects (and
the leaf tensors at its start); ``L.backward()`` walks it from ``L`` back to the leaves. One job
per module, each built only on those above it:

- :mod:`~minires.autograd.grad_mode`: ``no_grad``, ``enable_grad``, ``set_grad_enabled``,
  ``inference_mode``;
- :mod:`~minires.autograd.tensor`: ``Tensor`` (its fields and accessors) and ``Size``;
- :mod:`~minires.autograd.anomaly`: ``detect_anomaly``, ``set_detect_anomaly`` and their checks;
- :mod:`~minires.autograd.function`: ``Function``, one node of the graph, and what it records;
- :mod:`~minires.autograd.engine`: the backward pass (``Tensor.backward``, ``grad``).

The dtypes live in :mod:`minires.dtypes`. The arithmetic methods of ``Tensor`` (``+``, ``@``,
``.sum()`` ...) are attached by ``minires.ops``, which builds on this package.
"""
from ..dtypes import as_dtype, bool_, float16, float32, float64, int32, int64  # noqa: F401
from .anomaly import detect_anomaly, is_anomaly_enabled, set_detect_anomaly  # noqa: F401
from .engine import grad, run_backward  # noqa: F401
from .function import AccumulateGrad, Function  # noqa: F401
from .grad_mode import (enable_grad, inference_mode, is_grad_enabled,  # noqa: F401
                        is_inference_mode_enabled, no_grad, set_grad_enabled)
from .tensor import Size, Tensor, Variable, parse_to_args, zero_grads  # noqa: F401
