"""``minires.nn``: modules, layers, initialisers and the functional API, shaped after torch.nn."""
from . import functional, init, parallel  # noqa: F401
from .layers import (AdaptiveAvgPool2d, AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d,  # noqa
                     CrossEntropyLoss, Dropout, Flatten, GroupNorm, Identity, LazyBatchNorm2d,
                     LazyConv2d, LazyLinear, Linear, MaxPool2d, ModuleList, MSELoss, ReLU,
                     Sequential, Sigmoid, Tanh)
from .module import Module, Parameter  # noqa: F401
from .parallel import DataParallel  # noqa: F401
from .sync_batchnorm import SyncBatchNorm  # noqa: F401
