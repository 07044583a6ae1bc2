"""The layers of the public API (PyTorch's names and signatures), each a small ``Module`` around a functional op.

Conv2d and Linear start as PyTorch's do (``reset_parameters``): weight ``kaiming_uniform_`` with
``a = sqrt(5)``, i.e. uniform in +-1/sqrt(fan_in), and bias uniform in +-1/sqrt(fan_in); so a
PyTorch program behaves the same under minires. The ResNet paper's He initialisation is applied
explicitly by the models (:func:`minires.models.resnet.init_he_`), as torchvision's ResNet does.
BatchNorm2d starts at weight 1, bias 0, running mean 0 and running variance 1, as in PyTorch.
"""
from __future__ import annotations

import math
from collections import OrderedDict

import numpy

from .. import creation
from ..devices import backend
from ..autograd import Tensor
from ..ops.arguments import pair, pool_stride
from . import functional as F
from . import init
from .module import Module, Parameter


def _param(shape, dtype, device):
    return Parameter(creation.zeros(*shape, dtype=dtype, device=device).array)


class _WeightAndBias(Module):
    """A layer with a weight (output dim first) and an optional bias, initialised as PyTorch's
    Conv2d and Linear are (see the module docstring)."""

    def _create_parameters(self, weight_shape, bias: bool, dtype, device):
        self.weight = _param(weight_shape, dtype, device)
        if bias:
            self.bias = _param((weight_shape[0],), dtype, device)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = math.prod(self.weight.shape[1:])
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)


class Conv2d(_WeightAndBias):
    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, dtype=None, device=None):
        super().__init__()
        if in_channels <= 0 or out_channels <= 0:
            raise ValueError(f"Conv2d: channels must be positive, got {in_channels}, "
                             f"{out_channels}")
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: groups={groups} must divide in_channels={in_channels} "
                             f"and out_channels={out_channels}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = pair(kernel_size, "kernel_size", "Conv2d")
        self.stride = pair(stride, "stride", "Conv2d")
        self.padding = pair(padding, "padding", "Conv2d")
        self.dilation = pair(dilation, "dilation", "Conv2d")
        self._create_parameters((out_channels, in_channels // groups, *self.kernel_size), bias,
                                dtype, device)

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                        self.groups)

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, " \
            f"stride={self.stride}"
        if any(self.padding):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class Linear(_WeightAndBias):
    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype=None,
                 device=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self._create_parameters((out_features, in_features), bias, dtype, device)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, " \
               f"bias={self.bias is not None}"


class _BatchNorm(Module):
    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 affine: bool = True, track_running_stats: bool = True, dtype=None, device=None):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self._create_state(num_features, dtype, device)

    def _create_state(self, num_features, dtype, device):
        affine, track_running_stats = self.affine, self.track_running_stats
        if affine:
            self.weight = _param((num_features,), dtype, device)
            self.bias = _param((num_features,), dtype, device)
            init.ones_(self.weight)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", creation.zeros(num_features, dtype=dtype,
                                                                device=device))
            self.register_buffer("running_var", creation.ones(num_features, dtype=dtype,
                                                              device=device))
            self.register_buffer("num_batches_tracked",
                                 creation.zeros(1, dtype=numpy.int64, device=device).reshape(()))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)

    _expected_ndim = (2, 4)

    def forward(self, x):
        if x.ndim not in self._expected_ndim:
            raise ValueError(f"{type(self).__name__}: expected a {self._expected_ndim[-1]}-D "
                             f"input, got shape {x.shape}")
        # training: batch statistics (and the running ones updated); evaluation: the running
        # statistics, or the batch's when the layer keeps none (track_running_stats=False)
        use_batch_stats = self.training or self.running_mean is None
        if self.training and self.running_mean is not None:
            self.num_batches_tracked.array += 1
            self.num_batches_tracked._bump_version()
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            use_batch_stats, self.momentum, self.eps)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, " \
               f"affine={self.affine}"


class BatchNorm2d(_BatchNorm):
    """Batch norm over the channels of an (N, C, H, W) input."""
    _expected_ndim = (4,)


class BatchNorm1d(_BatchNorm):
    """Batch norm over the features of an (N, C) input."""
    _expected_ndim = (2,)


