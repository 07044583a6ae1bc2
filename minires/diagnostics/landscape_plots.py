"""Pictures of loss landscapes (``minires landscape``, notebook 07). Each function takes the
``"models"`` mapping of ``landscape.json`` (model name -> its result as a dict) and returns a
``matplotlib.figure.Figure``; save it with :func:`save_figure` (the one of
:mod:`minires.diagnostics.plots`: Agg backend, atomic PNG).
"""
from __future__ import annotations

import math

import numpy

from .plots import _nan, _style, plt, save_figure  # noqa: F401  (save_figure is re-exported)


def _grid(m):
    return numpy.array([_nan(row) for row in m["loss"]], dtype=float)


def _levels(models):
    lows = [numpy.nanmin(_grid(m)) for m in models.values()]
    highs = [numpy.nanmax(_grid(m)) for m in models.values()]
    low, high = min(lows), max(highs)
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return 10
    # log-spaced, up to 30x the lowest loss: the detail is near the minimum, and a net whose
    # loss explodes far from it would otherwise take every level for its cliffs
    low = max(low, 1e-6)
    return numpy.geomspace(low, min(high, 30 * low), 20)


def landscape_contour_figure(models: dict):
    """Contours of the loss over the (alpha, beta) grid, one panel per model, the same levels
    in every panel; the cross marks the trained weights."""
    levels = _levels(models)
    fig, axes = plt.subplots(1, len(models), figsize=(4.6 * len(models), 4.2), squeeze=False)
    for ax, (name, m) in zip(axes[0], models.items()):
        c = numpy.array(m["coords"])
        cs = ax.contour(c, c, _grid(m), levels=levels, cmap="viridis", linewidths=1)
        ax.clabel(cs, cs.levels[::4], fontsize=7, fmt="%.2g")
        ax.plot([0], [0], "r+", ms=10)
        ax.set_title(f"{name} (loss at the cross: {m['center_loss']:.2f})")
        ax.set_xlabel("alpha (direction 1)")
        ax.set_ylabel("beta (direction 2)")
        ax.set_aspect("equal")
    fig.suptitle("Training loss around the trained weights, filter-normalised directions")
    fig.tight_layout()
    return fig


def landscape_surface_figure(models: dict):
    """The loss grid as a 3-D surface, one panel per model (log10 of the loss, shared z axis)."""
    fig = plt.figure(figsize=(5.2 * len(models), 4.4))
    grids = {name: numpy.log10(numpy.maximum(_grid(m), 1e-6)) for name, m in models.items()}
    zmin = min(numpy.nanmin(g) for g in grids.values())
    zmax = max(numpy.nanmax(g) for g in grids.values())
    for i, (name, m) in enumerate(models.items()):
        ax = fig.add_subplot(1, len(models), i + 1, projection="3d")
        c = numpy.array(m["coords"])
        a, b = numpy.meshgrid(c, c)
        ax.plot_surface(a, b, grids[name], cmap="viridis", linewidth=0, antialiased=True,
                        vmin=zmin, vmax=zmax)
        ax.set_zlim(zmin, zmax)
        ax.set_title(name)
        ax.set_xlabel("alpha")
        ax.set_ylabel("beta")
        ax.set_zlabel("log10 loss")
    fig.tight_layout()
    return fig


def landscape_curves_figure(models: dict):
    """The loss along each direction alone (1-D curves), every model in each panel."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, axis in zip(axes, ("alpha", "beta")):
        for name, m in models.items():
            ax.semilogy(m["curve_coords"], _nan(m["curves"][axis]["loss"]), label=name,
                        **_style(name))
        ax.set_xlabel(f"{axis} (direction {1 if axis == 'alpha' else 2} alone)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    axes[0].set_ylabel("training loss")
    fig.suptitle("The loss along each random direction")
    fig.tight_layout()
    return fig
