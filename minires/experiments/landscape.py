"""The loss landscape beyond the paper (``minires landscape``), after Li et al. (2018): the loss
around the trained weights along two filter-normalised random directions
(:func:`minires.diagnostics.loss_landscape`); writes ``landscape.json`` and figures. The nets come
from a degradation run's folder (``source``), trained first with the quick preset into
``out/trained`` where it lacks them (:func:`~.degradation.trained_models`)."""
from __future__ import annotations

import os
import time

from .. import __version__
from ..jsonio import json_safe, write_json
from .common import print_line
from .degradation import prepare_trained_study


def run_landscape(names, out: str = "minires-out/landscape", source: str | None = None, *,
                  grid: int = 11, span: float = 1.0, images: int = 256,
                  curve_points: int | None = None, seed: int = 0, batch_size: int = 256,
                  device: str = "cpu", data_dir: str | None = None, overwrite: bool = False,
                  progress: bool = True, log=None) -> dict:
    """The loss landscape of each model in ``names`` over the first ``images`` training images
    of its degradation run (the loss the optimiser saw), on a ``grid`` x ``grid`` lattice in
    ``[-span, span]^2``; writes ``landscape.json``, ``landscape_contour.png``,
    ``landscape_surface.png`` and ``landscape_curves.png`` to ``out``. Every model gets the
    same random draws for its directions (each filter-normalised to its own weights)."""
    from ..diagnostics.landscape import loss_landscape
    log = log or print_line
    path, trained, folder, train, _, trained_settings = prepare_trained_study(
        names, out, "landscape.json", source, device, data_dir, overwrite, progress, log)
    results = {"settings": {"source": folder, "grid": grid, "range": span,
                            "images": min(images, len(train)), "split": "train",
                            "curve_points": curve_points or 2 * grid + 1, "seed": seed,
                            "batch_size": batch_size, "device": str(device),
                            "trained": trained_settings, "minires_version": __version__},
               "models": {}}
    for name, model in trained.items():
        started = time.perf_counter()
        land = loss_landscape(model, train, grid=grid, span=span, num_images=images,
                              curve_points=curve_points, seed=seed, batch_size=batch_size,
                              progress=progress)
        seconds = time.perf_counter() - started
        results["models"][name] = dict(land.to_dict(), seconds=round(seconds, 1))
        s = results["models"][name]["summary"]
        log(f"{name}: loss {land.center_loss:.3f} at the trained weights, "
            f"{_fmt(s['rise'])} higher on the border; negative curvature at "
            f"{_fmt(s['nonconvex_fraction'], '.0%')} of the grid; {s['local_minima']} local "
            f"minima ({seconds:.0f} s)")
    write_json(results, path)
    from ..diagnostics import landscape_plots     # matplotlib: loaded only to draw
    for kind, figure in (("contour", landscape_plots.landscape_contour_figure),
                         ("surface", landscape_plots.landscape_surface_figure),
                         ("curves", landscape_plots.landscape_curves_figure)):
        landscape_plots.save_figure(figure(results["models"]),
                                 os.path.join(out, f"landscape_{kind}.png"))
    return json_safe(results)


def _fmt(v, spec=".3f"):
    return "-" if v is None else format(v, spec)


def landscape_markdown(results: dict) -> str:
    """The docs' table of a landscape.json."""
    lines = ["| model | loss at the trained weights | mean loss on the border (rise) | "
             "grid points with negative curvature | local minima |",
             "| --- | --- | --- | --- | --- |"]
    for name, m in results["models"].items():
        s = m["summary"]
        border = None if s["rise"] is None else s["rise"] + m["center_loss"]
        lines.append(f"| {name} | {_fmt(m['center_loss'])} | {_fmt(border, '.4g')} "
                     f"(+{_fmt(s['rise'], '.4g')}) | {_fmt(s['nonconvex_fraction'], '.0%')} | "
                     f"{s['local_minima']} |")
    return "\n".join(lines)


def landscape_table(results: dict) -> str:
    """The landscape summary for the terminal."""
    return landscape_markdown(results).replace("| --- | --- | --- | --- | --- |\n", "")
