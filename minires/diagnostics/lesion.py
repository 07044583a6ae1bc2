r"""Lesion study: delete blocks of a trained net at test time (Veit, Wilber and Belongie, NeurIPS
2016, "Residual networks behave like ensembles of relatively shallow networks").

A residual block computes ``y = relu(F(x) + s(x))``. **Deleting** it keeps the shortcut and drops
the branch: ``y = relu(s(x))``. With the identity shortcut that is ``y = x`` (``x`` came out of a
ReLU); in a downsampling block with option A it is the subsampled, zero-padded ``x``. A path
through a ResNet either enters a block's branch or skips it, so deleting one block removes only
the paths through its branch: half of them, all the others still reach the output. A plain block
``y = relu(F(x))`` has one path; deleting it (``y = x``) is possible only where its input and
output have the same shape, and then the net's single path is cut at that point.

* :func:`block_lesions`: for every block, its shapes, whether it downsamples, whether it can be
  deleted (and why not);
* :func:`deleted_blocks`: a context manager that deletes blocks of a model for the duration of a
  ``with`` (the blocks' ``forward`` is swapped, nothing is copied; restored on exit);
* :func:`lesion`: the study: the baseline error, the error with each single block deleted, and
  with ``k`` blocks deleted at random for several ``k`` (several draws each, fixed seed).
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import numpy

from .. import nn

__all__ = ["BlockLesion", "LesionResult", "block_lesions", "deleted_blocks", "lesion",
           "default_ks"]


@dataclass
class BlockLesion:
    """One block of the model and what deleting it does. ``error``/``loss`` are None for a block
    that cannot be deleted (``reason`` says why)."""
    block: str                  # e.g. "blocks.3"
    index: int                  # position in model.blocks (0 = next to the input)
    in_channels: int
    out_channels: int
    stride: int
    downsampling: bool          # the block changes the shape of the activations
    residual: bool
    deletable: bool
    reason: str | None = None
    error: float | None = None  # test error (%) with this block deleted
    loss: float | None = None


@dataclass
class LesionResult:
    """Result of :func:`lesion` for one model (errors in percent over ``num_images`` images)."""
    model: str
    residual: bool
    num_images: int
    baseline_error: float
    baseline_loss: float
    chance_error: float | None = None            # 100 * (1 - 1/classes): a net that guesses
    single: list = field(default_factory=list)   # BlockLesion per block
    random: list = field(default_factory=list)   # {"k", "errors", "losses", "deleted"} per k

    def single_errors(self, deletable_only: bool = True) -> list:
        return [b.error for b in self.single if b.deletable or not deletable_only]

    def mean_error(self, k: int) -> float:
        """Mean error over the draws with ``k`` blocks deleted."""
        for r in self.random:
            if r["k"] == k:
                return float(numpy.mean(r["errors"]))
        raise KeyError(f"no draws with k={k} blocks deleted (have {[r['k'] for r in self.random]})")

    def to_dict(self) -> dict:
        return {"model": self.model, "residual": self.residual, "num_images": self.num_images,
                "baseline_error": self.baseline_error, "baseline_loss": self.baseline_loss,
                "chance_error": self.chance_error,
                "single": [asdict(b) for b in self.single], "random": list(self.random)}


def _blocks(model):
    blocks = getattr(model, "blocks", None)
    if blocks is None or not len(blocks) or not all(
            hasattr(b, "branch") and hasattr(b, "relu") for b in blocks):
        raise TypeError(f"lesion: expected a minires Network whose model.blocks are plain or "
                        f"residual blocks (e.g. mr.models.resnet20()), got "
                        f"{type(model).__name__}")
    return list(blocks)


def _convs(module):
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)]


def block_lesions(model) -> list:
    """A :class:`BlockLesion` (no errors yet) for each block of ``model``: its channels and
    stride (read from the branch's convolutions), whether it downsamples, and whether it can be
    deleted: a residual block always (its shortcut stays), a plain block only where its input
    and output shapes are equal."""
    out = []
    for i, block in enumerate(_blocks(model)):
        convs = _convs(block.branch)
        stride = int(numpy.prod([c.stride[0] for c in convs]))
        cin, cout = convs[0].in_channels, convs[-1].out_channels
        downsampling = stride != 1 or cin != cout
        residual = bool(getattr(block, "residual", False))
        reason = None
        if not residual and downsampling:
            reason = (f"shape changes: {cin}->{cout} channels, stride {stride}; without a "
                      f"shortcut there is nothing to put in its place")
        out.append(BlockLesion(block=f"blocks.{i}", index=i, in_channels=cin, out_channels=cout,
                               stride=stride, downsampling=downsampling, residual=residual,
                               deletable=reason is None, reason=reason))
    return out


def _deleted_forward(block):
    if getattr(block, "residual", False):
        def forward(x):           # the branch removed, the shortcut kept: relu(shortcut(x))
            return block.relu(block.shortcut(x))
    else:
        def forward(x):           # a plain block removed altogether (shapes are equal)
            return x
    return forward


@contextmanager
def deleted_blocks(model, indices):
    """Within the ``with``, the blocks ``model.blocks[i]`` for ``i`` in ``indices`` are deleted
    (see the module docstring); on exit every block computes what it computed before."""
    blocks = _blocks(model)
    info = block_lesions(model)
    indices = sorted({int(i) for i in indices})
    for i in indices:
        if not 0 <= i < len(blocks):
            raise IndexError(f"deleted_blocks: block {i} out of range: {model_name(model)} has "
                             f"{len(blocks)} blocks (0..{len(blocks) - 1})")
        if not info[i].deletable:
            raise ValueError(f"deleted_blocks: {model_name(model)} block {i} cannot be deleted "
                             f"({info[i].reason})")
    saved = []
    try:
        for i in indices:
            # an instance attribute shadows the class's forward; Module.__call__ calls it
            saved.append((blocks[i], blocks[i].__dict__.get("forward")))
            object.__setattr__(blocks[i], "forward", _deleted_forward(blocks[i]))
        yield model
    finally:
        for block, previous in reversed(saved):
            if previous is None:
                del block.__dict__["forward"]
            else:
                object.__setattr__(block, "forward", previous)


def model_name(model) -> str:
    return getattr(model, "name", type(model).__name__)


def default_ks(num_deletable: int, count: int = 8) -> list:
    """About ``count`` values of k from 1 to half the deletable blocks (Veit et al. deleted up to
    20 of ResNet-110's 54 blocks)."""
    top = max(1, num_deletable // 2)
    return sorted({int(k) for k in numpy.linspace(1, top, num=min(count, top)).round()})


def _finite(x):
    return None if x is None or not math.isfinite(x) else float(x)


def lesion(model, data, *, ks=None, draws: int = 3, seed: int = 0, batch_size: int = 256,
           single: bool = True, progress: bool = True) -> LesionResult:
    """Veit et al.'s lesion study of ``model`` on ``data`` (a dataset or a DataLoader), in eval
    mode, without a graph, batched on the model's device.

    Measures the baseline error, the error with each deletable block deleted (``single``), and
    for each ``k`` in ``ks`` (default :func:`default_ks`) the error with ``k`` blocks deleted at
    random among the deletable ones, ``draws`` draws each (draw ``j`` of ``k`` uses
    ``numpy.random.default_rng([seed, k, j])``). The model is left as it was.
    """
    from ..data.loader import DataLoader
    from ..train import evaluate, progress_enabled
    info = block_lesions(model)
    deletable = [b.index for b in info if b.deletable]
    if int(draws) < 1:
        raise ValueError(f"lesion: draws must be >= 1, got {draws}")
    ks = default_ks(len(deletable)) if ks is None else sorted({int(k) for k in ks})
    bad = [k for k in ks if not 1 <= k <= len(deletable)]
    if bad:
        raise ValueError(f"lesion: k must be between 1 and the {len(deletable)} deletable "
                         f"blocks of {model_name(model)}, got {bad}")
    total = 1 + (len(deletable) if single else 0) + len(ks) * int(draws)
    bar = None
    if progress_enabled(progress):
        from tqdm.auto import tqdm
        bar = tqdm(total=total, desc=f"lesion {model_name(model)}", leave=False,
                   dynamic_ncols=True)

    def measure(indices):
        with deleted_blocks(model, indices):
            loss, error = evaluate(model, data, batch_size=batch_size)
        if bar is not None:
            bar.update(1)
        return _finite(loss), _finite(error)

    try:
        base_loss, base_error = measure([])
        if single:
            for b in info:
                if b.deletable:
                    b.loss, b.error = measure([b.index])
        random = []
        for k in ks:
            errors, losses, chosen = [], [], []
            for j in range(int(draws)):
                rng = numpy.random.default_rng([int(seed), int(k), j])
                picked = sorted(int(i) for i in rng.choice(deletable, size=k, replace=False))
                loss, error = measure(picked)
                errors.append(error)
                losses.append(loss)
                chosen.append(picked)
            random.append({"k": int(k), "errors": errors, "losses": losses, "deleted": chosen})
    finally:
        if bar is not None:
            bar.close()
    num_images = len(data.dataset) if isinstance(data, DataLoader) else len(data)
    classes = getattr(getattr(model, "fc", None), "out_features", None)
    return LesionResult(model=model_name(model), residual=bool(getattr(model, "residual", False)),
                        num_images=int(num_images), baseline_error=base_error,
                        baseline_loss=base_loss, single=info, random=random,
                        chance_error=100.0 * (1 - 1 / classes) if classes else None)
