"""``minires.nn.functional`` (``import minires.nn.functional as F``): the operations as functions,
with PyTorch's names and keyword arguments. The kernels themselves live in ``minires.kernels``."""
from ..ops import (adaptive_avg_pool2d, avg_pool2d, batch_norm, conv2d, cross_entropy,  # noqa
                   dropout, group_norm, linear, log_softmax, max_pool2d, mse_loss, nll_loss, pad,
                   relu, sigmoid, softmax, tanh, zero_pad_shortcut)
from ..ops.shape import flatten  # noqa: F401


def global_avg_pool2d(input):
    """Average over the spatial axes: (N, C, H, W) -> (N, C)."""
    return adaptive_avg_pool2d(input, 1).flatten(1)
