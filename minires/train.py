"""The training loop: :func:`fit` trains a model with the paper's SGD recipe and records a
:class:`History` of training and test error.

One step is the textbook loop, written out::

    optimizer.zero_grad()
    loss = F.cross_entropy(model(images), labels)
    loss.backward()
    optimizer.step()
    scheduler.step()

Every ``eval_every`` steps the loop records the training loss and error (over the mini-batches
since the last record, as the paper's training curves do), evaluates on the test data in eval mode
(running batch-norm statistics, no graph), calls the callbacks, and writes the checkpoint.
A checkpoint holds everything needed to continue exactly: model, optimiser, schedule, step, the
data loader's position, the random state and the history so far.

A run **diverges** when the loss or a parameter stops being finite. The loop finds out at the next
record (the per-step losses are kept on the device until then, so no step waits for the GPU),
names the first step whose loss was not finite, and stops without writing the checkpoint: the file
keeps the last state that was finite.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field

import numpy

from . import configuration, random as mr_random, serialization
from .devices import backend
from .autograd import Tensor, no_grad
from .data.loader import DataLoader
from .data.sharding import shard_indices
from .devices.host_allocator import tune_host_allocator
from .errors import CheckpointError
from .nn import functional as F
from .optim import SGD
from .optim.lr_scheduler import LinearLR, MultiStepLR, SequentialLR


@dataclass
class History:
    """What :func:`fit` measured. Errors are in percent."""
    steps: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_error: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_error: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: float = 0.0
    diverged: bool = False
    diverged_step: int | None = None   # the first step whose loss (or update) was not finite

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        return cls(**{k: ([math.nan if x is None else x for x in v]
                          if isinstance(v, (list, tuple)) else v) for k, v in d.items()})

    @property
    def final_train_error(self) -> float:
        return self.train_error[-1] if self.train_error else math.nan

    @property
    def final_test_error(self) -> float:
        return self.test_error[-1] if self.test_error else math.nan


def progress_enabled(progress: bool = True) -> bool:
    """Progress bars are on unless ``progress=False`` or MINIRES_PROGRESS=0 (notebooks and docs
    set it so their executed outputs stay clean)."""
    return bool(progress) and configuration.env("MINIRES_PROGRESS")


def paper_optimizer(model, lr: float = 0.1, momentum: float = 0.9, weight_decay: float = 1e-4):
    """The paper's optimiser: SGD, momentum 0.9, weight decay 1e-4, lr 0.1."""
    return SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)


def paper_schedule(optimizer, total_steps: int, warmup_steps: int = 0, decay: bool = True):
    """The paper's schedule scaled to ``total_steps``: lr / 10 at 50% and 75% of training (32k and
    48k of 64k iterations), after an optional linear warm-up. ``decay=False`` keeps the rate
    constant after the warm-up (for short runs, where an early decay would freeze the slower,
    deeper nets before they get going)."""
    milestones = [int(total_steps * 0.5), int(total_steps * 0.75)] if decay else []
    if warmup_steps <= 0:
        return MultiStepLR(optimizer, milestones, gamma=0.1)
    warmup = LinearLR(optimizer, start_factor=1.0 / max(warmup_steps, 1), end_factor=1.0,
                      total_iters=warmup_steps)
    after = MultiStepLR(optimizer, [max(m - warmup_steps, 1) for m in milestones], gamma=0.1)
    return SequentialLR(optimizer, [warmup, after], milestones=[warmup_steps])


def _model_device(model):
    for p in model.parameters():
        return p.device
    return backend.default_device()


class Callback:
    """The hooks :func:`fit` calls, all optional: subclass and override what you need, or pass
    a plain function ``f(step, model, metrics)`` (it is the record hook).

    - ``callback(step, model, metrics)``: at every record (every ``eval_every`` steps), after
      the evaluation; ``metrics`` holds the latest value of each :class:`History` list and
      ``"step"``.
    - ``on_after_backward(step, model)``: every step, once the gradients are computed and
      before the optimiser uses them.
    - ``on_after_step(step, model)``: every step, after the update.

    ``step`` counts from 1 (the step just taken).
    """

    def __call__(self, step: int, model, metrics: dict) -> None:
        pass

    def on_after_backward(self, step: int, model) -> None:
        pass

    def on_after_step(self, step: int, model) -> None:
        pass


