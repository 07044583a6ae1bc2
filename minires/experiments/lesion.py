"""The lesion study beyond the paper (``minires lesion``), after Veit et al. (2016): delete blocks
of trained nets at test time (:func:`minires.diagnostics.lesion`); writes ``lesion.json`` and
figures. The nets come from a degradation run's folder (``source``), trained first with the quick
preset into ``out/trained`` where it lacks them (:func:`~.degradation.trained_models`)."""
from __future__ import annotations

import os
import time

from .. import __version__
from ..jsonio import json_safe, write_json
from .common import first_images, print_line
from .degradation import prepare_trained_study


def run_lesion(names, out: str = "minires-out/lesion", source: str | None = None, *,
               images: int | None = None, ks=None, draws: int = 3, seed: int = 0,
               batch_size: int = 256, device: str = "cpu", data_dir: str | None = None,
               overwrite: bool = False, progress: bool = True, log=None) -> dict:
    """The lesion study of each model in ``names`` on the first ``images`` test images of its
    degradation run (all by default); writes ``lesion.json``, ``lesion_single.png`` and
    ``lesion_random.png`` to ``out``."""
    from ..diagnostics.lesion import block_lesions, lesion
    log = log or print_line
    path, trained, folder, _, test, trained_settings = prepare_trained_study(
        names, out, "lesion.json", source, device, data_dir, overwrite, progress, log)
    test = first_images(test, images)
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
    write_json(results, path)
    from ..diagnostics import lesion_plots
    lesion_plots.save_figure(lesion_plots.lesion_single_figure(results["models"]),
                             os.path.join(out, "lesion_single.png"))
    lesion_plots.save_figure(lesion_plots.lesion_random_figure(results["models"]),
                             os.path.join(out, "lesion_random.png"))
    return json_safe(results)


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
