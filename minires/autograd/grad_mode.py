"""Grad mode: whether operations build a graph (``no_grad``, ``enable_grad``,
``set_grad_enabled``, ``inference_mode``). Training vs evaluation is a separate flag, on ``nn.Module``.

The flag is per thread, as in PyTorch: a data-loading thread does not switch off the graph of
the training loop. The context managers keep the mode they replace on a per-thread stack, never
on themselves, so one object can be entered again before it is left: as a decorator (one
instance serves every call, recursive ones included, from every thread), or in nested ``with``
blocks. That mechanism, :class:`~minires.configuration.ThreadMode`, and the modes themselves live
in :mod:`minires.configuration` with the other process-wide switches (``mr.config``).
"""
from __future__ import annotations

import contextlib

from ..configuration import GRAD_MODE, INFERENCE_MODE  # noqa: F401
from ..configuration import ThreadMode  # noqa: F401  (its old path)


def is_grad_enabled() -> bool:
    return GRAD_MODE.get()


class _ModeContext(contextlib.ContextDecorator):
    """Enter: switch ``self.switch`` (a mode of :mod:`minires.configuration`) to ``self.mode``;
    exit (also on an exception): switch back."""

    switch = GRAD_MODE
    mode: bool

    def __enter__(self):
        self.switch.push(self.mode)
        return self

    def __exit__(self, *exc):
        self.switch.pop()
        return False


class no_grad(_ModeContext):
    """Context manager (and decorator) under which operations record no graph."""
    mode = False


class enable_grad(_ModeContext):
    """Context manager (and decorator) under which operations record a graph again (inside
    ``no_grad``)."""
    mode = True


class _SetMode(_ModeContext):
    """PyTorch's ``set_...(mode)`` shape: it switches the mode at once (so a plain call works),
    and as a context manager or decorator it switches back on exit."""

    def __init__(self, mode: bool):
        self.mode = bool(mode)
        self._before_init = self.switch.get()    # what the first `with` restores
        self.switch.set(self.mode)

    def _undo_init(self):
        if self._before_init is not None:
            self.switch.set(self._before_init)
            self._before_init = None

    def __enter__(self):
        # `with set_grad_enabled(m):` is entered just after __init__ switched: restore what was
        # there before the call, not the value __init__ set
        self._undo_init()
        return super().__enter__()

    def __call__(self, func):
        # as a decorator: undo the switch made at decoration time; each call switches for itself
        self._undo_init()
        return super().__call__(func)


class set_grad_enabled(_SetMode):
    """``set_grad_enabled(mode)``: as PyTorch's, it switches grad mode at once (so a plain call
    ``mr.set_grad_enabled(False)`` works), and as a context manager or decorator it switches back
    on exit."""


def is_inference_mode_enabled() -> bool:
    return INFERENCE_MODE.get()


class inference_mode(_ModeContext):
    """``inference_mode(mode=True)``: PyTorch's context manager (and decorator) for evaluation,
    here ``no_grad`` that also says so to ``is_inference_mode_enabled()``. The tensors made inside
    are ordinary tensors that require no grad (PyTorch's "inference tensors" also refuse to join
    a graph later; minires' do not)."""

    def __init__(self, mode: bool = True):
        self.inference = bool(mode)
        self.mode = not self.inference

    def __enter__(self):
        INFERENCE_MODE.push(self.inference)
        return super().__enter__()

    def __exit__(self, *exc):
        INFERENCE_MODE.pop()
        return super().__exit__(*exc)
