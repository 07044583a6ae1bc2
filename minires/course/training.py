"""Grading a training loop by what it does (assignment 4).

The student writes ``train(kernels, data, steps, batch_size, lr) -> (model, losses)``: a fresh
ResNet trained with SGD on ``data`` (``.images``, ``.labels``), inside ``mr.course.use(kernels)``
when ``kernels`` is given, returning the model and the loss of every step. Two graders:

* :func:`check_sanity`, CS231n's sanity checks before a long run: the **first loss** is near
  ``ln(classes)`` (a freshly initialised net guesses uniformly; a loss summed over the batch, or
  taken before the softmax, is far from it), and the loop **overfits a tiny subset** (20 images)
  to a training error of at most 5%;
* :func:`check_training`: on the real run, the **loss falls** (the mean of the last 20 steps is
  below the mean of the first 20 by at least 0.1) and the model's **held-out error beats chance**
  (``1 - 1/classes``) by at least ``margin``.

Each returns a :class:`~minires.course.verdict.Verdict` with one part per property, like the
kernel checkers, and the numbers it measured in ``verdict.measured``.
"""
from __future__ import annotations

import contextlib
import math

import numpy

from .verdict import STUB_HINT, Verdict

INITIAL_LOSS_TOLERANCE = 0.5
"""Largest accepted distance of the first loss from ln(classes)."""
OVERFIT_IMAGES, OVERFIT_STEPS, OVERFIT_LR, OVERFIT_ERROR = 20, 40, 0.05, 0.05
FALL = 0.1
"""The mean loss of the last 20 steps must be below that of the first 20 by this much."""

INITIAL_HINT = ("a fresh net guesses about uniformly, so the first loss is about ln(classes) "
                "(2.30 for 10 classes): a loss summed over the batch instead of averaged, or "
                "computed before the softmax, is far from it")
OVERFIT_HINT = ("a working loop drives the training error on 20 images to about 0 within "
                "{steps} steps: check that every step calls zero_grad, backward and step, on "
                "the same model, and uses the batch's labels")
FALL_HINT = ("the loss should fall: check that opt.step() runs after loss.backward(), that the "
             "gradients are zeroed each step, and that each step takes a new batch")
HELD_OUT_HINT = ("the model's error on images it never saw should beat chance: train on the "
                 "whole training set (a new batch every step), with the given steps and lr, and "
                 "return the trained model")


class _Tiny:
    """The first ``n`` images of a dataset."""

    def __init__(self, data, n):
        self.images, self.labels = data.images[:n], data.labels[:n]


def error_rate(model, data, kernels=None, batch_size: int = 500) -> float:
    """The fraction of ``data`` that ``model`` (in eval mode, on ``kernels``) gets wrong."""
    import minires as mr
    was_training = model.training
    model.eval()
    wrong = 0
    try:
        with mr.no_grad(), (mr.course.use(kernels) if kernels is not None
                            else contextlib.nullcontext()):
            for start in range(0, len(data.labels), batch_size):
                logits = model(mr.tensor(data.images[start:start + batch_size])).numpy()
                wrong += int(numpy.sum(logits.argmax(axis=1) !=
                                       numpy.asarray(data.labels[start:start + batch_size])))
    finally:
        model.train(was_training)
    return wrong / len(data.labels)


def _run(train, kernels, data, steps, batch_size, lr):
    """``(model, losses, None)``, or ``(None, None, (failure, hint))`` when train misbehaves."""
    try:
        result = train(kernels, data, steps, batch_size, lr)
    except NotImplementedError:
        return None, None, ("train raised NotImplementedError", STUB_HINT.format(name="train"))
    except Exception as exc:     # the student's bug: report it
        return None, None, (f"train raised {type(exc).__name__}: {exc}", None)
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        return None, None, (f"train should return (model, losses), got {type(result).__name__}",
                            None)
    model, losses = result
    losses = [float(v) for v in losses]
    if len(losses) != steps:
        return None, None, (f"train returned {len(losses)} losses for {steps} steps", None)
    return model, losses, None


def _verdict(name: str, results: dict, cases: list, measured: dict, notes: dict | None = None
             ) -> Verdict:
    """``results``: part -> None (passed) or (case number, failure, hint)."""
    parts = {}
    for part, outcome in results.items():
        label = f"{name} {part}"
        if outcome is None:
            parts[part] = Verdict(label, "cpu", True, list(cases), note=(notes or {}).get(part))
        else:
            number, failure, hint = outcome
            parts[part] = Verdict(label, "cpu", False, list(cases), case=cases[number - 1],
                                  failure=failure, trap=hint, case_number=number)
    failed = [v for v in parts.values() if not v.passed]
    first = failed[0] if failed else None
    verdict = Verdict(name, "cpu", not failed, list(cases), parts=parts,
                      case=first and first.case, failure=first and first.failure,
                      trap=first and first.trap, case_number=first and first.case_number,
                      measured=measured, note="; ".join((notes or {}).values()) or None)
    return verdict


