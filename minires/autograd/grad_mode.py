"""Grad mode: whether operations build a graph (``no_grad``, ``enable_grad``,
``set_grad_enabled``). Training vs evaluation is a separate flag, on ``nn.Module``.

The flag is per thread, as in PyTorch: a data-loading thread does not switch off the graph of
the training loop.
"""
from __future__ import annotations

import contextlib
import threading

_state = threading.local()


def is_grad_enabled() -> bool:
    return getattr(_state, "grad_enabled", True)


@contextlib.contextmanager
def set_grad_enabled(mode: bool):
    previous = is_grad_enabled()
    _state.grad_enabled = bool(mode)
    try:
        yield
    finally:
        _state.grad_enabled = previous


class no_grad(contextlib.ContextDecorator):
    """Context manager (and decorator) under which operations record no graph."""

    def __enter__(self):
        self._previous = is_grad_enabled()
        _state.grad_enabled = False

    def __exit__(self, *exc):
        _state.grad_enabled = self._previous
        return False


class enable_grad(no_grad):
    def __enter__(self):
        self._previous = is_grad_enabled()
        _state.grad_enabled = True
