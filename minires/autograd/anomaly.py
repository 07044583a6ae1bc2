"""Anomaly mode: which operation made the first NaN or infinity?

Under ``detect_anomaly()`` (per thread, as grad mode), ``Function.apply`` calls
:func:`check_forward` on every output and the engine calls :func:`check_backward` on every
gradient a node returns. The mode itself (per thread, kept on a stack, not on the context
object: safe as a decorator, re-entrant) is ``ANOMALY_MODE`` of :mod:`minires.configuration`.
"""
from __future__ import annotations

import os
import traceback

import numpy

from ..devices import backend
from ..errors import AnomalyError
from ..configuration import ANOMALY_MODE
from .grad_mode import _ModeContext, _SetMode
from .tensor import Tensor



def is_anomaly_enabled() -> bool:
    return ANOMALY_MODE.get()


class detect_anomaly(_ModeContext):
    """Context manager (and decorator) that checks every operation's output, forward and
    backward, for NaN and infinity, and raises :class:`~minires.errors.AnomalyError` at the first
    one, naming the operation, its shapes and the line of your code that called it.

    Slow (one check and, on a GPU, one wait per operation): for finding a bug, not for training.
    """
    switch = ANOMALY_MODE
    mode = True


class set_detect_anomaly(_SetMode):
    """``set_detect_anomaly(mode)``: PyTorch's switch for anomaly mode, at once (a plain call
    ``set_detect_anomaly(True)`` works) and, as a context manager, back on exit.
    ``check_nan`` is accepted (minires always checks)."""
    switch = ANOMALY_MODE

    def __init__(self, mode: bool, check_nan: bool = True):
        super().__init__(mode)


def _nonfinite(array) -> str | None:
    """"NaN" or "infinity" if the floating array holds one, else None."""
    if isinstance(array, numpy.generic):
        array = numpy.asarray(array)
    if getattr(array, "dtype", None) is None or array.dtype.kind not in "fc":
        return None
    xp = backend.array_module(array)
    nan, finite = backend.to_host(xp.stack([xp.isnan(array).any(), xp.isfinite(array).all()]))
    return "NaN" if nan else None if finite else "infinity"


def _caller() -> str:
    """``file:line`` of the innermost frame outside minires: where the user called the op."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # minires/
    for frame in reversed(traceback.extract_stack()):
        if not os.path.abspath(frame.filename).startswith(package + os.sep):
            return f"{frame.filename}:{frame.lineno}"
    return "?"


def check_forward(fn, args, out) -> None:
    """Under detect_anomaly: raise if ``fn``'s forward made a non-finite value (or was given
    one that no checked operation made: a parameter or the data)."""
    fn.anomaly_caller = _caller()
    what = _nonfinite(out)
    if what is None:
        return
    shapes = ", ".join(str(tuple(a.shape)) for a in args if isinstance(a, Tensor))
    for i, a in enumerate(args):
        given = _nonfinite(a.array) if isinstance(a, Tensor) else None
        if given is not None:
            raise AnomalyError(
                f"detect_anomaly: {fn.name} (forward, called at {fn.anomaly_caller}) was given "
                f"{given} in its input {i} of shape {tuple(a.shape)}: that tensor was not made by "
                f"an operation under detect_anomaly (the data or a parameter?): find where it "
                f"became non-finite, e.g. numpy.isfinite(t.numpy()).all()")
    raise AnomalyError(
        f"detect_anomaly: {fn.name} (forward, called at {fn.anomaly_caller}) produced {what} in "
        f"its output of shape {tuple(out.shape)} from finite inputs of shapes {shapes}")


def check_backward(ctx, grad_output, input_grads) -> None:
    """Under detect_anomaly: raise if ``ctx``'s backward returned a non-finite gradient."""
    for i, g in enumerate(input_grads):
        what = _nonfinite(g) if g is not None else None
        if what is None:
            continue
        given = _nonfinite(grad_output)
        where = getattr(ctx, "anomaly_caller", None)
        raise AnomalyError(
            f"detect_anomaly: {ctx.name} (backward"
            + (f", of the call at {where}" if where else "") + f") returned {what} in the "
            f"gradient of its input {i} of shape {tuple(g.shape)}, "
            + (f"because the gradient it was given (shape {tuple(grad_output.shape)}) already "
               f"held {given} (from a hook or the `gradient` passed to backward())" if given else
               f"from a finite gradient of shape {tuple(grad_output.shape)}"))