def _notify(callbacks, hook: str, *args) -> None:
    """Call ``hook`` on every callback that has it (plain functions have only ``__call__``)."""
    for callback in callbacks:
        method = getattr(callback, hook, None)
        if method is not None:
            method(*args)


class LossErrorTally:
    """The summed loss and count of wrong predictions over batches, kept on the device (adding
    a batch makes the GPU wait for nothing) and read back in one transfer by :meth:`read`."""

    def __init__(self, device):
        self.xp = backend.get_array_module(device)
        self.loss_sum = self.wrong = None
        self.count = 0

    def add(self, logits: Tensor, labels: Tensor, loss_sum) -> None:
        """One batch: its logits, labels and the array of its loss summed over the batch."""
        wrong = (logits.array.argmax(axis=1) != labels.array).sum()
        self.loss_sum = loss_sum if self.loss_sum is None else self.loss_sum + loss_sum
        self.wrong = wrong if self.wrong is None else self.wrong + wrong
        self.count += labels.shape[0]

    def read(self) -> tuple[float, float]:
        """``(mean loss, error %)`` over the batches added; NaN for both when there were none."""
        if self.count == 0:
            return math.nan, math.nan
        xp = self.xp
        loss_sum, wrong = backend.to_host(
            xp.stack([xp.asarray(self.loss_sum, dtype=xp.float64),
                      xp.asarray(self.wrong, dtype=xp.float64)])).tolist()
        return loss_sum / self.count, 100.0 * wrong / self.count


def evaluate(model, data, batch_size: int = 256, device=None, max_batches: int | None = None):
    """``(loss, error %)`` of ``model`` on a dataset or loader, in eval mode, without a graph.
    The model's training mode is restored afterwards."""
    device = device or _model_device(model)
    loader = data if isinstance(data, DataLoader) else \
        DataLoader(data, batch_size=batch_size, shuffle=False, device=device)
    was_training = model.training
    model.eval()
    tally = LossErrorTally(device)
    try:
        with no_grad():
            for b, (images, labels) in enumerate(loader):
                if max_batches is not None and b >= max_batches:
                    break
                logits = model(images)
                tally.add(logits, labels, F.cross_entropy(logits, labels, reduction="sum").array)
    finally:
        model.train(was_training)
    return tally.read()


def train_step(model, images: Tensor, labels: Tensor, optimizer, scheduler=None, *,
               step: int = 0, callbacks=()) -> tuple[Tensor, Tensor]:
    """One step of the textbook loop (zero the gradients, forward, cross-entropy, backward,
    update, advance the schedule), calling the callbacks' per-step hooks with ``step``.
    Returns ``(logits, loss)``."""
    optimizer.zero_grad()
    logits = model(images)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    _notify(callbacks, "on_after_backward", step, model)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    _notify(callbacks, "on_after_step", step, model)
    return logits, loss


