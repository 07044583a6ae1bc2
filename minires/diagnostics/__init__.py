"""``minires.diagnostics``: measure and show what shortcuts do to the gradient.

* :func:`measure_gradient_flow`: per-layer gradient norms, the shortcut/branch split of every
  block's input gradient, and layer response std (the paper's Figure 7), for one batch;
* :class:`GradientTracker`: the same per-layer norms every k steps during training;
* :func:`vanishing_gradients`: the deep sigmoid/tanh MLP whose gradient vanishes (the paper's first obstacle to depth, notebook 03);
* :func:`lesion`: delete blocks at test time (Veit et al. 2016);
* :func:`loss_landscape`: the loss along filter-normalised random directions (Li et al. 2018);
* :mod:`.plots`, :mod:`.lesion_plots`, :mod:`.landscape_plots`: the figures.
"""
from .gradflow import (BlockFlow, GradientFlow, LayerResponse, ParamFlow,  # noqa: F401
                       measure_gradient_flow, path_gradients, weight_layers)
from .landscape import (Landscape, filter_normalized_direction,  # noqa: F401
                        loss_landscape)
from .lesion import BlockLesion, LesionResult, block_lesions, deleted_blocks, lesion  # noqa: F401
from .tracking import GradientTracker  # noqa: F401
from .vanishing import decay_per_layer, deep_mlp, vanishing_gradients  # noqa: F401
