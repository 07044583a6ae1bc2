"""Two studies beyond the paper, on the nets that ``minires degradation`` trains; what the
``minires lesion`` and ``minires landscape`` commands run, usable from code too.

* :func:`run_lesion`: Veit et al. (2016): delete blocks of trained nets at test time
  (:func:`minires.diagnostics.lesion`); writes ``lesion.json`` and figures;
* :func:`run_landscape`: Li et al. (2018): the loss around the trained weights along two
  filter-normalised random directions (:func:`minires.diagnostics.loss_landscape`); writes
  ``landscape.json`` and figures.

Both take their models from a degradation run's folder (``source``, see
:func:`minires.experiments.load_trained_model`); where it is not given or lacks a model, the
models are trained first with the quick preset into ``out/trained`` (and reused from there).
"""
from __future__ import annotations

import json
import math
import os
import re
import time

from . import __version__, backend
from .experiments import (DegradationConfig, _log, load_data, load_trained_model,
                          run_degradation, trained_model_path)

__all__ = ["trained_models", "run_lesion", "run_landscape", "lesion_table", "lesion_markdown",
           "landscape_table", "landscape_markdown", "degradation_data"]


def _depth_of(name: str) -> int:
    match = re.fullmatch(r"(resnet|plain)(\d+)", name)
    depth = int(match.group(2)) if match else -1
    if depth < 8 or (depth - 2) % 6 or depth in (18, 34, 50, 101, 152):
        raise ValueError(f"{name!r}: the studies run on the CIFAR nets that `minires degradation` "
                         f"trains (resnet20, plain56, ...: depth 6n+2)")
    return depth


def _has_models(folder: str | None, names) -> bool:
    return bool(folder) and os.path.exists(os.path.join(folder, "results.json")) and all(
        os.path.exists(trained_model_path(folder, n)) for n in names)


def trained_models(names, out: str, source: str | None = None, device: str = "cpu",
                   progress: bool = True, log=None):
    """``(models, folder)``: each model of ``names`` trained, in eval mode on ``device``, and the
    degradation folder they came from. Taken from ``source`` when it holds all of them; else from
    ``out/trained`` when an earlier call trained them there; else trained there now with the
    quick preset (:meth:`DegradationConfig.quick`) restricted to the depths asked for."""
    log = log or _log
    depths = sorted({_depth_of(n) for n in names})
    folder = source
    if not _has_models(source, names):
        folder = os.path.join(out, "trained")
        if source:
            log(f"{source} does not hold trained {', '.join(names)}")
        if _has_models(folder, names):
            log(f"using the models trained earlier in {folder}")
        else:
            config = DegradationConfig.quick(depths=tuple(depths), device=device)
            log(f"training the models first with the quick preset (minires degradation --depths "
                f"{' '.join(map(str, depths))}: {config.steps} steps, {config.image_size}x"
                f"{config.image_size}, width {config.width}) into {folder}")
            run_degradation(config, out=folder, progress=progress, log=log)
    return {n: load_trained_model(folder, n, device=device) for n in names}, folder


def degradation_data(folder: str, data_dir: str | None = None):
    """``(train, test, settings)``: the data a degradation run in ``folder`` trained and tested on
    (rebuilt from its ``results.json``: the same images, mean-subtracted the same way)."""
    with open(os.path.join(folder, "results.json")) as f:
        s = json.load(f)["settings"]
    train, test = load_data(s["dataset"], s["image_size"], s["num_train"], s["num_test"],
                            s["seed"], data_dir)
    return train, test, s


def _first(dataset, count):
    from .data.loader import Subset
    import numpy
    if count is None or count >= len(dataset):
        return dataset
    return Subset(dataset, numpy.arange(int(count)))


