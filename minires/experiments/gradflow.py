"""The gradient-flow experiment (``minires gradflow``): the gradient norm of every layer and block
of several models on one batch, at initialisation or after K training steps; writes
``gradflow.json`` (schema in the docs) and PNG figures to ``out``."""
from __future__ import annotations

import os

from .. import __version__, models
from ..devices import backend
from ..data.loader import DataLoader
from ..diagnostics import measure_gradient_flow
from ..jsonio import write_json
from ..random import manual_seed
from ..train import fit
from .common import PROBE_SEED_OFFSET, load_data, print_line

# run_gradflow's training pool: enough images for a few epochs of varied batches, fixed so
# that memory does not grow with the number of steps.
GRADFLOW_POOL_IMAGES = 2048
# run_gradflow does not evaluate: a token test split (load_data always makes one).
GRADFLOW_TEST_IMAGES = 16
# run_gradflow's warm-up before measuring trained nets: 50 steps, or half the steps if fewer.
GRADFLOW_MAX_WARMUP_STEPS = 50

# gradflow measures in training mode: batch norm normalises each batch, so the response stds
# are |gamma|, all 1 at initialisation; the paper's Figure 7 is `run_responses`, on trained nets
GRADFLOW_RESPONSES_TITLE = ("Layer response std in training mode: batch norm makes every std 1 "
                            "here at initialisation\n(not the paper's Figure 7, which needs "
                            "trained nets in eval mode: `minires responses`)")


def run_gradflow(model_names, batch_size: int = 128, image_size: int = 32, device: str = "cpu",
                 seed: int = 0, after_steps: int = 0, out: str = "minires-out/gradflow",
                 dataset: str = "embedded", width: int = 16, progress: bool = True,
                 log=None) -> dict:
    """Gradient flow of each model on one batch, at initialisation (``after_steps=0``) or after K
    training steps (on a pool of ``max(GRADFLOW_POOL_IMAGES, batch_size)`` images, reshuffled
    every epoch, so memory does not grow with K); writes gradflow.json and figures to ``out``."""
    log = log or print_line
    backend.get_array_module(device)
    os.makedirs(out, exist_ok=True)
    # a fixed pool of images, reshuffled every epoch by the loader: memory does not grow with K
    train, _ = load_data(dataset, image_size, max(batch_size, GRADFLOW_POOL_IMAGES),
                         GRADFLOW_TEST_IMAGES, seed)
    result_models, flows = {}, []
    for name in model_names:
        manual_seed(seed)
        kwargs = {} if models.is_imagenet_name(name) else {"width": width}
        model = models.get_model(name, **kwargs).to(device)
        if after_steps:
            fit(model, train, steps=after_steps, batch_size=batch_size, progress=progress,
                seed=seed, warmup_steps=min(GRADFLOW_MAX_WARMUP_STEPS, after_steps // 2),
                eval_every=after_steps)
        images, labels = next(iter(DataLoader(train, batch_size=batch_size, shuffle=True,
                                              seed=seed + PROBE_SEED_OFFSET,
                                              device=device)))
        model.train()
        flow = measure_gradient_flow(model, images, labels, name=name)
        flows.append(flow)
        data = flow.to_dict()
        result_models[name] = {"params": data["params"], "blocks": data["blocks"],
                               "responses": data["responses"], "loss": data["loss"],
                               "spread": flow.spread(), "first_to_last": flow.first_to_last()}
        log(f"{name}: loss {flow.loss:.3f}, conv gradient norm max/min over depth "
            f"{flow.spread():.3g}, first/last {flow.first_to_last():.3g}")
    results = {"settings": {"batch_size": batch_size, "image_size": image_size,
                            "device": str(device), "seed": seed, "after_steps": after_steps,
                            "dataset": dataset, "width": width, "minires_version": __version__},
               "models": result_models}
    write_json(results, os.path.join(out, "gradflow.json"))
    from ..diagnostics import plots     # matplotlib: loaded only to draw
    plots.save_figure(plots.gradient_norms_figure(
        flows, title="Gradient norm of each 3x3 conv weight" +
        (" at initialisation" if not after_steps else f" after {after_steps} steps")),
        os.path.join(out, "gradient_norms.png"))
    for flow in flows:
        if any(b.shortcut_grad_norm is not None for b in flow.blocks):
            plots.save_figure(plots.shortcut_branch_figure(flow),
                              os.path.join(out, f"shortcut_vs_branch_{flow.model}.png"))
    plots.save_figure(plots.response_std_figure(flows, title=GRADFLOW_RESPONSES_TITLE),
                      os.path.join(out, "response_std.png"))
    return results


def gradflow_table(results: dict) -> str:
    """Per-block table of each model's gradient flow."""
    lines = []
    for name, data in results["models"].items():
        lines.append(f"{name}  (conv gradient norm spread max/min {data['spread']:.3g}, "
                     f"first/last {data['first_to_last']:.3g})")
        lines.append(f"{'block':>7} {'out grad':>10} {'in grad':>10} {'branch':>10} "
                     f"{'shortcut':>10} {'sc/branch':>9}")
        for b in data["blocks"]:
            sc = b["shortcut_grad_norm"]
            ratio = f"{sc / b['branch_grad_norm']:.2f}" if sc is not None and \
                b["branch_grad_norm"] else "-"
            lines.append(f"{b['depth']:>7} {b['out_grad_norm']:>10.3g} {b['in_grad_norm']:>10.3g}"
                         f" {b['branch_grad_norm']:>10.3g} "
                         f"{(f'{sc:.3g}' if sc is not None else '-'):>10} {ratio:>9}")
        lines.append("")
    return "\n".join(lines)
