"""The experiments of the paper that the ``minires`` command runs, usable from code too.

* :func:`run_degradation`: plain and residual nets at several depths, trained with the same
  recipe; deeper *plain* nets end with a higher **training** error (the degradation problem),
  deeper ResNets do not (the paper's Figure 6 and Table 2/6).
* :func:`run_gradflow`: gradient flow at initialisation (or after K steps) for several models.
* :func:`run_responses`: the paper's Figure 7 on the nets a degradation run trained.

Both write ``results.json`` / ``gradflow.json`` (schemas in the docs) and PNG figures to ``out``.
The JSON is strict (``NaN`` and infinities, which JSON does not have, are written as ``null``).

A degradation run survives interruption: ``results.json`` is rewritten (atomically) after every
finished run, each run keeps a checkpoint under ``out/checkpoints/`` while it trains, and
``run_degradation(config, out, resume=True)`` skips the finished runs and continues the
interrupted one from its last checkpoint, ending with the results an uninterrupted run would have
written.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass

from . import __version__, backend, models
from .data.cifar10 import load_cifar10
from .data.embedded import load_embedded
from .data.loader import DataLoader
from .data.transforms import Compose, PerPixelMean, RandomCrop, RandomHorizontalFlip
from .diagnostics import measure_gradient_flow
from .errors import NothingToResumeError, UsageError
from .jsonio import write_json
from .random import manual_seed
from .serialization import load, save
from .train import fit, paper_optimizer

# The batch measure_gradient_flow sees (at most this many images: the paper's batch size).
PROBE_BATCH_SIZE = 128
# Added to the run's seed for the probe batch's shuffle: other images than the first training
# batch, the same ones for every model of the run.
PROBE_SEED_OFFSET = 1
# run_gradflow's training pool: enough images for a few epochs of varied batches, fixed so
# that memory does not grow with the number of steps.
GRADFLOW_POOL_IMAGES = 2048
# run_gradflow does not evaluate: a token test split (load_data always makes one).
GRADFLOW_TEST_IMAGES = 16
# run_gradflow's warm-up before measuring trained nets: 50 steps, or half the steps if fewer.
GRADFLOW_MAX_WARMUP_STEPS = 50
# Test images per forward pass when measuring responses (eval mode, no graph: memory only).
RESPONSES_BATCH_SIZE = 500


@dataclass
class DegradationConfig:
    """Settings of the degradation experiment. ``quick()`` finishes in minutes on 2 CPU cores;
    ``full()`` is the paper's CIFAR-10 recipe (64k iterations: a GPU job)."""
    depths: tuple = (20, 56)
    steps: int = 800
    image_size: int = 12       # quick: 12x12 images and 8 filters in the first stage, so that
    width: int = 8             # 800 steps (5 epochs) fit in minutes; full: 32x32 and 16 (the paper)
    batch_size: int = 128
    lr: float = 0.1
    warmup_steps: int = 100
    dataset: str = "embedded"
    data_dir: str | None = None
    num_train: int = 20000
    num_test: int = 2000
    eval_every: int | None = None
    seed: int = 0
    device: str = "cpu"
    shortcut: str = "A"
    augment: bool = False
    lr_decay: bool = False     # quick: constant lr after the warm-up; full: /10 at 50% and 75%

    @classmethod
    def quick(cls, **overrides) -> "DegradationConfig":
        if overrides.get("dataset") == "cifar10":
            overrides.setdefault("image_size", 32)     # 12x12 is for the embedded set only
        return cls(**overrides)

    @classmethod
    def long(cls, **overrides) -> "DegradationConfig":
        """The quick set-up run six times longer (4,800 steps, about 31 epochs) with the paper's
        step schedule (/10 at 50% and 75%): the setting of ``benchmarks/depth_sweep.py`` in
        which ResNet-56 ends below ResNet-20 (width 8)."""
        base = dict(steps=4800, lr_decay=True)
        base.update(overrides)
        return cls.quick(**base)

    @classmethod
    def full(cls, **overrides) -> "DegradationConfig":
        base = dict(depths=(20, 32, 44, 56), steps=64000, image_size=32, width=16,
                    dataset="cifar10", warmup_steps=0, num_train=45000, num_test=10000,
                    eval_every=2000, augment=True, lr_decay=True)
        base.update(overrides)
        return cls(**base)


