"""Plain and residual networks: the CIFAR-10 nets of depth 6n+2 and the ImageNet nets 18-152.

Every model is a :class:`Network` with ``stem`` -> ``blocks`` (all blocks, in order) -> ``pool`` ->
``fc``. ``model.blocks[i]`` is a :class:`~minires.models.blocks.Block` with a ``branch`` and, when
residual, a ``shortcut``. The plain twin of a ResNet has exactly the same layers and no shortcuts.
"""
from __future__ import annotations

import contextlib
import math
import re
from collections import OrderedDict

from .. import nn
from ..random import get_rng_state, set_rng_state
from .blocks import BasicBlock, Bottleneck

IMAGENET_LAYOUTS = {18: (BasicBlock, (2, 2, 2, 2)), 34: (BasicBlock, (3, 4, 6, 3)),
                    50: (Bottleneck, (3, 4, 6, 3)), 101: (Bottleneck, (3, 4, 23, 3)),
                    152: (Bottleneck, (3, 8, 36, 3))}


class Network(nn.Module):
    """stem -> blocks -> global average pool -> fc."""

    def __init__(self, stem: nn.Module, blocks: list, features: int, num_classes: int, *,
                 name: str, depth: int, residual: bool, shortcut: str | None,
                 stage_starts: list[int]):
        super().__init__()
        self.stem = stem
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(features, num_classes)
        self.name, self.depth, self.residual = name, depth, residual
        self.shortcut_option = shortcut
        self.stage_starts = stage_starts

    def forward(self, x):
        if x.ndim != 4:
            raise ValueError(f"{self.name}: expected images (N, C, H, W), got shape {x.shape}")
        x = self.stem(x)
        x = self.blocks(x)
        return self.fc(self.flatten(self.pool(x)))

    def extra_repr(self):
        return f"name={self.name}, depth={self.depth}, residual={self.residual}" + \
            (f", shortcut={self.shortcut_option}" if self.residual else "")


def init_he_(model: nn.Module) -> nn.Module:
    """The paper's initialisation, applied explicitly (as torchvision's ResNet does): every
    convolution He-normal (``kaiming_normal_``, fan_in, ReLU gain; "Delving deep into
    rectifiers", which the paper cites for it) with a zero bias; every Linear PyTorch's default
    weight (uniform in +-1/sqrt(fan_in)) with a zero bias. Not He for the classifier: no ReLU
    follows it, and in a deep ResNet the features reaching it are already large (every block adds
    to them): with He init ResNet-56 started at a loss of 7.6, not ln 10 = 2.3."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
        elif isinstance(m, nn.Linear):
            nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5))
        else:
            continue
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    return model


@contextlib.contextmanager
def _paper_init():
    """Build a model, then :func:`init_he_` it with the random draws its layers' default
    initialisation made rewound: one seed then gives exactly the weights it gave before the
    layers started as PyTorch's (the measured results and the trained weights were made with
    them). ``modules()`` visits the layers in the order they were built, so the draws come in the
    same order too."""
    state = get_rng_state()
    built = []
    yield built
    set_rng_state(state)
    init_he_(built[0])


def _stages(block, in_channels, widths, counts, first_strides, residual, shortcut):
    blocks, stage_starts = [], []
    for width, count, stride in zip(widths, counts, first_strides):
        stage_starts.append(len(blocks))
        for i in range(count):
            b = block(in_channels, width, stride if i == 0 else 1, residual, shortcut)
            blocks.append(b)
            in_channels = width * block.expansion
    return blocks, in_channels, stage_starts


def cifar_resnet(depth: int, residual: bool = True, shortcut: str = "A", num_classes: int = 10,
                 width: int = 16, in_channels: int = 3) -> Network:
    """The paper's CIFAR-10 net (section 4.2) of depth ``6n + 2``: a 3x3 conv with ``width``
    filters, three stages of ``n`` basic blocks with width, 2*width, 4*width filters on maps of
    size S, S/2, S/4 (stride-2 subsampling), global average pooling, a ``num_classes``-way fc."""
    if not is_cifar_depth(depth):
        raise ValueError(f"CIFAR nets have depth 6n+2 (20, 32, 44, 56, 110, 1202 ...), got {depth}")
    n = (depth - 2) // 6
    with _paper_init() as built:
        stem = nn.Sequential(OrderedDict([
            ("conv", nn.Conv2d(in_channels, width, 3, padding=1, bias=False)),
            ("bn", nn.BatchNorm2d(width)), ("relu", nn.ReLU())]))
        blocks, features, starts = _stages(BasicBlock, width, (width, 2 * width, 4 * width),
                                           (n, n, n), (1, 2, 2), residual, shortcut)
        name = f"{'resnet' if residual else 'plain'}{depth}"
        built.append(Network(stem, blocks, features, num_classes, name=name, depth=depth,
                             residual=residual, shortcut=shortcut.upper() if residual else None,
                             stage_starts=starts))
    return built[0]


def imagenet_resnet(depth: int, residual: bool = True, shortcut: str = "B",
                    num_classes: int = 1000, in_channels: int = 3) -> Network:
    """The paper's ImageNet nets (Table 1): 7x7/2 conv 64, 3x3/2 max pool, four stages of
    64/128/256/512 filters (x4 for bottlenecks), global average pool, fc."""
    if depth not in IMAGENET_LAYOUTS:
        raise ValueError(f"ImageNet nets have depth 18, 34, 50, 101 or 152, got {depth}")
    block, counts = IMAGENET_LAYOUTS[depth]
    with _paper_init() as built:
        stem = nn.Sequential(OrderedDict([
            ("conv", nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)),
            ("bn", nn.BatchNorm2d(64)), ("relu", nn.ReLU()),
            ("pool", nn.MaxPool2d(3, stride=2, padding=1))]))
        blocks, features, starts = _stages(block, 64, (64, 128, 256, 512), counts,
                                           (1, 2, 2, 2), residual, shortcut)
        name = f"{'resnet' if residual else 'plain'}{depth}"
        built.append(Network(stem, blocks, features, num_classes, name=name, depth=depth,
                             residual=residual, shortcut=shortcut.upper() if residual else None,
                             stage_starts=starts))
    return built[0]


def is_cifar_depth(depth: int) -> bool:
    """Whether ``depth`` is a CIFAR net's: ``6n + 2`` (20, 32, 44, 56, 110, 1202 ...)."""
    return isinstance(depth, int) and depth >= 8 and (depth - 2) % 6 == 0


