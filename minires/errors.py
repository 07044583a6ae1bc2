"""minires's own errors: one base class, so a program (and the ``minires`` command) can tell
"minires refused this, and says why" from a bug.

Every error here is raised with a message that says what is wrong and how to fix it, in one line.
The ``minires`` command catches :class:`MiniresError` once and prints that line (exit status 1);
anything else is a bug and keeps its traceback.

Each class also derives from the built-in exception a Python programmer would expect
(``ValueError`` for a bad file or value, ``RuntimeError`` for a state of the machine or the run),
so ``except ValueError`` keeps working.
"""
from __future__ import annotations


class MiniresError(Exception):
    """Base class of the errors minires raises on purpose (bad input, files, devices, runs)."""


class UsageError(MiniresError, ValueError):
    """An argument or setting that cannot work (e.g. a batch larger than the data set)."""


class CheckpointError(MiniresError, ValueError):
    """A file that is not a readable minires checkpoint, or one that does not fit the run
    resuming from it (another model, width or batch size)."""


class ResultsExistError(MiniresError, FileExistsError):
    """The output folder already holds results: resume them or overwrite them explicitly."""


class NothingToResumeError(MiniresError, FileNotFoundError):
    """``--resume`` was asked for, but the output folder holds nothing to resume."""


class AnomalyError(MiniresError, RuntimeError):
    """Under :func:`minires.autograd.detect_anomaly`: an operation produced a NaN or an
    infinity (forward or backward)."""


class TrainingDiverged(MiniresError, RuntimeError):
    """The loss or a parameter stopped being finite during training."""


class ConfigError(MiniresError, ValueError):
    """A ``MINIRES_*`` environment variable (or a setting of :data:`minires.config`) holds a
    value minires cannot read."""