def load_data(dataset: str, image_size: int, num_train: int, num_test: int, seed: int,
              data_dir: str | None = None):
    """``(train, test)`` datasets, per-pixel-mean subtracted with the training mean (the paper)."""
    if dataset == "embedded":
        train, test = load_embedded(image_size=image_size, num_train=num_train,
                                    num_test=num_test, seed=seed)
    elif dataset == "cifar10":
        train, test = load_cifar10(root=data_dir)
        if image_size != 32:
            raise UsageError("CIFAR-10 images are 32x32; use --image-size 32 with cifar10")
    else:
        raise UsageError(f"unknown dataset {dataset!r}: use 'embedded' or 'cifar10'")
    mean = PerPixelMean().fit(train.images)
    train.images = mean(train.images)
    test.images = mean(test.images)
    if dataset == "cifar10" and num_train < len(train):
        from .data.loader import train_val_split
        train, _ = train_val_split(train, val_fraction=1 - num_train / len(train), seed=seed)
    return train, test


def _count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def run_degradation(config: DegradationConfig, out: str = "minires-out/degradation",
                    progress: bool = True, log=None, resume: bool = False) -> dict:
    """Train plain-d and ResNet-d for each depth d; write results.json and figures to ``out``.

    ``results.json`` is rewritten after every finished run and each run's trained weights are
    saved at once (:func:`trained_model_path`), so an interruption loses at most the run in
    progress, and not even that: it checkpoints itself under ``out/checkpoints/`` at every
    evaluation. With ``resume=True`` the runs that ``results.json`` lists are skipped and the
    interrupted one continues from its checkpoint; the settings must be the ones it was started
    with. A run whose loss or weights stop being finite is recorded as ``diverged`` (with the
    step) and the next run starts.

    Under a process group (``mpiexec -n N minires degradation``) the nets are a task farm: they
    are independent, so in each round rank ``r`` trains net ``round + r`` with exactly the
    settings and seeds one process would use; the round's results are gathered and rank 0
    alone writes ``results.json`` and the figures and prints progress. Each net's record is the
    one a single process makes (up to ``seconds``, and to BLAS threading: see
    ``docs/scaling-out.md``)."""
    backend.get_array_module(config.device)      # fail early on an unavailable device
    rank, size = _farm_ranks()
    if rank != 0:
        log, progress = (lambda message: None), False
    log = log or _log
    settings = _degradation_settings(config)
    results_path = os.path.join(out, "results.json")
    runs = _resumable_runs(out, settings) if resume else []
    train, test = load_data(config.dataset, config.image_size, config.num_train,
                            config.num_test, config.seed, config.data_dir)
    if len(train) < config.batch_size:
        raise UsageError(f"batch size {config.batch_size} is larger than the {len(train)} "
                         f"training images: lower --batch-size or raise --num-train")
    results = {"settings": settings, "runs": runs}
    if rank == 0:
        os.makedirs(out, exist_ok=True)
        write_json(results, results_path)        # the settings, before the first run ends
    _farm_barrier(size)                          # the folder exists for every rank
    transform = Compose([RandomCrop(config.image_size, padding=4), RandomHorizontalFlip()]) \
        if config.augment else None
    eval_every = config.eval_every or max(1, config.steps // 4)
    finished = {r["model"] for r in runs}
    flows = []
    nets = [(depth, residual) for depth in config.depths for residual in (False, True)]
    # a task farm: in each round, rank r trains net round + r; the round's results are then
    # gathered, in the nets' order, and rank 0 writes them (one process: rounds of one net)
    for first in range(0, len(nets), size):
        mine = first + rank
        flow = run = checkpoint = None
        if mine < len(nets):
            depth, residual = nets[mine]
            flow, run, checkpoint = _train_one_net(
                config, depth, residual, train, test, transform, eval_every, settings, out,
                results_path, finished, resume, progress, log)
        for other, (flow_k, run_k) in enumerate(_gather_round(flow, run, size)):
            if flow_k is not None:
                flows.append(flow_k)
            if run_k is not None:
                runs.append(run_k)
                if other != rank and run_k["train_error"] and run_k["test_error"]:
                    log(f"  {run_k['model']} (rank {other}): training error "
                        f"{run_k['train_error'][-1]:.1f}%, test error "
                        f"{run_k['test_error'][-1]:.1f}% ({run_k['seconds']:.0f} s)")
        if rank == 0:
            write_json(results, results_path)
        _farm_barrier(size)                      # results.json lists the round's nets ...
        if checkpoint is not None:
            _remove_if_exists(checkpoint)        # ... so their checkpoints can go
    if rank != 0:
        return results
    _remove_empty_folder(os.path.join(out, "checkpoints"))
    from .diagnostics import plots     # matplotlib: loaded only to draw
    plots.save_figure(plots.training_curves_figure(runs),
                      os.path.join(out, "training_error.png"))
    plots.save_figure(plots.training_curves_figure(runs, "test_error",
                                                   title="Test error"),
                      os.path.join(out, "test_error.png"))
    plots.save_figure(plots.gradient_norms_figure(flows),
                      os.path.join(out, "gradient_norms_at_init.png"))
    return results


def _train_one_net(config, depth, residual, train, test, transform, eval_every, settings, out,
                   results_path, finished, resume, progress, log) -> tuple:
    """Train one net of a degradation run: ``(gradient flow at init, run record or None when it
    was finished before, its checkpoint path)``."""
    manual_seed(config.seed)
    model = models.cifar_resnet(depth, residual=residual, shortcut=config.shortcut,
                                width=config.width).to(config.device)
    loader = DataLoader(train, batch_size=config.batch_size, shuffle=True,
                        drop_last=True, seed=config.seed, transform=transform,
                        device=config.device)
    probe_images, probe_labels = next(iter(DataLoader(
        train, batch_size=min(config.batch_size, PROBE_BATCH_SIZE), shuffle=True,
        seed=config.seed + PROBE_SEED_OFFSET, device=config.device)))
    flow = measure_gradient_flow(model, probe_images, probe_labels)
    checkpoint = os.path.join(out, "checkpoints", f"{model.name}.npz")
    if model.name in finished:
        log(f"{model.name}: finished before, kept from {results_path}")
        return flow, None, checkpoint
    resuming = resume and os.path.exists(checkpoint)
    log(f"{'resuming' if resuming else 'training'} {model.name} "
        f"({_count_params(model):,} parameters) for {config.steps} steps on "
        f"{config.device}")
    history = fit(model, loader, test, steps=config.steps, eval_every=eval_every,
                  warmup_steps=config.warmup_steps, lr_decay=config.lr_decay,
                  progress=progress,
                  seed=config.seed, batch_size=config.batch_size,
                  optimizer=paper_optimizer(model, lr=config.lr), desc=model.name,
                  checkpoint=checkpoint, resume=resume,
                  settings={"model": model.name, **settings})
    if history.diverged:
        log(f"  {model.name}: diverged at step {history.diverged_step} (the loss or the "
            f"weights stopped being finite); its curves stop there")
    else:
        log(f"  {model.name}: training error {history.final_train_error:.1f}%, test "
            f"error {history.final_test_error:.1f}% ({history.seconds:.0f} s)")
    run = {"model": model.name, "depth": depth, "residual": residual,
           "shortcut": config.shortcut if residual else None,
           "params": _count_params(model), "steps": history.steps,
           "train_error": history.train_error, "test_error": history.test_error,
           "train_loss": history.train_loss, "seconds": round(history.seconds, 2),
           "diverged": history.diverged, "diverged_step": history.diverged_step}
    # a finished run's trained weights (unless they are not finite) are kept at once; its
    # checkpoint goes only once results.json lists it
    if not history.diverged:
        save(model.state_dict(), trained_model_path(out, model.name))
    return flow, run, checkpoint


def _farm_ranks() -> tuple[int, int]:
    """``(rank, ranks)`` of the process group when there is one (``mpiexec -n N minires ...``),
    else ``(0, 1)``."""
    from . import distributed as dist
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _gather_round(flow, run, size: int) -> list:
    """Every rank's ``(flow, run)`` of this round, in rank order (the nets' order)."""
    if size == 1:
        return [(flow, run)]
    from . import distributed as dist
    gathered: list = [None] * size
    dist.all_gather_object(gathered, (flow, run))
    return gathered


def _farm_barrier(size: int) -> None:
    if size > 1:
        from . import distributed as dist
        dist.barrier()


def _resumable_runs(out: str, settings: dict) -> list:
    """The finished runs that ``out/results.json`` lists, after checking that they were made
    with ``settings``."""
    path = os.path.join(out, "results.json")
    if not os.path.exists(path):
        raise NothingToResumeError(f"nothing to resume: {path} does not exist (a mistyped "
                                   f"--out?); run without --resume to start")
    try:
        with open(path) as f:
            previous = json.load(f)
        runs, saved = list(previous["runs"]), dict(previous["settings"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"cannot resume from {path}: it is not a results file of minires "
                         f"degradation ({exc}); use --overwrite to start again") from None
    wanted = json.loads(json.dumps(settings))         # as it reads back from the file
    differ = sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))
    if differ:
        was = ", ".join(f"{k} {saved.get(k)!r}" for k in differ)
        now = ", ".join(f"{k} {wanted.get(k)!r}" for k in differ)
        raise UsageError(f"cannot resume {out}: its runs were made with {was}, this one asks "
                         f"for {now}; resume with the same flags, or --overwrite to start again")
    return runs