def fit(model, train_data, test_data=None, *, steps: int | None = None,
        epochs: int | None = None, optimizer=None, scheduler=None, batch_size: int = 128,
        eval_every: int | None = None, callbacks=(), checkpoint: str | None = None,
        resume: bool = False, progress: bool = True, seed: int = 0, device=None,
        transform=None, warmup_steps: int = 0, lr_decay: bool = True,
        eval_batches: int | None = None, desc: str | None = None,
        settings: dict | None = None, save_checkpoint: bool = True) -> History:
    """Train ``model`` on ``train_data`` (a dataset or a :class:`~minires.data.DataLoader`) and
    return the :class:`History` of its training and test error. Give ``steps`` or ``epochs``.

    The keywords, by job:

    *What to train on, how long:* ``steps`` or ``epochs``; ``batch_size`` (a dataset is served in
    shuffled full batches, seeded by ``seed``, through ``transform``); ``device`` (the model is
    moved there; default: where its parameters are).

    *The recipe:* ``optimizer`` and ``scheduler``, by default the paper's: SGD with lr 0.1,
    momentum 0.9, weight decay 1e-4, lr divided by 10 at 50% and 75% of the steps
    (``lr_decay=False``: never; ``warmup_steps`` adds a linear warm-up).

    *Measuring:* every ``eval_every`` steps (default: 10 records over the run) the history gets
    the training loss/error since the last record and the test loss/error (all of ``test_data``,
    or its first ``eval_batches`` batches), and the ``callbacks`` are called (see
    :class:`Callback`: ``callback(step, model, metrics)``, and per step
    ``on_after_backward``/``on_after_step`` where defined). ``progress`` shows a bar (titled
    ``desc``; ``MINIRES_PROGRESS=0`` hides it everywhere).

    *Checkpoints:* at each record ``checkpoint`` (a path) is written. With ``resume=True`` and an
    existing checkpoint, training continues from it exactly where it stopped; ``settings`` (a dict
    of numbers and strings describing the run, e.g. the model name and width) is stored in the
    checkpoint, and resuming with other settings, or from a checkpoint of another model, raises
    :class:`~minires.errors.CheckpointError`. ``save_checkpoint=False`` reads ``checkpoint`` to
    resume but never writes it (the ranks other than 0 of a data-parallel run, whose replicas
    are rank 0's).

    A non-finite loss or parameter ends the run early: the history is marked ``diverged``, with
    ``diverged_step`` the first step whose loss was not finite, and the checkpoint is not
    overwritten, so it holds the last finite state.
    """
    tune_host_allocator()   # recycle host memory between steps (MINIRES_TUNE_MALLOC=0: don't)
    run = _plan(model, train_data, test_data, steps=steps, epochs=epochs, optimizer=optimizer,
                scheduler=scheduler, batch_size=batch_size, eval_every=eval_every,
                callbacks=callbacks, checkpoint=checkpoint, save_checkpoint=save_checkpoint,
                settings=settings, seed=seed, device=device, transform=transform,
                warmup_steps=warmup_steps, lr_decay=lr_decay, eval_batches=eval_batches)
    mr_random.manual_seed(seed)
    if checkpoint and resume and os.path.exists(checkpoint):
        run.history, run.step = _resume(checkpoint, run.device, settings, model, run.optimizer,
                                        run.scheduler, run.loader)
    bar = _progress_bar(progress, run, desc)
    try:
        _train(run, bar)
    finally:
        if bar is not None:
            bar.close()
    return run.history


@dataclass
class _Run:
    """One run of :func:`fit`: what its loop needs, built once from the keywords by
    :func:`_plan`, and where it stands (``step``, ``history``)."""
    model: object
    loader: DataLoader
    test_data: object
    device: object
    optimizer: object
    scheduler: object
    total: int                      # steps to take in all
    eval_every: int                 # steps between records
    eval_batch_size: int
    eval_batches: int | None
    callbacks: list
    checkpoint: str | None
    save_checkpoint: bool
    settings: dict | None
    history: History = field(default_factory=History)
    step: int = 0                   # steps taken so far