def _clean(obj):
    """JSON-safe: NaN and infinities become null (JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def _write_json(obj, path: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(_clean(obj), f, indent=1, allow_nan=False)
    os.replace(tmp, path)


def _refuse_overwrite(path: str, overwrite: bool) -> None:
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists: pass --overwrite (overwrite=True) to replace it")


def run_lesion(names, out: str = "minires-out/lesion", source: str | None = None, *,
               images: int | None = None, ks=None, draws: int = 3, seed: int = 0,
               batch_size: int = 256, device: str = "cpu", data_dir: str | None = None,
               overwrite: bool = False, progress: bool = True, log=None) -> dict:
    """The lesion study of each model in ``names`` on the first ``images`` test images of its
    degradation run (all by default); writes ``lesion.json``, ``lesion_single.png`` and
    ``lesion_random.png`` to ``out``."""
    from .diagnostics.lesion import block_lesions, lesion
    log = log or _log
    backend.get_array_module(device)
    path = os.path.join(out, "lesion.json")
    _refuse_overwrite(path, overwrite)
    os.makedirs(out, exist_ok=True)
    trained, folder = trained_models(names, out, source, device, progress, log)
    _, test, trained_settings = degradation_data(folder, data_dir)
    test = _first(test, images)
    results = {"settings": {"source": folder, "images": len(test), "ks": ks, "draws": draws,
                            "seed": seed, "batch_size": batch_size, "device": str(device),
                            "trained": trained_settings, "minires_version": __version__},
               "models": {}}
    for name, model in trained.items():
        model_ks = ks
        if ks is not None:      # one list for every model: each keeps the k it has blocks for
            deletable = sum(b.deletable for b in block_lesions(model))
            model_ks = [k for k in ks if k <= deletable]
            if len(model_ks) < len(ks):
                log(f"{name}: {deletable} blocks can be deleted; k = "
                    f"{', '.join(str(k) for k in ks if k > deletable)} left out")
            if not model_ks:
                raise ValueError(f"{name}: no k of {list(ks)} is at most its {deletable} "
                                 f"deletable blocks")
        started = time.perf_counter()
        result = lesion(model, test, ks=model_ks, draws=draws, seed=seed,
                        batch_size=batch_size, progress=progress)
        seconds = time.perf_counter() - started
        results["models"][name] = dict(result.to_dict(), seconds=round(seconds, 1))
        log(f"{name}: {_lesion_line(results['models'][name])} ({seconds:.0f} s)")
    _write_json(results, path)
    from .diagnostics import lesion_plots
    lesion_plots.save_figure(lesion_plots.lesion_single_figure(results["models"]),
                             os.path.join(out, "lesion_single.png"))
    lesion_plots.save_figure(lesion_plots.lesion_random_figure(results["models"]),
                             os.path.join(out, "lesion_random.png"))
    return _clean(results)


def _lesion_line(m: dict) -> str:
    single = [b["error"] for b in m["single"] if b["error"] is not None]
    blocked = sum(not b["deletable"] for b in m["single"])
    text = f"baseline error {_pct(m['baseline_error'])}, one block deleted: median " \
           f"{_pct(_median(single))}, worst {_pct(max(single) if single else None)}"
    return text + (f"; {blocked} blocks cannot be deleted (shape changes)" if blocked else "")


def _median(values):
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def _mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def _pct(v):
    return "-" if v is None else f"{v:.1f}%"


def lesion_rows(results: dict) -> list:
    """One summary row per model: baseline, median / worst single deletion among the blocks that
    keep the shape, the downsampling blocks, and the mean error at the largest k."""
    rows = []
    for name, m in results["models"].items():
        same = [b["error"] for b in m["single"] if b["deletable"] and not b["downsampling"]]
        down = [b["error"] for b in m["single"] if b["downsampling"]]
        top = max(m["random"], key=lambda r: r["k"]) if m["random"] else None
        rows.append({"model": name, "baseline": m["baseline_error"],
                     "single_median": _median(same), "single_worst": max(same) if same else None,
                     "downsampling": down,
                     "not_deletable": sum(not b["deletable"] for b in m["single"]),
                     "k": top["k"] if top else None,
                     "k_mean": _mean(top["errors"]) if top else None})
    return rows


def lesion_markdown(results: dict) -> str:
    """The docs' table of a lesion.json (test error, %)."""
    lines = ["| model | no deletion | one block deleted: median / worst (shape-keeping blocks) | "
             "downsampling blocks deleted | k blocks deleted at random: mean |",
             "| --- | --- | --- | --- | --- |"]
    for r in lesion_rows(results):
        down = ", ".join("cannot" if e is None else f"{e:.1f}" for e in r["downsampling"])
        lines.append(f"| {r['model']} | {r['baseline']:.1f} | {r['single_median']:.1f} / "
                     f"{r['single_worst']:.1f} | {down} | "
                     f"k={r['k']}: {r['k_mean']:.1f} |")
    return "\n".join(lines)


def lesion_table(results: dict) -> str:
    """Per model, the error with each block deleted (text, for the terminal)."""
    lines = []
    for name, m in results["models"].items():
        lines.append(f"{name}: baseline test error {_pct(m['baseline_error'])} on "
                     f"{m['num_images']} images")
        lines.append(f"{'block':>8} {'shape':>14} {'error':>8}")
        for b in m["single"]:
            shape = f"{b['in_channels']}->{b['out_channels']}" + \
                (f" /{b['stride']}" if b["stride"] != 1 else "")
            err = _pct(b["error"]) if b["deletable"] else "cannot"
            lines.append(f"{b['index'] + 1:>8} {shape:>14} {err:>8}")
        for r in m["random"]:
            lines.append(f"  k={r['k']:>2} deleted at random: mean {_pct(_mean(r['errors']))} "
                         f"over {len(r['errors'])} draws")
        lines.append("")
    return "\n".join(lines)


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
    from .diagnostics.landscape import loss_landscape
    log = log or _log
    backend.get_array_module(device)
    path = os.path.join(out, "landscape.json")
    _refuse_overwrite(path, overwrite)
    os.makedirs(out, exist_ok=True)
    trained, folder = trained_models(names, out, source, device, progress, log)
    train, _, trained_settings = degradation_data(folder, data_dir)
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
    _write_json(results, path)
    from .diagnostics import lesion_plots
    for kind, figure in (("contour", lesion_plots.landscape_contour_figure),
                         ("surface", lesion_plots.landscape_surface_figure),
                         ("curves", lesion_plots.landscape_curves_figure)):
        lesion_plots.save_figure(figure(results["models"]),
                                 os.path.join(out, f"landscape_{kind}.png"))
    return _clean(results)


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
