"""Pictures of the lesion study (``minires lesion``, notebook 07). Each function takes the
``"models"`` mapping of ``lesion.json`` (model name -> its result as a dict) and returns a
``matplotlib.figure.Figure``; save it with :func:`save_figure` (the one of
:mod:`minires.diagnostics.plots`: Agg backend, atomic PNG). The landscape figures are in
:mod:`.landscape_plots`.
"""
from __future__ import annotations

import numpy
from matplotlib.ticker import MaxNLocator

# the landscape figures lived here first: their names are still importable from this module
from .landscape_plots import (landscape_contour_figure, landscape_curves_figure,  # noqa: F401
                              landscape_surface_figure)
from .plots import _nan, _style, plt, save_figure  # noqa: F401  (save_figure is re-exported)


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
