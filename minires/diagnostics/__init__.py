"""``minires.diagnostics``: measure and show what shortcuts do to the gradient.

* :func:`measure_gradient_flow`: per-layer gradient norms, the shortcut/branch split of every
  block's input gradient, and layer response std (the paper's Figure 7), for one batch;
* :class:`GradientTracker`: the same per-layer norms every k steps during training;
* :func:`vanishing_gradients`: the deep sigmoid/tanh MLP of problem 1 (vanishing gradients) of the paper review this project grew from;
* :mod:`.plots`: the figures.
"""
from .gradflow import (BlockFlow, GradientFlow, LayerResponse, ParamFlow,  # noqa: F401
                       measure_gradient_flow, path_gradients, weight_layers)
from .tracking import GradientTracker  # noqa: F401
from .vanishing import decay_per_layer, deep_mlp, vanishing_gradients  # noqa: F401
