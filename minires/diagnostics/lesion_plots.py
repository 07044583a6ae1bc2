"""Pictures of the lesion study and of loss landscapes (``minires lesion``, ``minires landscape``,
notebook 07). Each function takes the ``"models"`` mapping of ``lesion.json`` / ``landscape.json``
(model name -> its result as a dict) and returns a ``matplotlib.figure.Figure``; save it with
:func:`save_figure` (the one of :mod:`minires.diagnostics.plots`: Agg backend, atomic PNG).
"""
from __future__ import annotations

import math

import numpy
from matplotlib.ticker import MaxNLocator

from .plots import _style, plt, save_figure  # noqa: F401  (save_figure is re-exported)


def _nan(values):
    return [math.nan if v is None else v for v in values]


def _chance(ax, models):
    chance = next((m.get("chance_error") for m in models.values() if m.get("chance_error")),
                  None)
    if chance:
        ax.axhline(chance, color="0.4", lw=1, ls="-.", label="chance")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def lesion_single_figure(models: dict):
    """Test error with one block deleted, against the block, one line per model; each model's
    baseline dotted; downsampling blocks shaded; blocks that cannot be deleted marked x."""
    fig, ax = plt.subplots(figsize=(10, 4.2))
    shaded = set()
    for name, m in models.items():
        blocks = m["single"]
        x = [b["index"] for b in blocks]          # i of model.blocks[i], from 0
        line, = ax.plot(x, _nan(b["error"] for b in blocks), marker="o", ms=4, label=name,
                        **_style(name))
        ax.axhline(m["baseline_error"], color=line.get_color(), lw=1, ls=":",
                   label=f"{name}, nothing deleted")
        blocked = [b["index"] for b in blocks if not b["deletable"]]
        if blocked:
            ax.plot(blocked, [m["baseline_error"]] * len(blocked), "x", ms=9,
                    color=line.get_color(), label=f"{name}: cannot be deleted (shape changes)")
        for b in blocks:
            if b["downsampling"] and b["index"] not in shaded:
                shaded.add(b["index"])
                ax.axvspan(b["index"] - 0.5, b["index"] + 0.5, color="0.85", zorder=0)
    _chance(ax, models)
    ax.set_xlabel("deleted block i of model.blocks (0: input side; shaded: downsampling)")
    ax.set_ylabel("test error, %")
    ax.set_ylim(0, 100)
    ax.set_title("Deleting one block at test time (Veit et al. 2016)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))   # outside: no data hidden
    fig.tight_layout()
    return fig


def lesion_random_figure(models: dict):
    """Test error against the number k of blocks deleted at random: every draw as a dot, the
    mean as a line; k = 0 is the baseline."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, m in models.items():
        ks = [0] + [r["k"] for r in m["random"]]
        means = [m["baseline_error"]] + [
            numpy.nanmean(_nan(r["errors"])) for r in m["random"]]
        line, = ax.plot(ks, means, marker="o", label=name, **_style(name))
        for r in m["random"]:
            ax.plot([r["k"]] * len(r["errors"]), _nan(r["errors"]), ".", alpha=0.5,
                    color=line.get_color())
    _chance(ax, models)
    ax.set_xlabel("blocks deleted at random, k")
    ax.set_ylabel("test error, %")
    ax.set_ylim(0, 100)
    ax.set_title("Deleting k blocks (mean and each draw)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


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
