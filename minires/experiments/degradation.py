"""The degradation experiment (``minires degradation``): plain and residual nets at several
depths, trained with the same recipe; deeper *plain* nets end with a higher **training** error
(the degradation problem), deeper ResNets do not (the paper's Figure 6 and Table 2/6).

:func:`run_degradation` writes ``results.json`` (schema in the docs; strict JSON: ``NaN`` and
infinities are written as ``null``) and PNG figures to ``out``. A run survives interruption:
``results.json`` is rewritten (atomically) after every finished run, each run keeps a checkpoint
under ``out/checkpoints/`` while it trains, and ``run_degradation(config, out, resume=True)``
skips the finished runs and continues the interrupted one from its last checkpoint, ending with
the results an uninterrupted run would have written. :func:`trained_models` hands a run's nets to
the studies that need trained nets, training them first where they are missing.
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass

from .. import __version__, models
from ..devices import backend
from ..data.loader import DataLoader
from ..data.transforms import Compose, RandomCrop, RandomHorizontalFlip
from ..diagnostics import measure_gradient_flow
from ..errors import NothingToResumeError, UsageError
from ..jsonio import write_json
from ..random import manual_seed
from ..serialization import save
from ..train import fit, paper_optimizer
from .common import (PROBE_BATCH_SIZE, PROBE_SEED_OFFSET, count_params, degradation_data,
                     load_data, load_trained_model, print_line, process_ranks, refuse_overwrite,
                     trained_model_path)


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
    rank, size = process_ranks()
    if rank != 0:
        log, progress = (lambda message: None), False
    log = log or print_line
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
    from ..diagnostics import plots     # matplotlib: loaded only to draw
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
        f"({count_params(model):,} parameters) for {config.steps} steps on "
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
           "params": count_params(model), "steps": history.steps,
           "train_error": history.train_error, "test_error": history.test_error,
           "train_loss": history.train_loss, "seconds": round(history.seconds, 2),
           "diverged": history.diverged, "diverged_step": history.diverged_step}
    # a finished run's trained weights (unless they are not finite) are kept at once; its
    # checkpoint goes only once results.json lists it
    if not history.diverged:
        save(model.state_dict(), trained_model_path(out, model.name))
    return flow, run, checkpoint


def _gather_round(flow, run, size: int) -> list:
    """Every rank's ``(flow, run)`` of this round, in rank order (the nets' order)."""
    if size == 1:
        return [(flow, run)]
    from .. import distributed as dist
    gathered: list = [None] * size
    dist.all_gather_object(gathered, (flow, run))
    return gathered


def _farm_barrier(size: int) -> None:
    if size > 1:
        from .. import distributed as dist
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
    log = log or print_line
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


def prepare_trained_study(names, out: str, filename: str, source: str | None, device: str,
                          data_dir: str | None, overwrite: bool, progress: bool, log):
    """The common start of a study of trained nets (lesion, landscape): check the device, refuse
    to overwrite ``out/filename`` silently, then the trained models and their run's data.
    Returns ``(path, models, folder, train, test, trained_settings)``."""
    backend.get_array_module(device)
    path = os.path.join(out, filename)
    refuse_overwrite(path, overwrite)
    os.makedirs(out, exist_ok=True)
    trained, folder = trained_models(names, out, source, device, progress, log)
    train, test, trained_settings = degradation_data(folder, data_dir)
    return path, trained, folder, train, test, trained_settings
