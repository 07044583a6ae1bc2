r"""Vanishing (and exploding) gradients in a deep plain stack, measured: the first obstacle to depth that the paper names ("the notorious problem of vanishing/exploding gradients", Section 1).

A deep MLP ``h_l = phi(W_l h_{l-1})`` backpropagates ``dL/dh_{l-1} = W_l^T (phi'(.) * dL/dh_l)``.
Each layer multiplies the gradient by a Jacobian; when its norm is below 1 on average (sigmoid:
``phi' <= 1/4``; naive small init) the gradient shrinks geometrically with depth, above 1 it
explodes. He initialisation (``Var[W] = 2/fan_in``) keeps ReLU stacks near 1; batch norm
re-normalises every layer's input. :func:`vanishing_gradients` builds such a stack with a chosen
activation, initialisation and normalisation and returns the gradient norm of each layer's weight.
"""
from __future__ import annotations

import math

from .. import creation, nn
from ..devices import backend
from ..nn import functional as F
from ..random import manual_seed
from .norms import array_norm

ACTIVATIONS = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU}
INITS = ("naive", "xavier", "he")


def deep_mlp(depth: int = 20, width: int = 64, activation: str = "sigmoid", init: str = "naive",
             batch_norm: bool = False, in_features: int = 32, num_classes: int = 10,
             naive_std: float = 0.01) -> nn.Sequential:
    """A plain ``depth``-layer MLP. ``init``: "naive" (normal, std ``naive_std``), "xavier"
    (``2/(fan_in+fan_out)``) or "he" (``2/fan_in``)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    layers = []
    fan_in = in_features
    for i in range(depth):
        last = i == depth - 1
        lin = nn.Linear(fan_in, num_classes if last else width)
        if init == "naive":
            nn.init.normal_(lin.weight, 0.0, naive_std)
        elif init == "xavier":
            nn.init.xavier_normal_(lin.weight)
        else:
            nn.init.kaiming_normal_(lin.weight)
        nn.init.zeros_(lin.bias)          # the experiment varies the weights' init only
        layers.append(lin)
        if not last:
            if batch_norm:
                layers.append(nn.BatchNorm1d(width))
            layers.append(ACTIVATIONS[activation]())
        fan_in = width
    return nn.Sequential(*layers)


def vanishing_gradients(depth: int = 20, width: int = 64, activation: str = "sigmoid",
                        init: str = "naive", batch_norm: bool = False, batch_size: int = 128,
                        seed: int = 0, device=None) -> list[float]:
    """Gradient norm of every Linear weight (input side first) for one batch of random data."""
    manual_seed(seed)
    device = device if device is not None else backend.default_device()
    model = deep_mlp(depth, width, activation, init, batch_norm).to(device)
    x = creation.randn(batch_size, 32, device=device)
    y = creation.randint(0, 10, (batch_size,), device=device)
    F.cross_entropy(model(x), y).backward()
    return [array_norm(m.weight.grad.array) for m in model if isinstance(m, nn.Linear)]


def decay_per_layer(norms: list[float]) -> float:
    """The geometric mean factor by which the gradient norm changes per layer, going backwards
    (below 1: vanishing towards the input)."""
    norms = [n for n in norms if n > 0]
    if len(norms) < 2:
        return math.nan
    return (norms[0] / norms[-1]) ** (1.0 / (len(norms) - 1))