def _remove_if_exists(path: str) -> None:
    if os.path.exists(path):
        os.remove(path)


def _remove_empty_folder(path: str) -> None:
    if os.path.isdir(path) and not os.listdir(path):
        os.rmdir(path)


def _degradation_settings(config: DegradationConfig) -> dict:
    return {"dataset": config.dataset, "image_size": config.image_size,
            "width": config.width, "steps": config.steps, "batch_size": config.batch_size,
            "lr": config.lr, "warmup_steps": config.warmup_steps,
            "lr_decay": config.lr_decay, "seed": config.seed, "shortcut": config.shortcut,
            "num_train": config.num_train, "num_test": config.num_test,
            "device": str(config.device), "depths": list(config.depths),
            "minires_version": __version__}


def trained_model_path(out: str, name: str) -> str:
    """Where a degradation run in ``out`` keeps the trained weights of model ``name``."""
    return os.path.join(out, "models", f"{name}.npz")


def load_trained_model(out: str, name: str, device: str = "cpu"):
    """The model ``name`` (e.g. ``"resnet56"``) as a degradation run in ``out`` left it: built
    from the run's settings in ``results.json``, with its trained weights, in eval mode."""
    results_path = os.path.join(out, "results.json")
    if not os.path.exists(results_path):
        raise FileNotFoundError(f"{results_path} not found: run `minires degradation --out "
                                f"{out}` first")
    with open(results_path) as f:
        results = json.load(f)
    run = next((r for r in results["runs"] if r["model"] == name), None)
    if run is None:
        raise UsageError(f"{out} holds no trained {name} (it has "
                         f"{', '.join(r['model'] for r in results['runs']) or 'none'})")
    if run.get("diverged"):
        raise UsageError(f"{name} diverged in {out} (at step {run.get('diverged_step')}); no "
                         f"trained weights were kept")
    settings = results["settings"]
    model = models.cifar_resnet(run["depth"], residual=run["residual"],
                                shortcut=run["shortcut"] or settings.get("shortcut", "A"),
                                width=settings["width"])
    model.load_state_dict(load(trained_model_path(out, name)))
    return model.to(device).eval()