def _plan(model, train_data, test_data, *, steps, epochs, optimizer, scheduler, batch_size,
          eval_every, callbacks, checkpoint, save_checkpoint, settings, seed, device, transform,
          warmup_steps, lr_decay, eval_batches) -> _Run:
    """Check ``fit``'s keywords and build the run: the model on its device, the loader, the
    number of steps, the optimiser and schedule (the paper's unless given)."""
    if device is not None:
        model.to(device)
    # (a model of lazy modules only has no parameter to tell its device yet)
    device = backend.normalize_device(device) if device is not None else _model_device(model)
    if steps is None and epochs is None:
        raise ValueError("fit: give steps= or epochs=")
    if steps is not None and epochs is not None:
        raise ValueError("fit: give steps= or epochs=, not both")
    loader = _training_loader(train_data, batch_size, seed, transform, device)
    total = int(steps) if steps is not None else int(epochs) * len(loader)
    if total < 1:
        raise ValueError(f"fit: nothing to train ({total} steps)")
    eval_every = int(eval_every) if eval_every else max(1, total // 10)
    if eval_every < 1:
        raise ValueError(f"fit: eval_every must be >= 1, got {eval_every}")
    _materialize_lazy_modules(model, loader, optimizer)
    optimizer = optimizer or paper_optimizer(model)
    scheduler = scheduler or paper_schedule(optimizer, total, warmup_steps, decay=lr_decay)
    callbacks = list(callbacks) if isinstance(callbacks, (list, tuple)) else [callbacks]
    return _Run(model=model, loader=loader, test_data=test_data, device=device,
                optimizer=optimizer, scheduler=scheduler, total=total, eval_every=eval_every,
                eval_batch_size=max(batch_size, 256), eval_batches=eval_batches,
                callbacks=callbacks, checkpoint=checkpoint, save_checkpoint=save_checkpoint,
                settings=settings)


def _progress_bar(progress: bool, run: _Run, desc: str | None):
    """A tqdm bar over the run's steps (starting at a resumed step), or None."""
    if not progress_enabled(progress):
        return None
    from tqdm.auto import tqdm
    return tqdm(total=run.total, initial=run.step,
                desc=desc or getattr(run.model, "name", "train"), leave=False,
                dynamic_ncols=True)


def _train(run: _Run, bar) -> None:
    """The loop: one :func:`train_step` per batch until ``run.total`` steps, a record every
    ``run.eval_every`` steps; it stops early at a record that finds the run diverged."""
    run.model.train()
    tally = LossErrorTally(run.device)  # the training loss and error since the last record
    step_losses = []        # this record's per-step losses, on the device: who went non-finite
    started = time.perf_counter() - run.history.seconds
    for images, labels in _endless(run.loader):
        if run.step >= run.total:
            break
        run.step += 1
        logits, loss = train_step(run.model, images, labels, run.optimizer, run.scheduler,
                                  step=run.step, callbacks=run.callbacks)
        with no_grad():
            step_losses.append(loss.array)
            tally.add(logits, labels, loss.array * labels.shape[0])
        if bar is not None:
            bar.update(1)
        if run.step % run.eval_every == 0 or run.step == run.total:
            diverged = _at_record(run, tally, step_losses, started, bar)
            tally, step_losses = LossErrorTally(run.device), []
            if diverged:
                break           # the checkpoint keeps the last finite state
    run.history.seconds = time.perf_counter() - started


def _at_record(run: _Run, tally: LossErrorTally, step_losses: list, started: float,
               bar) -> bool:
    """Every ``eval_every`` steps: record the metrics, call the callbacks, check that the run is
    still finite and, if it is, write the checkpoint. Returns whether the run diverged."""
    history, step = run.history, run.step
    metrics = _record(history, step, tally, run.optimizer, run.model, run.test_data,
                      run.eval_batch_size, run.device, run.eval_batches)
    history.seconds = time.perf_counter() - started
    if bar is not None:
        bar.set_postfix(loss=f"{metrics['train_loss']:.3f}", err=f"{metrics['train_error']:.1f}%")
    for callback in run.callbacks:
        if callable(callback):
            callback(step, run.model, metrics)
    bad_step = _first_nonfinite_step(step_losses, step, run.model)
    if bad_step is not None:
        history.diverged, history.diverged_step = True, bad_step
        return True
    if run.checkpoint and run.save_checkpoint:
        _save_checkpoint(run.checkpoint, run.model, run.optimizer, run.scheduler, run.loader,
                         history, step, run.settings)
    return False


class ShardedDataLoader(DataLoader):
    """``DataLoader(dataset, ...)`` serving rank ``rank``'s share of every epoch: the loader's own
    epoch order (the same on every rank: one seed) split by DistributedSampler's rule
    (:func:`minires.data.sharding.shard_indices`). For data-parallel training, with
    ``batch_size`` the batch per rank."""

    def __init__(self, dataset, num_replicas: int, rank: int, **kwargs):
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        super().__init__(dataset, **kwargs)

    def __len__(self) -> int:
        n = -(-len(self.dataset) // self.num_replicas)          # padded share per rank
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def epoch_order(self, epoch: int):
        return shard_indices(super().epoch_order(epoch), self.num_replicas, self.rank)


def _materialize_lazy_modules(model, loader, optimizer) -> None:
    """Create the parameters of the model's lazy modules (``LazyLinear`` ...) before the optimiser
    is built from ``model.parameters()``: one dry forward of the first batch, in evaluation mode
    and without a graph, so no weight, statistic, random stream or loader position changes. An
    optimiser built before (``optimizer=``) cannot know those parameters: that is refused."""
    lazy = [type(m).__name__ for m in model.modules()
            if getattr(m, "has_uninitialized_params", lambda: False)()]
    if not lazy:
        return
    images, _ = loader.peek()
    was_training = model.training
    model.eval()
    with no_grad():
        model(images)
    model.train(was_training)
    if optimizer is not None:
        known = {id(p) for group in optimizer.param_groups for p in group["params"]}
        if any(id(p) not in known for p in model.parameters() if p.requires_grad):
            raise ValueError(
                f"fit: the optimizer was built before the lazy modules ({', '.join(lazy)}) had "
                f"parameters, so it would never train them; run one batch through the model "
                f"first (model(images)), then build the optimizer, or let fit build it")


def _training_loader(train_data, batch_size: int, seed: int, transform, device) -> DataLoader:
    if isinstance(train_data, DataLoader):
        return train_data
    # full batches only (batch-norm statistics of a 3-sample last batch are noise), unless the
    # whole dataset is smaller than one batch
    return DataLoader(train_data, batch_size=batch_size, shuffle=True,
                      drop_last=len(train_data) >= batch_size, seed=seed, transform=transform,
                      device=device)


def _endless(loader):
    """The loader's batches, epoch after epoch."""
    while True:
        yield from loader


def _record(history: History, step: int, tally: LossErrorTally, optimizer, model, test_data,
            eval_batch_size: int, device, eval_batches: int | None) -> dict:
    """Append one record to ``history`` (training loss/error since the last record, learning
    rate, test loss/error); the metrics the callbacks get: the latest value of each list."""
    train_loss, train_error = tally.read()
    history.steps.append(step)
    history.train_loss.append(train_loss)
    history.train_error.append(train_error)
    history.lr.append(float(optimizer.param_groups[0]["lr"]))
    if test_data is not None:
        test_loss, test_error = evaluate(model, test_data, batch_size=eval_batch_size,
                                         device=device, max_batches=eval_batches)
        history.test_loss.append(test_loss)
        history.test_error.append(test_error)
    metrics = {k: v[-1] for k, v in history.to_dict().items() if isinstance(v, list) and v}
    metrics["step"] = step
    return metrics


def _save_checkpoint(path: str, model, optimizer, scheduler, loader, history: History,
                     step: int, settings: dict | None) -> None:
    """Everything needed to continue exactly (see :func:`_resume`)."""
    serialization.save({
        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(), "loader": loader.state_dict(),
        "rng": mr_random.get_rng_state(), "history": history.to_dict(),
        "step": step, "settings": dict(settings or {})}, path)


def _first_nonfinite_step(step_losses: list, step: int, model) -> int | None:
    """The first step among the last ``len(step_losses)`` (ending at ``step``) whose loss was not
    finite; else ``step`` if the last update left a parameter or buffer non-finite; else None.
    One transfer from the device."""
    params = [t.array for t in model.state_dict().values() if t.dtype.kind == "f"]
    if not step_losses and not params:
        return None
    xp = backend.array_module((step_losses or params)[0])
    finite = xp.stack([xp.isfinite(a).all() for a in step_losses + params])
    finite = backend.to_host(finite)
    losses_ok, params_ok = finite[:len(step_losses)], finite[len(step_losses):]
    if not losses_ok.all():
        return step - len(step_losses) + 1 + int(numpy.argmin(losses_ok))
    return None if params_ok.all() else step


def _resume(checkpoint: str, device, settings, model, optimizer, scheduler, loader):
    """Load ``checkpoint`` into the run's objects; ``(history, step)``. Anything that does not
    fit (another model, width, batch size, data or settings) raises one CheckpointError."""
    state = serialization.load(checkpoint, map_location=device)
    fix = ("resume with the settings it was written with, or start a new run (minires: "
           "--overwrite, or another --out)")
    if not isinstance(state, dict) or not {"model", "optimizer", "scheduler", "loader", "rng",
                                            "history", "step"} <= set(state):
        raise CheckpointError(f"{checkpoint} is a minires file but not a training checkpoint "
                              f"(it lacks model/optimizer/step entries); {fix}")
    saved = state.get("settings")          # None in a checkpoint of an older minires
    wanted = dict(settings or {})
    differ = [] if saved is None else \
        sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))
    if differ:
        was = ", ".join(f"{k}={saved.get(k)!r}" for k in differ)
        now = ", ".join(f"{k}={wanted.get(k)!r}" for k in differ)
        raise CheckpointError(f"{checkpoint} was written by a run with {was}; this run has {now}; "
                              f"{fix}")
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        loader.load_state_dict(state["loader"])
        mr_random.set_rng_state(state["rng"])
        history = History.from_dict(state["history"])
        step = int(state["step"])
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        reason = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        raise CheckpointError(f"{checkpoint} does not fit this run (another model, width, "
                              f"optimizer or batch size?): {reason}; {fix}") from None
    return history, step
