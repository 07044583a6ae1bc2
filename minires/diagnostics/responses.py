r"""The paper's Figure 7: how strongly each 3x3 layer of a *trained* net responds.

He et al. (2015), section 4.2, "Analysis of Layer Responses": "The responses are the outputs of
each 3x3 layer, after BN and before other nonlinearity (ReLU/addition)." For a residual block
that is the output of its branch ``F(x)``: the size of what the block *adds* to its input. The
paper finds that "ResNets have generally smaller responses than their plain counterparts" and
that "the deeper ResNet has smaller magnitudes of responses".

Measured here on a trained model in **eval mode** (running batch-norm statistics) over held-out
images: for every batch-norm layer that follows a 3x3 convolution (the stem's and each branch's,
not a projection shortcut's), the standard deviation of its output over all images, channels
and positions,

.. math::  \sigma = \sqrt{\overline{y^2} - \bar y^{\,2}},

accumulated in float64 batch by batch.

Why not at initialisation, or in training mode: there batch norm normalises each batch, so every
response has std ``|gamma|`` = 1 (up to ``eps``) whatever the net: the measurement says nothing
about the net. :func:`layer_responses` refuses a model in training mode for that reason.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .. import nn
from ..devices import backend
from ..autograd import no_grad
from .gradflow import LayerResponse

TRAINING_MODE_NOTE = ("in training mode batch norm normalises each batch, so every response std "
                      "is |gamma| (1 at initialisation) whatever the net")


def response_layers(model: nn.Module) -> list[tuple[str, nn.BatchNorm2d]]:
    """The batch-norm layers that follow a 3x3 convolution, in depth order (the stem's and every
    branch's; projection shortcuts, 1x1, are left out)."""
    return [(name, m) for name, m in model.named_modules()
            if isinstance(m, nn.BatchNorm2d) and ".shortcut." not in f".{name}."]


@dataclass
class _Moments:
    """Running sums of ``y`` and ``y**2`` (float64, on the host) and the element count."""
    total: float = 0.0
    squares: float = 0.0
    count: int = 0

    def add(self, array) -> None:
        xp = backend.array_module(array)
        flat = array.reshape(-1).astype(xp.float64)
        self.total += float(backend.to_host(flat.sum()))
        self.squares += float(backend.to_host(flat @ flat))
        self.count += flat.size

    def std(self) -> float:
        mean = self.total / self.count
        return math.sqrt(max(self.squares / self.count - mean * mean, 0.0))


def layer_responses(model: nn.Module, batches) -> list[LayerResponse]:
    """The std of each 3x3 layer's response (after batch norm, before the ReLU and the addition)
    of ``model`` in eval mode, over every image of ``batches`` (an iterable of image Tensors or of
    ``(images, labels)`` pairs, e.g. a ``DataLoader`` of held-out images, on the model's device).
    ``depth`` is the layer's 1-based position."""
    if model.training:
        raise ValueError(f"layer_responses: the model is in training mode ({TRAINING_MODE_NOTE});"
                         f" call model.eval() on a trained model first")
    layers = response_layers(model)
    moments = {name: _Moments() for name, _ in layers}
    handles = [m.register_forward_hook(
        lambda module, inputs, output, acc=moments[name]: acc.add(output.array))
        for name, m in layers]
    try:
        with no_grad():
            for batch in batches:
                model(batch[0] if isinstance(batch, (tuple, list)) else batch)
    finally:
        for h in handles:
            h.remove()
    if layers and not moments[layers[0][0]].count:
        raise ValueError("layer_responses: no images in `batches`")
    return [LayerResponse(name, depth, moments[name].std())
            for depth, (name, _) in enumerate(layers, start=1)]


def _mean(values) -> float:
    return sum(values) / len(values)


def _median(values) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def compare_responses(stds: dict[str, list[float]]) -> dict:
    """The paper's two claims, tested on measured stds (model name -> std per layer in depth
    order; plain and ResNet twins named ``plain<d>`` / ``resnet<d>``).

    * ``twins``: for each depth with both nets, the fraction of layers (same position) where the
      ResNet's std is below the plain net's, the mean stds, and ``resnet_smaller`` (mean and
      median both smaller): "ResNets have generally smaller responses than their plain
      counterparts";
    * ``deeper_resnet``: for each pair of ResNet depths, whether the deeper one's mean and median
      std are both smaller: "the deeper ResNet has smaller magnitudes of responses".
    """
    summary = {name: {"mean": _mean(v), "median": _median(v), "max": max(v), "layers": len(v)}
               for name, v in stds.items() if v}
    depths = sorted({int(n[len("resnet"):]) for n in summary if n.startswith("resnet")})
    twins = {}
    for d in sorted({int(n[len("plain"):]) for n in summary if n.startswith("plain")}):
        plain, res = stds.get(f"plain{d}"), stds.get(f"resnet{d}")
        if not plain or not res or len(plain) != len(res):
            continue
        below = sum(r < p for p, r in zip(plain, res))
        twins[str(d)] = {
            "layers_resnet_smaller": below, "layers": len(res),
            "fraction_resnet_smaller": below / len(res),
            "plain_mean": summary[f"plain{d}"]["mean"], "resnet_mean": summary[f"resnet{d}"]["mean"],
            "plain_median": summary[f"plain{d}"]["median"],
            "resnet_median": summary[f"resnet{d}"]["median"],
            "resnet_smaller": (summary[f"resnet{d}"]["mean"] < summary[f"plain{d}"]["mean"]
                               and summary[f"resnet{d}"]["median"]
                               < summary[f"plain{d}"]["median"])}
    deeper = {}
    for i, shallow in enumerate(depths):
        for deep in depths[i + 1:]:
            s, t = summary[f"resnet{shallow}"], summary[f"resnet{deep}"]
            deeper[f"resnet{deep}_vs_resnet{shallow}"] = {
                "deeper_mean": t["mean"], "shallower_mean": s["mean"],
                "deeper_median": t["median"], "shallower_median": s["median"],
                "deeper_smaller": t["mean"] < s["mean"] and t["median"] < s["median"]}
    return {"summary": summary, "twins": twins, "deeper_resnet": deeper}