def degradation_table(results: dict) -> str:
    """The paper's Table 2 layout: rows are depths, columns plain and ResNet; each cell the final
    training error / test error in percent."""
    by = {(r["depth"], r["residual"]): r for r in results["runs"]}
    depths = sorted({r["depth"] for r in results["runs"]})

    def number(values):
        value = values[-1] if values else None
        return "-" if value is None or not math.isfinite(value) else f"{value:.1f}"

    def cell(r):
        if r is None:
            return "-"
        mark = " (diverged)" if r.get("diverged") else ""
        return f"{number(r['train_error']):>5} / {number(r['test_error']):>5}{mark}"
    cells = [(d, cell(by.get((d, False))), cell(by.get((d, True)))) for d in depths]
    width = max([18] + [len(c) for _, p, r in cells for c in (p, r)])   # "(diverged)" widens
    lines = ["final error, % (train / test)",
             f"{'layers':>8} | {'plain':>{width}} | {'ResNet':>{width}}",
             "-" * (8 + 2 * width + 6)]
    for d, plain, resnet in cells:
        lines.append(f"{d:>8} | {plain:>{width}} | {resnet:>{width}}")
    return "\n".join(lines)


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
    log = log or _log
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
    from .diagnostics import plots     # matplotlib: loaded only to draw
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


def run_responses(source: str, names=None, out: str | None = None, device: str = "cpu",
                  log=None) -> dict:
    """The paper's Figure 7 on trained nets: the std of each 3x3 layer's response of every model
    that the degradation run in ``source`` trained (or of those in ``names``), in eval mode, over
    the run's held-out test images. Writes responses.json and response_std.png to ``out``
    (default ``source/responses``); returns what it wrote to responses.json."""
    from .diagnostics.responses import compare_responses, layer_responses
    log = log or _log
    backend.get_array_module(device)
    results_path = os.path.join(source, "results.json")
    if not os.path.exists(results_path):
        raise FileNotFoundError(f"{results_path} not found: run `minires degradation --out "
                                f"{source}` first")
    with open(results_path) as f:
        settings = json.load(f)["settings"]
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
    from .diagnostics import plots     # matplotlib: loaded only to draw
    plots.save_figure(plots.response_std_figure(
        stds, title=f"Std of layer responses, trained nets, eval mode, {len(test)} held-out "
        f"images (paper Figure 7)"), os.path.join(out, "response_std.png"))
    return results


def _log(message: str) -> None:
    print(message, flush=True)