def check_sanity(train, kernels, data, classes: int = 10) -> Verdict:
    """CS231n's sanity checks of ``train``: the first loss near ln(classes), and a tiny subset
    (:data:`OVERFIT_IMAGES` images, :data:`OVERFIT_STEPS` steps) overfitted."""
    tiny = _Tiny(data, OVERFIT_IMAGES)
    cases = [f"train(kernels, {OVERFIT_IMAGES} images, steps={OVERFIT_STEPS}, "
             f"batch_size={OVERFIT_IMAGES}, lr={OVERFIT_LR})"]
    model, losses, broken = _run(train, kernels, tiny, OVERFIT_STEPS, OVERFIT_IMAGES, OVERFIT_LR)
    if broken:
        return _verdict("sanity", {"initial_loss": (1, *broken), "overfit": (1, *broken)},
                        cases, {})
    expected = math.log(classes)
    measured = {"first_loss": losses[0], "expected_first_loss": expected, "losses": losses,
                "tiny_error": error_rate(model, tiny, kernels)}
    results = {"initial_loss": None, "overfit": None}
    if not abs(losses[0] - expected) <= INITIAL_LOSS_TOLERANCE:
        results["initial_loss"] = (1, f"the first loss is {losses[0]:.3f}, not within "
                                      f"{INITIAL_LOSS_TOLERANCE} of ln({classes}) = "
                                      f"{expected:.3f}", INITIAL_HINT)
    if not measured["tiny_error"] <= OVERFIT_ERROR:
        results["overfit"] = (1, f"after {OVERFIT_STEPS} steps on {OVERFIT_IMAGES} images the "
                                 f"training error is {measured['tiny_error']:.0%}, above "
                                 f"{OVERFIT_ERROR:.0%}", OVERFIT_HINT.format(steps=OVERFIT_STEPS))
    notes = {"initial_loss": f"first loss {losses[0]:.3f}, ln({classes}) = {expected:.3f}",
             "overfit": f"training error on {OVERFIT_IMAGES} images after {OVERFIT_STEPS} steps "
                        f"{measured['tiny_error']:.0%}"}
    return _verdict("sanity", results, cases, measured, notes)


def check_training(train, kernels, train_set, test_set, steps: int, batch_size: int, lr: float,
                   classes: int = 10, margin: float = 0.05) -> Verdict:
    """``train`` on ``train_set``: its loss falls, and its held-out error on ``test_set`` is
    below chance (``1 - 1/classes``) by at least ``margin``. ``verdict.measured`` holds the
    losses, the model and its error."""
    cases = [f"train(kernels, {len(train_set.labels)} images, steps={steps}, "
             f"batch_size={batch_size}, lr={lr}), then {len(test_set.labels)} held-out images"]
    model, losses, broken = _run(train, kernels, train_set, steps, batch_size, lr)
    if broken:
        return _verdict("training", {"loss_falls": (1, *broken), "held_out": (1, *broken)},
                        cases, {})
    window = min(20, steps // 2)
    first, last = float(numpy.mean(losses[:window])), float(numpy.mean(losses[-window:]))
    chance = 1 - 1 / classes
    error = error_rate(model, test_set, kernels)
    measured = {"losses": losses, "model": model, "first_mean": first, "last_mean": last,
                "held_out_error": error, "chance_error": chance}
    results = {"loss_falls": None, "held_out": None}
    if not last < first - FALL:
        results["loss_falls"] = (1, f"the mean loss of the last {window} steps, {last:.3f}, is "
                                    f"not below that of the first {window}, {first:.3f}, by "
                                    f"{FALL}", FALL_HINT)
    if not error <= chance - margin:
        results["held_out"] = (1, f"held-out error {error:.1%}: chance is {chance:.0%}, and the "
                                  f"model should beat it by {margin:.0%}", HELD_OUT_HINT)
    notes = {"loss_falls": f"mean loss of the first {window} steps {first:.3f}, of the last "
                           f"{window} {last:.3f}",
             "held_out": f"held-out error {error:.1%} on {len(test_set.labels)} images (chance "
                         f"{chance:.0%})"}
    return _verdict("training", results, cases, measured, notes)
