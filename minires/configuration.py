"""Every process-wide switch of minires in one object, as DeZero's ``Config``:
``print(minires.config)`` shows them all.

A switch changes what every later operation does without being passed to it. minires has two
kinds, and this module owns both:

* **modes**, set by code, per thread: grad mode (``mr.no_grad()``, ``mr.set_grad_enabled``),
  inference mode and anomaly mode (``mr.autograd.detect_anomaly()``), each a :class:`ThreadMode`;
  and the kernels that ``conv2d`` and batch norm run (:attr:`Config.kernels`), which
  ``minires.course.use`` swaps for a student's;
* **environment variables**, set outside the program (a shell, a notebook's first cell): the
  ``MINIRES_*`` table :data:`ENVIRONMENT`. They are read when a value is needed, never at import,
  so setting one in a running process takes effect at the next use; a value that cannot be read is
  a :class:`~minires.errors.ConfigError` that names the variable and the values it takes.

Training vs evaluation is not here: it is a flag of each ``nn.Module`` (``model.train()``,
``model.eval()``), separate from grad mode, as DeZero keeps ``Config.train`` apart from
``Config.enable_backprop``.

Nothing here imports the rest of minires (only :mod:`minires.errors`): every layer may read it.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Callable

from .errors import ConfigError

__all__ = ["Config", "config", "ThreadMode", "EnvVar", "ENVIRONMENT", "GRAD_MODE",
           "INFERENCE_MODE", "ANOMALY_MODE", "ACTIVE_KERNELS", "NUM_THREADS"]


class ThreadMode:
    """A boolean mode per thread, with a stack of the values that entering a context replaced.

    Per thread, as in PyTorch: a data-loading thread does not switch off the graph of the training
    loop. The context managers built on it keep the value they replace on this stack, never on
    themselves, so one object can be entered again before it is left (a decorator serves every
    call, recursive ones included, from every thread)."""

    def __init__(self, default: bool):
        self.default = default
        self._local = threading.local()

    def get(self) -> bool:
        return getattr(self._local, "value", self.default)

    def set(self, value: bool) -> None:
        self._local.value = bool(value)

    def push(self, value: bool) -> None:
        """Switch to ``value``, remembering the current value for :meth:`pop`."""
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        stack.append(self.get())
        self.set(value)

    def pop(self) -> None:
        """Go back to the value the matching :meth:`push` replaced."""
        self.set(self._local.stack.pop())


# --- the modes (per thread) ---
GRAD_MODE = ThreadMode(default=True)          # operations record a graph
INFERENCE_MODE = ThreadMode(default=False)    # inside inference_mode()
ANOMALY_MODE = ThreadMode(default=False)      # every output checked for NaN/inf

# --- the kernels conv2d and batch norm run: op name -> kernel module ---
# Filled with the built-in kernels by minires.ops.nn_ops (which imports them); each graph node
# keeps the kernel that ran its forward, so that its backward matches it.
ACTIVE_KERNELS: dict = {}


# --- the threads of the CPU kernels, for the whole process (not per thread) ---
# Set by mr.set_num_threads (minires.kernels.workers, which checks the value and owns the
# threads); None: as many as BLAS may use, read at each use.
class ProcessSetting:
    """One process-wide value, set through the function that owns it."""

    def __init__(self, value=None):
        self.value = value


NUM_THREADS = ProcessSetting()


# --- the environment variables ---
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _switch(name: str, text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name}={text!r} is not a switch: set it to 1 or 0 (also true/false, "
                      f"yes/no, on/off), or unset it for the default")


def _text(name: str, text: str) -> str:
    return text.strip()


@dataclass(frozen=True)
class EnvVar:
    """One ``MINIRES_*`` variable: its default (as text), what it does, and how it is read."""
    name: str
    default: str
    meaning: str
    parse: Callable[[str, str], object] = _text

    def raw(self) -> str:
        """The text set in the environment now ('' when unset)."""
        return os.environ.get(self.name, "").strip()

    def value(self):
        """The value now: the environment's, read and checked, else the default's."""
        return self.parse(self.name, self.raw() or self.default)


ENVIRONMENT = {v.name: v for v in (
    EnvVar("MINIRES_DEVICE", "", "default device of new tensors and of the `minires` command: "
           "cpu (unset), strict, cuda, cuda:N; cpu also hides the GPU from mr.cuda"),
    EnvVar("MINIRES_DATA", "~/.cache/minires", "where CIFAR-10 is downloaded and looked for "
           "(a folder)"),
    EnvVar("MINIRES_PROGRESS", "1", "progress bars of fit() and the `minires` command "
           "(0: off, as notebooks and the docs set it)", _switch),
    EnvVar("MINIRES_TUNE_MALLOC", "1", "fit() and the `minires` command tune glibc's malloc to "
           "keep host memory between steps (0: leave malloc's defaults)", _switch),
)}


def env(name: str):
    """The value of the ``MINIRES_*`` variable ``name`` now (see :data:`ENVIRONMENT`)."""
    try:
        return ENVIRONMENT[name].value()
    except KeyError:
        raise ConfigError(f"no minires environment variable {name!r}; they are: "
                          f"{', '.join(ENVIRONMENT)}") from None


class Config:
    """The switches, read and set in one place: ``mr.config.grad_enabled``,
    ``mr.config.anomaly``, ``mr.config.kernels``, ``mr.config.env("MINIRES_DEVICE")``;
    ``print(mr.config)`` lists them all with their current values.

    The modes are this thread's (set in one thread, they stay there); prefer the context managers
    (``mr.no_grad()``, ``detect_anomaly()``), which put the old value back on exit."""

    env = staticmethod(env)

    @property
    def grad_enabled(self) -> bool:
        """Operations record a graph (this thread); ``mr.is_grad_enabled()``."""
        return GRAD_MODE.get()

    @grad_enabled.setter
    def grad_enabled(self, value: bool) -> None:
        GRAD_MODE.set(value)

    @property
    def inference_mode(self) -> bool:
        """Inside ``mr.inference_mode()`` (this thread); ``mr.is_inference_mode_enabled()``."""
        return INFERENCE_MODE.get()

    @property
    def anomaly(self) -> bool:
        """Every output is checked for NaN/infinity (this thread);
        ``autograd.is_anomaly_enabled()``."""
        return ANOMALY_MODE.get()

    @anomaly.setter
    def anomaly(self, value: bool) -> None:
        ANOMALY_MODE.set(value)

    @property
    def num_threads(self):
        """The threads of the CPU kernels (the whole process), as given to
        ``mr.set_num_threads``; None until then: as many as BLAS may use
        (``mr.get_num_threads()`` gives the count in effect)."""
        return NUM_THREADS.value

    @property
    def kernels(self) -> dict:
        """The kernel module each of ``conv2d`` and ``batch_norm`` runs (the dict itself:
        ``minires.course.use`` swaps entries for a while)."""
        return ACTIVE_KERNELS

    def describe(self) -> str:
        """All the switches and their values now, one line each."""
        lines = ["minires.config (modes: this thread)",
                 f"  grad_enabled          {self.grad_enabled}",
                 f"  inference_mode        {self.inference_mode}",
                 f"  anomaly               {self.anomaly}"]
        lines += [f"  kernels[{op!r}]".ljust(24) + str(getattr(module, "__name__", module))
                  for op, module in ACTIVE_KERNELS.items()]
        threads = NUM_THREADS.value
        lines.append("process (all threads)")
        lines.append("  num_threads           " + (str(threads) if threads is not None else
                                                   "None (as many as BLAS may use)"))
        lines.append("environment (read at each use)")
        for var in ENVIRONMENT.values():
            raw = var.raw()
            shown = repr(raw) if raw else "unset" + (f" (default {var.default!r})"
                                                     if var.default else "")
            lines.append(f"  {var.name:<21} {shown}: {var.meaning}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.describe()


config = Config()
