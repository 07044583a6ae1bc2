r"""The building blocks of plain and residual nets (He et al., 2015, sections 3.2-3.3 and 4).

A block computes a *branch* ``F(x)`` (convolutions, each followed by batch norm, ReLU between
them). A **plain** block outputs ``relu(F(x))``. A **residual** block adds a *shortcut*:

.. math::  y = \mathrm{relu}(F(x, \{W_i\}) + x) \quad\text{or}\quad
           y = \mathrm{relu}(F(x, \{W_i\}) + W_s x)\ \text{when dimensions change.}

Backward through the addition, ``dL/dx = dL/dF * dF/dx + dL/d(shortcut)``: the identity path
hands the gradient to ``x`` unchanged, whatever the branch does. That is why deep residual nets
keep training where plain ones stop.

Shortcut options when the dimensions increase (the paper's A, B, C):

* **A**: identity, subsampled by the stride, with zero-padded extra channels: no parameters;
* **B**: a 1x1 projection (stride 2) + BN where the dimensions change, identity elsewhere;
* **C**: projections on every shortcut.

``branch`` and ``shortcut`` are separate submodules so that diagnostics can hook each path.
"""
from __future__ import annotations

from collections import OrderedDict

from .. import nn
from ..nn import functional as F

SHORTCUT_OPTIONS = ("A", "B", "C")


class ZeroPadShortcut(nn.Module):
    """Option A: ``x[:, :, ::stride, ::stride]`` with zero channels appended; no parameters."""

    def __init__(self, out_channels: int, stride: int):
        super().__init__()
        self.out_channels, self.stride = out_channels, stride

    def forward(self, x):
        return F.zero_pad_shortcut(x, self.out_channels, self.stride)

    def extra_repr(self):
        return f"out_channels={self.out_channels}, stride={self.stride}"


def projection(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """Options B/C: ``W_s x`` as a 1x1 convolution (no bias) followed by batch norm."""
    return nn.Sequential(OrderedDict([
        ("conv", nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)),
        ("bn", nn.BatchNorm2d(out_channels)),
    ]))


def make_shortcut(in_channels: int, out_channels: int, stride: int, option: str) -> nn.Module:
    """The shortcut of a residual block for one of the paper's options."""
    option = option.upper()
    if option not in SHORTCUT_OPTIONS:
        raise ValueError(f"shortcut option must be one of A, B, C, got {option!r}")
    changes = stride != 1 or in_channels != out_channels
    if option == "C" or (option == "B" and changes):
        return projection(in_channels, out_channels, stride)
    if changes:
        return ZeroPadShortcut(out_channels, stride)
    return nn.Identity()


class Block(nn.Module):
    """A plain or residual block: ``relu(branch(x) [+ shortcut(x)])``."""

    expansion = 1

    def __init__(self, branch: nn.Module, shortcut: nn.Module | None):
        super().__init__()
        self.branch = branch
        if shortcut is not None:
            self.shortcut = shortcut
        self.relu = nn.ReLU()

    @property
    def residual(self) -> bool:
        return "shortcut" in self._modules

    def forward(self, x):
        out = self.branch(x)
        if self.residual:
            out = out + self.shortcut(x)
        return self.relu(out)


def _conv_bn(in_c, out_c, k, stride, name):
    return [(f"conv{name}", nn.Conv2d(in_c, out_c, k, stride=stride, padding=k // 2, bias=False)),
            (f"bn{name}", nn.BatchNorm2d(out_c))]


class BasicBlock(Block):
    """Two 3x3 convolutions (the first one may stride): ResNet-18/34 and the CIFAR nets."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1, residual: bool = True,
                 shortcut: str = "A"):
        branch = nn.Sequential(OrderedDict(
            _conv_bn(in_channels, channels, 3, stride, "1") + [("relu1", nn.ReLU())]
            + _conv_bn(channels, channels, 3, 1, "2")))
        sc = make_shortcut(in_channels, channels, stride, shortcut) if residual else None
        super().__init__(branch, sc)


class Bottleneck(Block):
    """1x1 reduce, 3x3 (which strides), 1x1 expand by 4: ResNet-50/101/152."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1, residual: bool = True,
                 shortcut: str = "B"):
        out = channels * self.expansion
        branch = nn.Sequential(OrderedDict(
            _conv_bn(in_channels, channels, 1, 1, "1") + [("relu1", nn.ReLU())]
            + _conv_bn(channels, channels, 3, stride, "2") + [("relu2", nn.ReLU())]
            + _conv_bn(channels, out, 1, 1, "3")))
        sc = make_shortcut(in_channels, out, stride, shortcut) if residual else None
        super().__init__(branch, sc)
