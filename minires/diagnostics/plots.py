"""Pictures of gradient flow and training, with matplotlib (the figures of the notebooks, the
CLI and the docs). Every function returns a ``matplotlib.figure.Figure``; :func:`save_figure`
writes it as a PNG. Importing this module chooses no backend: matplotlib's own choice stands (the
inline backend in a notebook, Agg on a machine without a display, or ``MPLBACKEND``).
"""
from __future__ import annotations

import math
import os

import matplotlib.pyplot as plt
import numpy

PLAIN_STYLE = dict(linestyle="--")
RESIDUAL_STYLE = dict(linestyle="-")


def _style(name: str) -> dict:
    return PLAIN_STYLE if name.startswith("plain") else RESIDUAL_STYLE


def save_figure(fig, path: str, dpi: int = 110) -> str:
    """Save as PNG (atomically: a temp file, then rename) and close the figure."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".tmp-{os.getpid()}-{os.path.basename(path)}")
    fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    os.replace(tmp, path)
    plt.close(fig)
    return path


def gradient_norms_figure(flows, title: str = "Gradient norm of each 3x3 conv weight at "
                          "initialisation"):
    """Gradient norm vs depth, log scale; plain nets on the left, residual nets on the right."""
    plain = [f for f in flows if f.model.startswith("plain")]
    residual = [f for f in flows if not f.model.startswith("plain")]
    panels = [(p, t) for p, t in ((plain, "plain"), (residual, "residual")) if p]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), sharey=True,
                             squeeze=False)
    for ax, (group, label) in zip(axes[0], panels):
        for f in group:
            norms = f.conv_grad_norms()
            ax.semilogy(range(1, len(norms) + 1), norms, marker=".", label=f.model, **_style(f.model))
        ax.set_title(f"{label} nets")
        ax.set_xlabel("conv layer (input side -> output side)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    axes[0][0].set_ylabel("||dL/dW||")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def shortcut_branch_figure(flow):
    """For each block: the gradient norm reaching its input through the shortcut and through the
    residual branch (log scale)."""
    depth = [b.depth for b in flow.blocks]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.semilogy(depth, [b.branch_grad_norm for b in flow.blocks], marker="o", label="through the branch F(x)")
    shortcut = [b.shortcut_grad_norm for b in flow.blocks]
    if any(s is not None for s in shortcut):
        ax.semilogy(depth, [s if s is not None else math.nan for s in shortcut], marker="s",
                    label="through the shortcut")
    ax.semilogy(depth, [b.in_grad_norm for b in flow.blocks], color="k", alpha=0.5, lw=1,
                label="total at block input")
    ax.set_xlabel("block (input side -> output side)")
    ax.set_ylabel("gradient norm at the block input")
    ax.set_title(f"{flow.model}: where the gradient reaching each block comes from")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def response_std_figure(flows):
    """The paper's Figure 7: std of each layer's response (after BN, before ReLU/addition), in
    depth order (top) and sorted by magnitude (bottom)."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6))
    for f in flows:
        stds = [r.std for r in f.responses if r.name.startswith("blocks.")]
        top.plot(range(1, len(stds) + 1), stds, label=f.model, **_style(f.model))
        bottom.plot(range(1, len(stds) + 1), sorted(stds, reverse=True), label=f.model,
                    **_style(f.model))
    top.set_xlabel("layer index (original order)")
    bottom.set_xlabel("layer index (sorted by magnitude)")
    for ax in (top, bottom):
        ax.set_ylabel("std of response")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    top.set_title("Layer responses (paper Figure 7)")
    fig.tight_layout()
    return fig


def gradient_heatmap_figure(tracker, what: str = "grad_norms", title: str | None = None):
    """Per-layer gradient norms over training as a heat map (layer x step, log10 colour)."""
    values = tracker.as_array(what)
    fig, ax = plt.subplots(figsize=(8, 5))
    if values.size:
        image = ax.imshow(numpy.log10(numpy.maximum(values, 1e-30)), aspect="auto",
                          origin="lower", cmap="viridis", interpolation="nearest",
                          extent=(tracker.steps[0] - 0.5, tracker.steps[-1] + 0.5,
                                  0.5, values.shape[0] + 0.5))
        fig.colorbar(image, ax=ax, label=f"log10 {what.replace('_', ' ')}")
    ax.set_xlabel("training step")
    ax.set_ylabel("layer (input side at the bottom)")
    ax.set_title(title or f"{what.replace('_', ' ')} during training")
    fig.tight_layout()
    return fig


def training_curves_figure(runs, key: str = "train_error",
                           title: str = "Training error (paper Figure 6 style)"):
    """Curves of ``key`` (e.g. train_error %) vs step for several runs: dicts with ``model``,
    ``steps`` and the key. Plain nets dashed, residual nets solid, as in the paper."""
    plain = [r for r in runs if r["model"].startswith("plain")]
    residual = [r for r in runs if not r["model"].startswith("plain")]
    panels = [(p, t) for p, t in ((plain, "plain"), (residual, "residual")) if p]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), sharey=True,
                             squeeze=False)
    for ax, (group, label) in zip(axes[0], panels):
        for r in group:
            ax.plot(r["steps"], r[key], marker=".", label=r["model"], **_style(r["model"]))
        ax.set_title(f"{label} nets")
        ax.set_xlabel("training step")
        ax.grid(True, alpha=0.3)
        ax.legend()
    axes[0][0].set_ylabel(key.replace("_", " ") + (" (%)" if "error" in key else ""))
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def vanishing_figure(curves: dict, title: str = "Gradient norm per layer of a deep MLP"):
    """``curves``: label -> list of per-layer gradient norms (input side first)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, norms in curves.items():
        ax.semilogy(range(1, len(norms) + 1), norms, marker=".", label=label)
    ax.set_xlabel("layer (input side -> output side)")
    ax.set_ylabel("||dL/dW||")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig
