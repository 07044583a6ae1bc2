"""The paper's Figure 7 on trained nets (``minires responses``): the std of each 3x3 layer's
response of the nets a degradation run trained, in eval mode, over the run's held-out test
images; writes ``responses.json`` and ``response_std.png``."""
from __future__ import annotations

import os

from .. import __version__
from ..devices import backend
from ..data.loader import DataLoader
from ..jsonio import write_json
from .common import (load_data, load_trained_model, print_line, read_results,
                     trained_model_path)

# Test images per forward pass when measuring responses (eval mode, no graph: memory only).
RESPONSES_BATCH_SIZE = 500


def run_responses(source: str, names=None, out: str | None = None, device: str = "cpu",
                  log=None) -> dict:
    """The paper's Figure 7 on trained nets: the std of each 3x3 layer's response of every model
    that the degradation run in ``source`` trained (or of those in ``names``), in eval mode, over
    the run's held-out test images. Writes responses.json and response_std.png to ``out``
    (default ``source/responses``); returns what it wrote to responses.json."""
    from ..diagnostics.responses import compare_responses, layer_responses
    log = log or print_line
    backend.get_array_module(device)
    settings = read_results(source)["settings"]
    if not names:
        folder = os.path.dirname(trained_model_path(source, "x"))
        names = [n[:-len(".npz")] for n in sorted(os.listdir(folder)) if n.endswith(".npz")] \
            if os.path.isdir(folder) else []
        if not names:
            raise FileNotFoundError(f"no trained models in {folder}: run `minires degradation "
                                    f"--out {source}` first")
    names = sorted(names, key=lambda n: (n.startswith("resnet"), len(n), n))
    _, test = load_data(settings["dataset"], settings["image_size"], settings["num_train"],
                        settings["num_test"], settings["seed"], settings.get("data_dir"))
    stds = {}
    for name in names:
        model = load_trained_model(source, name, device=device)
        batches = DataLoader(test, batch_size=RESPONSES_BATCH_SIZE, shuffle=False, device=device)
        stds[name] = [r.std for r in layer_responses(model, batches)]
        log(f"{name}: response std of {len(stds[name])} layers: mean "
            f"{sum(stds[name]) / len(stds[name]):.3f}, max {max(stds[name]):.3f}")
    results = {"settings": {"degradation_run": settings, "images": len(test), "split": "test",
                            "mode": "eval", "device": str(device),
                            "minires_version": __version__},
               "models": stds, "comparison": compare_responses(stds)}
    out = out or os.path.join(source, "responses")
    os.makedirs(out, exist_ok=True)
    write_json(results, os.path.join(out, "responses.json"))
    from ..diagnostics import plots     # matplotlib: loaded only to draw
    plots.save_figure(plots.response_std_figure(
        stds, title=f"Std of layer responses, trained nets, eval mode, {len(test)} held-out "
        f"images (paper Figure 7)"), os.path.join(out, "response_std.png"))
    return results