class GroupNorm(Module):
    """Group normalisation (``F.group_norm``): statistics per sample over ``num_groups`` groups of
    channels; weight 1 and bias 0 at the start, as in PyTorch."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5,
                 affine: bool = True, dtype=None, device=None):
        super().__init__()
        if num_groups < 1 or num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_groups={num_groups} must divide "
                             f"num_channels={num_channels}")
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, \
            eps, affine
        if affine:
            self.weight = _param((num_channels,), dtype, device)
            self.bias = _param((num_channels,), dtype, device)
            init.ones_(self.weight)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x):
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


# --- lazy layers: the input size is read from the first input (PyTorch's Lazy* modules) ---

class _Lazy:
    """Mixin: parameters are created at the first ``forward`` from the input's size, dtype and
    device; the module then becomes the ordinary layer (``cls_to_become``, as in PyTorch). Run
    one batch through the model *before* building the optimiser, which needs the parameters."""

    cls_to_become: type

    def has_uninitialized_params(self) -> bool:
        return type(self) is not self.cls_to_become

    def __call__(self, *args, **kwargs):
        if self.has_uninitialized_params():
            self.initialize_parameters(*args)
            self.__class__ = self.cls_to_become
        return Module.__call__(self, *args, **kwargs)

    # (state key, the input size it gives): what a checkpoint tells of the input, per layer
    _sizing_keys: tuple = ()

    def materialize_from_state(self, state_dict, prefix: str) -> None:
        """Create the parameters with the sizes a checkpoint's entries have (``load_state_dict``
        into a model whose lazy modules never saw an input, as PyTorch materialises an
        uninitialised parameter on load); nothing when the checkpoint lacks them."""
        for key, input_size in self._sizing_keys:
            value = state_dict.get(prefix + key)
            if value is None or not hasattr(value, "shape"):
                continue
            array = getattr(value, "array", value)
            self.initialize_parameters(_InputLike(input_size(self, tuple(value.shape)),
                                                  array.dtype, backend.device_of_array(array)))
            self.__class__ = self.cls_to_become
            return


class _InputLike:
    """What ``initialize_parameters`` reads of an input (its shape, dtype and device), without
    the data: the input a checkpoint implies."""

    def __init__(self, shape, dtype, device):
        self.shape, self.dtype, self.device = shape, dtype, device


class LazyConv2d(_Lazy, Conv2d):
    """``Conv2d`` whose ``in_channels`` is the channel count of its first input."""
    cls_to_become = Conv2d
    _sizing_keys = (("weight", lambda self, w: (1, w[1] * self.groups, 1, 1)),)

    def __init__(self, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, dtype=None, device=None):
        Module.__init__(self)
        self.in_channels, self.out_channels, self.groups = 0, out_channels, groups
        self.kernel_size = pair(kernel_size, "kernel_size", "LazyConv2d")
        self.stride = pair(stride, "stride", "LazyConv2d")
        self.padding = pair(padding, "padding", "LazyConv2d")
        self.dilation = pair(dilation, "dilation", "LazyConv2d")
        self._has_bias, self._dtype, self._device = bias, dtype, device
        self.register_parameter("weight", None)
        self.register_parameter("bias", None)

    def initialize_parameters(self, x, *rest):
        self.in_channels = x.shape[1]
        if self.in_channels % self.groups:
            raise ValueError(f"LazyConv2d: groups={self.groups} does not divide the input's "
                             f"{self.in_channels} channels (input {x.shape})")
        self._create_parameters((self.out_channels, self.in_channels // self.groups,
                                 *self.kernel_size), self._has_bias,
                                self._dtype or x.dtype, self._device or x.device)


class LazyLinear(_Lazy, Linear):
    """``Linear`` whose ``in_features`` is the last dim of its first input."""
    cls_to_become = Linear
    _sizing_keys = (("weight", lambda self, w: (1, w[1])),)

    def __init__(self, out_features: int, bias: bool = True, dtype=None, device=None):
        Module.__init__(self)
        self.in_features, self.out_features = 0, out_features
        self._has_bias, self._dtype, self._device = bias, dtype, device
        self.register_parameter("weight", None)
        self.register_parameter("bias", None)

    def initialize_parameters(self, x, *rest):
        self.in_features = x.shape[-1]
        self._create_parameters((self.out_features, self.in_features), self._has_bias,
                                self._dtype or x.dtype, self._device or x.device)


class LazyBatchNorm2d(_Lazy, BatchNorm2d):
    """``BatchNorm2d`` whose ``num_features`` is the channel count of its first input."""
    cls_to_become = BatchNorm2d
    _sizing_keys = (("weight", lambda self, w: (1, w[0], 1, 1)),
                    ("running_mean", lambda self, m: (1, m[0], 1, 1)))

    def __init__(self, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True,
                 track_running_stats: bool = True, dtype=None, device=None):
        Module.__init__(self)
        self.num_features, self.eps, self.momentum = 0, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self._dtype, self._device = dtype, device

    def initialize_parameters(self, x, *rest):
        self.num_features = x.shape[1]
        self._create_state(self.num_features, self._dtype or x.dtype, self._device or x.device)


class ReLU(Module):
    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x):
        return F.relu(x, inplace=self.inplace)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class Sigmoid(Module):
    def forward(self, x):
        return F.sigmoid(x)


class Tanh(Module):
    def forward(self, x):
        return F.tanh(x)


class _Pool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, " \
               f"stride={pool_stride(self.kernel_size, self.stride)}, " \
               f"padding={self.padding}"


class MaxPool2d(_Pool2d):
    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding)


class AvgPool2d(_Pool2d):
    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding)


class AdaptiveAvgPool2d(Module):
    def __init__(self, output_size=1):
        super().__init__()
        self.output_size = output_size

    def forward(self, x):
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class Flatten(Module):
    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return x.flatten(self.start_dim, self.end_dim)


class Identity(Module):
    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x


class Dropout(Module):
    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = p

    def forward(self, x):
        return F.dropout(x, self.p, self.training)


class CrossEntropyLoss(Module):
    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, input, target):
        return F.cross_entropy(input, target, reduction=self.reduction)


class MSELoss(Module):
    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)


class Sequential(Module):
    """Modules applied in order; built from modules or from an ``OrderedDict`` of named ones."""

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], (OrderedDict, dict)):
            for name, m in modules[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(modules):
                self.add_module(str(i), m)

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x

    def __getitem__(self, index):
        items = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(*items[index])
        return items[index]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module: Module) -> "Sequential":
        self.add_module(str(len(self._modules)), module)
        return self


class ModuleList(Module):
    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module):
        self.add_module(str(len(self._modules)), module)
        return self

    def __getitem__(self, i):
        items = list(self._modules.values())
        return ModuleList(items[i]) if isinstance(i, slice) else items[i]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


__all__ = ["Conv2d", "Linear", "BatchNorm1d", "BatchNorm2d", "GroupNorm", "LazyConv2d",
           "LazyLinear", "LazyBatchNorm2d", "ReLU", "Sigmoid", "Tanh",
           "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "Flatten", "Identity", "Dropout",
           "CrossEntropyLoss", "MSELoss", "Sequential", "ModuleList", "Tensor"]