def parse_model_name(name: str) -> tuple[bool, int]:
    """``(residual, depth)`` of a model name such as ``resnet20`` or ``plain18``; a ValueError
    that says which names exist for anything else."""
    match = re.fullmatch(r"(resnet|plain)(\d+)", str(name).strip().lower())
    if not match:
        raise ValueError(f"unknown model {name!r}: use resnet<depth> or plain<depth>, e.g. "
                         f"resnet20, plain56, resnet18, resnet50")
    residual, depth = match.group(1) == "resnet", int(match.group(2))
    if depth not in IMAGENET_LAYOUTS and not is_cifar_depth(depth):
        raise ValueError(f"model {name!r}: CIFAR nets have depth 6n+2 (20, 32, 44, 56, 110, "
                         f"1202), ImageNet nets 18, 34, 50, 101 or 152")
    return residual, depth


def is_imagenet_name(name: str) -> bool:
    """Whether the model ``name`` is one of the ImageNet nets (18-152 layers), which take no
    ``width``."""
    return parse_model_name(name)[1] in IMAGENET_LAYOUTS


def get_model(name: str, **kwargs) -> Network:
    """A model by name: ``resnet20``/``plain56`` (CIFAR, any 6n+2 depth) or ``resnet18`` ...
    ``plain152`` (ImageNet); keyword arguments go to the constructor."""
    residual, depth = parse_model_name(name)
    if depth in IMAGENET_LAYOUTS:
        return imagenet_resnet(depth, residual=residual, **kwargs)
    return cifar_resnet(depth, residual=residual, **kwargs)


def _named(depth, residual, family):
    def build(**kwargs):
        return family(depth, residual=residual, **kwargs)
    build.__name__ = f"{'resnet' if residual else 'plain'}{depth}"
    build.__doc__ = f"The {'residual' if residual else 'plain'} {depth}-layer net of the paper."
    return build


resnet20, resnet32, resnet44, resnet56, resnet110, resnet1202 = (
    _named(d, True, cifar_resnet) for d in (20, 32, 44, 56, 110, 1202))
plain20, plain32, plain44, plain56, plain110, plain1202 = (
    _named(d, False, cifar_resnet) for d in (20, 32, 44, 56, 110, 1202))
resnet18, resnet34, resnet50, resnet101, resnet152 = (
    _named(d, True, imagenet_resnet) for d in (18, 34, 50, 101, 152))
plain18, plain34, plain50, plain101, plain152 = (
    _named(d, False, imagenet_resnet) for d in (18, 34, 50, 101, 152))
