"""Train one model (``minires train``): the data, the model, pad-4 crops and flips when asked,
the paper's optimiser, a checkpoint to resume from; under a process group (``mpiexec -n N``) one
replica per rank, data-parallel (DistributedDataParallel, SyncBatchNorm when asked). Writes
``checkpoint.npz``, ``history.json`` and ``training_error.png`` to ``out``."""
from __future__ import annotations

import os

from .. import models
from ..data.transforms import Compose, RandomCrop, RandomHorizontalFlip
from ..errors import TrainingDiverged, UsageError
from ..jsonio import write_json
from ..random import manual_seed
from ..train import fit, paper_optimizer
from .common import load_data, print_line, process_ranks

# Test images of a `minires train` run.
TRAIN_TEST_IMAGES = 2000
# the settings a resumed run must repeat: they shape the model, the data or the schedule
TRAIN_SETTINGS = ("dataset", "image_size", "width", "epochs", "steps", "batch_size", "lr",
                  "warmup_steps", "num_train", "augment", "seed", "sync_bn")
# the settings that only say how long a run trains: a finished run can be extended
RUN_LENGTH = ("epochs", "steps")


def run_train(model_name: str, out: str = "minires-out/train", *, dataset: str = "embedded",
              data_dir: str | None = None, image_size: int = 32, width: int = 16,
              epochs: int | None = None, steps: int | None = None, batch_size: int = 128,
              lr: float = 0.1, warmup_steps: int = 0, num_train: int = 20000,
              augment: bool = False, device: str = "cpu", seed: int = 0, sync_bn: bool = False,
              resume: bool = False, progress: bool = True, log=None):
    """Train ``model_name`` for ``epochs`` (1 when neither is given) or ``steps``, checkpointing
    to ``out/checkpoint.npz`` (``resume=True`` continues from it, or extends a finished run to a
    longer ``epochs``/``steps``); write ``history.json`` and ``training_error.png`` to ``out``
    (an existing folder) and return the :class:`~minires.train.History`. Under a process group
    each rank trains on its share (``batch_size / ranks``) of every batch and rank 0 alone writes.
    A run whose loss or weights stop being finite raises :class:`~minires.errors.TrainingDiverged`
    after ``history.json`` is written."""
    log = log or print_line
    if epochs is None and steps is None:
        epochs = 1
    rank, size = process_ranks()
    if batch_size % size:
        raise UsageError(f"--batch-size {batch_size} does not split over {size} ranks: give a "
                         f"multiple of {size} (each rank takes batch / ranks)")
    checkpoint = os.path.join(out, "checkpoint.npz")
    train, test = load_data(dataset, image_size, num_train, TRAIN_TEST_IMAGES, seed, data_dir)
    manual_seed(seed)
    model = models.get_model(model_name, **({} if models.is_imagenet_name(model_name) else
                                            {"width": width})).to(device)
    transform = Compose([RandomCrop(image_size, padding=4), RandomHorizontalFlip()]) \
        if augment else None
    train_data, per_rank = train, batch_size
    if size > 1:      # data-parallel: one replica per rank, each on its share of every batch
        from ..nn import SyncBatchNorm
        from ..nn.parallel import DistributedDataParallel
        from ..train import ShardedDataLoader
        per_rank = batch_size // size
        if sync_bn:
            model = SyncBatchNorm.convert_sync_batchnorm(model)
        model = DistributedDataParallel(model)
        train_data = ShardedDataLoader(train, size, rank, batch_size=per_rank, shuffle=True,
                                       drop_last=len(train) >= batch_size, seed=seed,
                                       transform=transform, device=device)
    given = dict(dataset=dataset, image_size=image_size, width=width, epochs=epochs, steps=steps,
                 batch_size=batch_size, lr=lr, warmup_steps=warmup_steps, num_train=num_train,
                 augment=augment, seed=seed, sync_bn=sync_bn)
    settings = {k: given[k] for k in TRAIN_SETTINGS} | {"model": model_name, "ranks": size}
    if resume:
        settings = _extension(checkpoint, settings, out, batch_size, train, log)
    history = fit(model, train_data, test, epochs=epochs, steps=steps,
                  optimizer=paper_optimizer(model, lr=lr), batch_size=per_rank,
                  checkpoint=checkpoint, resume=resume, save_checkpoint=rank == 0,
                  progress=progress and rank == 0, seed=seed,
                  transform=transform, warmup_steps=warmup_steps, device=device,
                  desc=model_name, settings=settings)
    if rank != 0:
        return history
    write_json({"model": model_name, "history": history.to_dict()},
               os.path.join(out, "history.json"))
    if history.diverged:
        kept = history.steps[-2] if len(history.steps) > 1 else None
        raise TrainingDiverged(
            f"training diverged at step {history.diverged_step}: the loss or the weights stopped "
            f"being finite; "
            + (f"{checkpoint} keeps step {kept}, the last finite state; " if kept else
               "no checkpoint was written; ")
            + "try a smaller --lr or a warm-up (--warmup-steps)")
    from ..diagnostics import plots     # matplotlib: loaded only to draw
    plots.save_figure(plots.training_curves_figure(
        [{"model": model_name, "steps": history.steps, "train_error": history.train_error}]),
        os.path.join(out, "training_error.png"))
    return history


def _extension(checkpoint: str, settings: dict, out: str, batch_size: int, train, log) -> dict:
    """A resume of a finished run with a longer ``epochs``/``steps``: the settings to resume with
    (the checkpoint's run length, so that only the total changes), after one line saying so; the
    total it already reached: nothing more to train, as a plain resume of a finished run.
    Anything else is left to ``fit``'s own check, except a shorter total or the extension of an
    unfinished run, refused in one line."""
    from .. import serialization
    from ..data.loader import DataLoader
    state = serialization.load(checkpoint)
    saved = state.get("settings") if isinstance(state, dict) else None
    if not saved or any(saved.get(k) != settings.get(k) for k in set(saved) | set(settings)
                        if k not in RUN_LENGTH) or \
            all(saved.get(k) == settings.get(k) for k in RUN_LENGTH):
        return settings             # the same run, or another one (fit says what differs)
    per_epoch = len(DataLoader(train, batch_size=batch_size,
                               drop_last=len(train) >= batch_size))

    def total(length: dict) -> int:
        return int(length["steps"]) if length.get("steps") else int(length["epochs"]) * per_epoch

    done, was, now = int(state["step"]), total(saved), total(settings)
    if done < was:
        raise UsageError(f"the run in {out} stopped at step {done} of its {was}: finish it "
                         f"first (--resume with the flags it was started with), then extend it")
    if now < done:
        raise UsageError(f"the run in {out} already trained {done} steps and --epochs/--steps "
                         f"ask for {now}: nothing to do; ask for more to extend it")
    if now > done:
        log(f"minires train: extending the finished run in {out} from step {done} to "
            f"{now} (from its last checkpoint; the learning rate carries on from its last "
            f"value)")
    return settings | {k: saved.get(k) for k in RUN_LENGTH}
