r"""Parameter initialisers (in place, like ``torch.nn.init``), drawn on the host.

**He (Kaiming) initialisation** (He et al., 2015, the ResNet authors' own earlier paper): for a
layer followed by ReLU, drawing weights with variance ``2 / fan_in`` keeps the variance of the
activations constant from layer to layer, ``Var[y_l] = Var[y_{l-1}]``, so a deep stack neither
shrinks nor blows up its signal at the start. ``fan_in`` is ``in_channels * kh * kw`` for a
convolution (``fan_out`` uses ``out_channels``, as torchvision's ResNet does). It is the default
for minires' ``Conv2d`` and ``Linear``.

Values are drawn from minires' host generator and moved to the tensor's device, so one seed gives
one model on every device.
"""
from __future__ import annotations

import math

import numpy

from ..devices import backend
from ..autograd import Tensor, no_grad
from ..random import host_generator


def _fans(t: Tensor) -> tuple[int, int]:
    if t.ndim < 2:
        raise ValueError(f"fan in and fan out need a tensor with >= 2 dims, got shape {t.shape}")
    receptive = math.prod(t.shape[2:]) if t.ndim > 2 else 1
    return t.shape[1] * receptive, t.shape[0] * receptive


def calculate_gain(nonlinearity: str, param=None) -> float:
    gains = {"linear": 1.0, "conv2d": 1.0, "sigmoid": 1.0, "tanh": 5.0 / 3, "relu": math.sqrt(2)}
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity not in gains:
        raise ValueError(f"calculate_gain: unknown nonlinearity {nonlinearity!r}")
    return gains[nonlinearity]


def _fill(t: Tensor, host_values: numpy.ndarray) -> Tensor:
    with no_grad():
        t.array[...] = backend.to_device(host_values.astype(t.dtype), t.device)
    t._bump_version()               # written in place, as torch.nn.init: views see it
    return t


def kaiming_normal_(tensor: Tensor, a: float = 0, mode: str = "fan_in",
                    nonlinearity: str = "relu") -> Tensor:
    """Normal(0, std^2) with ``std = gain / sqrt(fan)``; gain sqrt(2) for ReLU."""
    fan_in, fan_out = _fans(tensor)
    fan = {"fan_in": fan_in, "fan_out": fan_out}.get(mode)
    if fan is None:
        raise ValueError(f"kaiming_normal_: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
    return _fill(tensor, host_generator().normal(0.0, std, tensor.shape))


def kaiming_uniform_(tensor: Tensor, a: float = 0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu") -> Tensor:
    fan_in, fan_out = _fans(tensor)
    fan = fan_in if mode == "fan_in" else fan_out
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / fan)
    return _fill(tensor, host_generator().uniform(-bound, bound, tensor.shape))


def xavier_normal_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    fan_in, fan_out = _fans(tensor)
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    return _fill(tensor, host_generator().normal(0.0, std, tensor.shape))


def xavier_uniform_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    fan_in, fan_out = _fans(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return _fill(tensor, host_generator().uniform(-bound, bound, tensor.shape))


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    return _fill(tensor, host_generator().normal(mean, std, tensor.shape))


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    return _fill(tensor, host_generator().uniform(a, b, tensor.shape))


def constant_(tensor: Tensor, val: float) -> Tensor:
    return _fill(tensor, numpy.full(tensor.shape, val))


def zeros_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 0.0)


def ones_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 1.0)
