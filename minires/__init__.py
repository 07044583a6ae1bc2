"""minires: a from-scratch deep-learning framework for teaching the ResNet paper.

``import minires as mr`` gives tensors with reverse-mode autograd on NumPy ("cpu"), CuPy ("cuda")
or a strict CPU stand-in for GPU semantics ("strict"); ``minires.nn``, ``minires.optim`` and
``minires.nn.functional`` are shaped after PyTorch.
"""
__version__ = "0.1.0"

from .configuration import Config, config  # noqa: F401  (print(mr.config): every switch)
from .compat import cuda  # noqa: F401
from .devices import backend  # noqa: F401
from . import ops as _ops  # noqa: F401  (attaches Tensor methods)
from .autograd import (Size, Tensor, enable_grad, grad, inference_mode,  # noqa: F401
                       is_grad_enabled, is_inference_mode_enabled, no_grad, set_grad_enabled)
from .devices.backend import Device, DeviceError  # noqa: F401
from .creation import (arange, as_tensor, empty, eye, from_numpy, full, ones, ones_like,  # noqa
                       rand, randint, randn, tensor, zeros, zeros_like)
from .dtypes import bool_, float16, float32, float64, int32, int64  # noqa: F401
from .gradcheck import GradcheckError, gradcheck  # noqa: F401
from .ops import (abs, cat, clamp, clone, exp, flatten, log, matmul, max, mean, min,  # noqa
                  permute, relu, reshape, sigmoid, sqrt, stack, sum, tanh, transpose, where,
                  argmax, argmin, topk, eq, ne)
from .random import manual_seed  # noqa: F401
from .kernels.workers import get_num_threads, set_num_threads  # noqa: F401


def device(name: str) -> Device:
    """Parse a device name: ``mr.device("cuda:0")``."""
    return backend.normalize_device(name)


def __getattr__(name):
    # the higher layers load on first use, so `import minires` stays light and acyclic
    import importlib
    if name in ("nn", "optim", "models", "data", "diagnostics", "train", "serialization",
                "utils", "backends", "accelerator", "course", "viz"):
        return importlib.import_module(f".{name}", __name__)
    if name in ("save", "load"):
        return getattr(importlib.import_module(".serialization", __name__), name)
    raise AttributeError(f"module 'minires' has no attribute {name!r}")
