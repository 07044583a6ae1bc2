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


def _nan(values):
    """``values`` with None (a null of a results file) as NaN, which matplotlib leaves out."""
    return [math.nan if v is None else v for v in values]


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
    depth = list(range(len(flow.blocks)))          # i of model.blocks[i], as the code counts
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.semilogy(depth, [b.branch_grad_norm for b in flow.blocks], marker="o", label="through the branch F(x)")
    shortcut = [b.shortcut_grad_norm for b in flow.blocks]
    if any(s is not None for s in shortcut):
        ax.semilogy(depth, [s if s is not None else math.nan for s in shortcut], marker="s",
                    label="through the shortcut")
    ax.semilogy(depth, [b.in_grad_norm for b in flow.blocks], color="k", alpha=0.5, lw=1,
                label="total at block input")
    ax.set_xlabel("block i of model.blocks (0: input side)")
    ax.set_ylabel("gradient norm at the block input")
    ax.set_title(f"{flow.model}: where the gradient reaching each block comes from")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def response_std_figure(curves, title: str = "Std of layer responses (paper Figure 7)"):
    """The paper's Figure 7: the std of each 3x3 layer's response (after batch norm, before the
    ReLU and the addition), in original layer order (top) and sorted by magnitude (bottom), the
    axis from 0. ``curves``: model name -> stds in depth order, or objects with ``.model`` and
    ``.responses`` (:class:`GradientFlow`; their block layers are drawn)."""
    if not isinstance(curves, dict):
        curves = {f.model: [r.std for r in f.responses if r.name.startswith("blocks.")]
                  for f in curves}
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6.5))
    for name, stds in curves.items():
        top.plot(range(1, len(stds) + 1), stds, label=name, **_style(name))
        bottom.plot(range(1, len(stds) + 1), sorted(stds, reverse=True), label=name,
                    **_style(name))
    top.set_xlabel("layer index (original order)")
    bottom.set_xlabel("layer index (sorted by magnitude)")
    for ax in (top, bottom):
        ax.set_ylabel("std")
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    top.set_title(title, fontsize=10)
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


TRAIN_STYLE = dict(linestyle="--", linewidth=1.0)    # the paper's Figure 6: thin dashed lines
TEST_STYLE = dict(linestyle="-", linewidth=2.4)      # are training error, bold lines test error


def training_curves_figure(runs, key: str | None = None,
                           title: str = "Error vs step (paper Figure 6 style)"):
    """The paper's Figure 6 layout: plain nets on the left, residual nets on the right, one colour
    per model; as in the paper, **thin dashed lines are training error, bold lines test error**.
    ``runs``: dicts with ``model``, ``steps`` and ``train_error`` / ``test_error`` (%).
    ``key=None`` draws both errors (where a run has them); ``key="train_error"`` or
    ``"test_error"`` draws that one only, in its style."""
    keys = [k for k in ("train_error", "test_error") if key in (None, k)]
    plain = [r for r in runs if r["model"].startswith("plain")]
    residual = [r for r in runs if not r["model"].startswith("plain")]
    panels = [(p, t) for p, t in ((plain, "plain"), (residual, "residual")) if p]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), sharey=True,
                             squeeze=False)
    for ax, (group, label) in zip(axes[0], panels):
        for i, r in enumerate(group):
            colour = f"C{i}"
            for k in keys:
                values = r.get(k)
                if not values:
                    continue
                steps = r["steps"][:len(values)]
                which = "train" if k == "train_error" else "test"
                ax.plot(steps, values, color=colour, label=f"{r['model']} ({which})",
                        **(TRAIN_STYLE if k == "train_error" else TEST_STYLE))
        ax.set_title(f"{label} nets")
        ax.set_xlabel("training step")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    shown = {"train_error": "thin dashed: training error", "test_error": "bold: test error"}
    axes[0][0].set_ylabel("error (%)")
    fig.suptitle(f"{title}\n{'; '.join(shown[k] for k in keys)}", fontsize=11)
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
