r"""Loss landscape along random directions (Li, Xu, Taylor, Studer and Goldstein, NeurIPS 2018,
"Visualizing the loss landscape of neural nets").

From the trained weights :math:`\theta` pick two random directions :math:`\delta, \eta` and plot

.. math::  f(\alpha, \beta) = L(\theta + \alpha\,\delta + \beta\,\eta)

on a grid of :math:`(\alpha, \beta)`. A raw Gaussian direction means little: a net with batch
norm computes the same function when a filter's weights are scaled, so a step of a given size is
huge for a small filter and nothing for a large one. **Filter normalisation** rescales each
filter of the direction to the norm of the matching filter of the weights,
:math:`d_{i} \leftarrow d_{i}\,\lVert\theta_{i}\rVert / \lVert d_{i}\rVert` (a filter is one
output channel of a convolution, one row of a linear layer), so that ``alpha = 1`` moves every
filter by its own size. Batch-norm parameters and biases get a zero direction (they stay put).

* :func:`filter_normalized_direction`: one such direction, a list of arrays shaped like
  ``model.parameters()``;
* :func:`loss_landscape`: the 2-D grid and the 1-D curves along each direction, in eval mode
  over a fixed set of images. Memory: one copy of the weights and the two directions, whatever
  the grid; the weights are written back exactly afterwards.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy

from ..devices import backend
from .lesion import model_name

__all__ = ["Landscape", "filter_normalized_direction", "loss_landscape", "curvature_summary"]


@dataclass
class Landscape:
    """Losses (mean cross-entropy) and errors (%) of one model around its trained weights.
    ``loss[j][i]`` is at ``(alpha=coords[i], beta=coords[j])``; ``curves`` are along each
    direction alone, at ``curve_coords``."""
    model: str
    num_images: int
    coords: list
    loss: list
    error: list
    curve_coords: list
    curves: dict = field(default_factory=dict)   # {"alpha"|"beta": {"loss": [...], "error": [...]}}
    center_loss: float | None = None
    center_error: float | None = None

    def loss_grid(self) -> numpy.ndarray:
        return numpy.array([[math.nan if v is None else v for v in row] for row in self.loss])

    def summary(self) -> dict:
        return curvature_summary(self.loss_grid(), self.coords, self.center_loss)

    def to_dict(self) -> dict:
        return {"model": self.model, "num_images": self.num_images, "coords": self.coords,
                "loss": self.loss, "error": self.error, "curve_coords": self.curve_coords,
                "curves": self.curves, "center_loss": self.center_loss,
                "center_error": self.center_error, "summary": self.summary()}


def filter_normalized_direction(model, rng: numpy.random.Generator) -> list:
    """A Gaussian direction, filter-normalised against ``model``'s weights; zero for parameters
    with fewer than two dimensions (batch-norm weights and biases). One array per parameter, in
    ``model.parameters()`` order, on each parameter's device."""
    direction = []
    for p in model.parameters():
        weights = backend.to_host(p.array).astype(numpy.float64)
        if weights.ndim < 2:
            d = numpy.zeros_like(weights)
        else:
            d = rng.standard_normal(weights.shape)
            filters_w = weights.reshape(weights.shape[0], -1)
            filters_d = d.reshape(d.shape[0], -1)
            norm_w = numpy.linalg.norm(filters_w, axis=1, keepdims=True)
            norm_d = numpy.linalg.norm(filters_d, axis=1, keepdims=True)
            d = (filters_d * (norm_w / numpy.maximum(norm_d, 1e-30))).reshape(weights.shape)
        direction.append(backend.to_device(d.astype(backend.to_host(p.array).dtype), p.device))
    return direction


def curvature_summary(loss: numpy.ndarray, coords, center_loss=None) -> dict:
    """Numbers that tell a bowl from a chaotic surface, from the grid alone.

    * ``nonconvex_fraction``: share of interior grid points where the finite-difference Hessian
      of the loss (in alpha, beta) has a negative eigenvalue;
    * ``curvature_ratio``: median of ``|lambda_min / lambda_max|`` over those points (Li et al.
      map this ratio: near 0 where the surface is convex);
    * ``local_minima``: interior points lower than all 8 neighbours (a bowl has one);
    * ``rise``: mean loss on the grid's border minus the loss at the centre.
    """
    loss = numpy.asarray(loss, dtype=numpy.float64)
    h = float(coords[1] - coords[0]) if len(coords) > 1 else 1.0
    out = {"nonconvex_fraction": None, "curvature_ratio": None, "local_minima": None,
           "rise": None}
    if loss.shape[0] < 3 or not numpy.isfinite(loss).all():
        return out
    c = loss[1:-1, 1:-1]
    fxx = (loss[1:-1, 2:] - 2 * c + loss[1:-1, :-2]) / h ** 2    # along alpha (columns)
    fyy = (loss[2:, 1:-1] - 2 * c + loss[:-2, 1:-1]) / h ** 2    # along beta (rows)
    fxy = (loss[2:, 2:] - loss[2:, :-2] - loss[:-2, 2:] + loss[:-2, :-2]) / (4 * h ** 2)
    mean, dev = (fxx + fyy) / 2, numpy.sqrt(((fxx - fyy) / 2) ** 2 + fxy ** 2)
    lam_min, lam_max = mean - dev, mean + dev
    negative = lam_min < 0
    ratio = numpy.abs(lam_min) / numpy.maximum(numpy.abs(lam_max), 1e-30)
    neighbours = [loss[1 + di:loss.shape[0] - 1 + di, 1 + dj:loss.shape[1] - 1 + dj]
                  for di in (-1, 0, 1) for dj in (-1, 0, 1) if di or dj]
    minima = numpy.all([c < n for n in neighbours], axis=0)
    border = numpy.concatenate([loss[0], loss[-1], loss[1:-1, 0], loss[1:-1, -1]])
    centre = float(loss[loss.shape[0] // 2, loss.shape[1] // 2]) if center_loss is None \
        else float(center_loss)
    out.update(nonconvex_fraction=float(negative.mean()),
               curvature_ratio=float(numpy.median(ratio)),
               local_minima=int(minima.sum()), rise=float(border.mean() - centre))
    return out


def _finite(x):
    return None if x is None or not math.isfinite(x) else float(x)


def loss_landscape(model, data, *, grid: int = 11, span: float = 1.0,
                   num_images: int | None = None, curve_points: int | None = None,
                   seed: int = 0, batch_size: int = 256, directions=None,
                   progress: bool = True) -> Landscape:
    """The loss of ``model`` on a ``grid`` x ``grid`` lattice of
    ``theta + alpha * d1 + beta * d2`` for ``alpha, beta`` in ``[-span, span]``, and along each
    direction alone at ``curve_points`` points (default ``2 * grid + 1``).

    ``data``: a dataset (its first ``num_images`` images, all by default) or a DataLoader (not
    shuffled, so that every point sees the same images). ``directions``: ``(d1, d2)`` as
    :func:`filter_normalized_direction` returns them; default two of them drawn with
    ``numpy.random.default_rng([seed, 2018, 0])`` and ``[seed, 2018, 1]`` (not the stream of
    ``mr.manual_seed(seed)``: a direction drawn like the initial weights of an untrained net
    would be those weights rescaled, which batch norm does not see). Evaluated in eval mode
    without a graph, batched on the model's device; the weights are restored bit for bit
    afterwards, even on an error or an interrupt.
    """
    from ..data.loader import DataLoader, Subset
    from ..train import evaluate, progress_enabled
    grid = int(grid)
    if grid < 2:
        raise ValueError(f"loss_landscape: grid must be >= 2 points per side, got {grid}")
    if not (isinstance(span, (int, float)) and math.isfinite(span) and span > 0):
        raise ValueError(f"loss_landscape: span must be a positive number, got {span!r}")
    curve_points = 2 * grid + 1 if curve_points is None else int(curve_points)
    if curve_points < 2:
        raise ValueError(f"loss_landscape: curve_points must be >= 2, got {curve_points}")
    if num_images is not None:
        if isinstance(data, DataLoader):
            raise ValueError("loss_landscape: num_images applies to a dataset; pass the dataset "
                             "rather than a DataLoader")
        if int(num_images) < 1:
            raise ValueError(f"loss_landscape: num_images must be >= 1, got {num_images}")
        data = Subset(data, numpy.arange(min(int(num_images), len(data))))
    elif isinstance(data, DataLoader) and data.shuffle:
        raise ValueError("loss_landscape: the DataLoader shuffles; every grid point must see the "
                         "same images (use shuffle=False)")
    params = list(model.parameters())
    if directions is None:
        directions = tuple(filter_normalized_direction(
            model, numpy.random.default_rng([seed, 2018, i])) for i in (0, 1))
    d1, d2 = directions
    if len(d1) != len(params) or len(d2) != len(params):
        raise ValueError(f"loss_landscape: a direction has {len(d1)}/{len(d2)} arrays, the model "
                         f"{len(params)} parameters")
    coords = numpy.linspace(-span, span, grid)
    curve_coords = numpy.linspace(-span, span, curve_points)
    total = grid * grid + 2 * curve_points + 1
    bar = None
    if progress_enabled(progress):
        from tqdm.auto import tqdm
        bar = tqdm(total=total, desc=f"landscape {model_name(model)}", leave=False,
                   dynamic_ncols=True)
    weights = [p.array.copy() for p in params]      # the one copy of the weights kept

    def loss_at(alpha, beta):
        for p, w, a, b in zip(params, weights, d1, d2):
            p.array[...] = w + alpha * a + beta * b
            p._bump_version()               # written in place (a graph that kept p would see it)
        loss, error = evaluate(model, data, batch_size=batch_size)
        if bar is not None:
            bar.update(1)
        return _finite(loss), _finite(error)

    try:
        center = loss_at(0.0, 0.0)
        loss, error = [], []
        for beta in coords:
            row = [loss_at(float(alpha), float(beta)) for alpha in coords]
            loss.append([r[0] for r in row])
            error.append([r[1] for r in row])
        curves = {}
        for axis in ("alpha", "beta"):
            points = [loss_at(float(t), 0.0) if axis == "alpha" else loss_at(0.0, float(t))
                      for t in curve_coords]
            curves[axis] = {"loss": [r[0] for r in points], "error": [r[1] for r in points]}
    finally:
        for p, w in zip(params, weights):
            p.array[...] = w
            p._bump_version()
        if bar is not None:
            bar.close()
    n = len(data.dataset) if isinstance(data, DataLoader) else len(data)
    return Landscape(model=model_name(model), num_images=int(n),
                     coords=[float(c) for c in coords], loss=loss, error=error,
                     curve_coords=[float(c) for c in curve_coords], curves=curves,
                     center_loss=center[0], center_error=center[1])
