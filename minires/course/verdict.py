r"""What a checker hands back, and the machinery every checker shares.

**Relative error** (CS231n's ``rel_error``): for arrays ``a`` and ``b``,

.. math::  \max_i \frac{|a_i - b_i|}{\max(10^{-8},\ |a_i| + |b_i|)}

In float64 a correct kernel agrees with minires's to about 1e-12, and with a central-difference
numeric gradient to about 1e-8; an error near 1 means the answer is simply wrong.

**Numeric gradient** of ``L = sum(f(x) * dy)``: ``dL/dx_i ~ (L(x + h e_i) - L(x - h e_i)) / 2h``,
one element at a time, in float64 on the host (the arrays of a check are tiny).

A :class:`Checker` runs one piece's cases in order, each adding one difficulty to the cases before
it (overlapping windows, padding, a stride that does not divide the input...). When a comparison
fails, the hint is the first *trap signature* the wrong answer matches (the result a known mistake
produces, e.g. col2im that assigns instead of adding), else the trap of the case that adds the
difficulty the student's code missed.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy

from ..devices import backend

REFERENCE_TOLERANCE = 1e-7
"""Largest relative error accepted against minires's kernel (both in float64)."""
NUMERIC_TOLERANCE = 1e-5
"""Largest relative error accepted against the central-difference gradient (h = 1e-5)."""


def relative_error(a, b) -> float:
    """CS231n's relative error: ``max |a - b| / max(1e-8, |a| + |b|)``, over all elements."""
    a = numpy.asarray(a, dtype=numpy.float64)
    b = numpy.asarray(b, dtype=numpy.float64)
    if a.size == 0:
        return 0.0
    with numpy.errstate(invalid="ignore", over="ignore"):     # inf or NaN gives NaN: a failure
        err = numpy.max(numpy.abs(a - b) / numpy.maximum(1e-8, numpy.abs(a) + numpy.abs(b)))
    return float(err) if numpy.isfinite(err) else float("inf")


def numeric_gradient(f, x, dy, h: float = 1e-5):
    """``d sum(f(x) * dy) / dx`` by central differences; ``f`` maps a float64 host array to one.
    ``x`` is perturbed in place and restored."""
    grad = numpy.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        saved = flat[i]
        flat[i] = saved + h
        plus = numpy.sum(f(x) * dy)
        flat[i] = saved - h
        minus = numpy.sum(f(x) * dy)
        flat[i] = saved
        gflat[i] = (plus - minus) / (2 * h)
    return grad


class MissingFunctionError(LookupError):
    """The student's code does not define a function the piece needs."""


@dataclass
class Verdict:
    """The outcome of checking one piece (or one part of it: ``verdict.part("backward")``).
    ``passed`` is the answer; the rest say why not."""

    piece: str
    device: str
    passed: bool
    cases: list = field(default_factory=list)      # descriptions of the cases that were run
    case: str | None = None                         # the failing case, with its shapes
    failure: str | None = None                      # what disagreed (or what raised)
    trap: str | None = None                         # the hint: which known mistake this looks like
    error_vs_reference: float | None = None         # worst relative error vs minires's kernel
    error_vs_numeric: float | None = None           # worst relative error vs the numeric gradient
    case_number: int | None = None                  # 1-based number of the failing case
    parts: dict = field(default_factory=dict)       # part name -> the Verdict of that part alone
    refused: str | None = None                      # why the piece was not checked at all
    measured: dict = field(default_factory=dict, repr=False)    # numbers a grader measured
    note: str | None = None                         # what they were, for the report

    def __bool__(self) -> bool:
        return self.passed

    def part(self, name: str) -> "Verdict":
        """The verdict of one part (``"forward"``, ``"backward"``, ...: :data:`PIECES`' parts)."""
        if name not in self.parts:
            raise KeyError(f"{self.piece} has no part {name!r}; its parts are "
                           f"{', '.join(self.parts)}")
        return self.parts[name]

    def report(self) -> str:
        def err(v):
            return "not compared" if v is None else f"{v:.1e}"
        if self.refused:
            return f"{self.piece}: REFUSED: {self.refused}"
        if self.passed and self.note:
            return f"{self.piece}: PASSED on {self.device}: {self.note}"
        if self.passed:
            return (f"{self.piece}: PASSED on {self.device}, {len(self.cases)} cases "
                    f"(relative error vs minires {err(self.error_vs_reference)}, vs numeric "
                    f"gradient {err(self.error_vs_numeric)})")
        if len(self.parts) > 1:     # one line for the piece, then each failed part's report
            lines = [f"{self.piece}: FAILED on {self.device}: " + ", ".join(
                f"{name} {'passed' if v.passed else 'FAILED'}" for name, v in self.parts.items())]
            return "\n".join(lines + [v.report() for v in self.parts.values() if not v.passed])
        if self.case is None:   # a part that was never reached
            lines = [f"{self.piece}: FAILED on {self.device}: {self.failure}"]
        else:
            lines = [f"{self.piece}: FAILED on {self.device}, case {self.case_number}: "
                     f"{self.case}", f"  {self.failure}"]
        if self.error_vs_reference is not None or self.error_vs_numeric is not None:
            lines.append(f"  in this case: relative error vs minires {err(self.error_vs_reference)},"
                         f" vs numeric gradient {err(self.error_vs_numeric)}")
        if self.trap:
            lines.append(f"  hint: {self.trap}")
        return "\n".join(lines)

    __str__ = report

    def assert_passed(self, part: str | None = None) -> "Verdict":
        """Raise ``AssertionError`` with the report unless the piece (or its ``part``) passed, for
        autograder cells; returns the verdict (of the part) so that a notebook can display it."""
        if self.refused:
            raise AssertionError(self.report())
        verdict = self if part is None else self.part(part)
        if not verdict.passed:
            raise AssertionError(verdict.report())
        return verdict


class CheckFailed(Exception):
    def __init__(self, message: str, trap: str | None = None, part: str | None = None):
        super().__init__(message)
        self.message, self.trap, self.part = message, trap, part


class Refused(Exception):
    """The piece is minires's own code, or calls into it while being checked."""


def lookup(student, name):
    """A function of the student's code: a module, any object, or a dict such as ``globals()``."""
    f = student.get(name) if isinstance(student, dict) else getattr(student, name, None)
    return f if callable(f) else None


STUB_HINT = ("{name} is still a stub: replace `raise NotImplementedError` with your code")
DEVICE_HINT = ("{name} mixed host (NumPy) and device arrays: build new arrays with the inputs' "
               "array module, xp = minires.backend.array_module(x), not with np")


class Checker:
    """One run of one piece's cases against the student's functions, on one device."""

    def __init__(self, piece: str, student, device: str = "cpu", seed: int = 0,
                 parts: dict | None = None, allowed_calls: tuple[str, ...] = ()):
        self.piece, self.student = piece, student
        self.device = str(backend.normalize_device(device))
        self.xp = backend.get_array_module(self.device)
        self.rng = numpy.random.default_rng(seed)
        self.cases: list[str] = []
        self.case_trap: str | None = None
        self.worst = {"reference": None, "numeric": None}
        self.last = {"reference": None, "numeric": None}
        # part name -> the prefixes of the function names and compared quantities it owns
        self.parts = parts or {piece: ("",)}
        self.allowed_calls = allowed_calls
        self.failures: dict = {}        # part -> its first failure: (case number, case, error)
        self.reached: set = set()       # parts that had at least one comparison or call

    def part_of(self, what: str) -> str:
        """The part a function name or a compared quantity (``"conv2d_backward's dx"``) is in."""
        for part, prefixes in self.parts.items():
            if any(what.startswith(p) for p in prefixes):
                return part
        return next(iter(self.parts))

    def fail(self, failure: "CheckFailed"):
        """Record a failure of its part (the first one of each part counts); checking goes on,
        so that the other parts still earn their points."""
        part = failure.part or next(iter(self.parts))
        self.reached.add(part)
        if part not in self.failures:
            self.failures[part] = (len(self.cases), self.cases[-1] if self.cases else None,
                                   failure, dict(self.last))

    # --- data ---
    def randn(self, *shape):
        return self.rng.standard_normal(shape)

    def distinct(self, *shape):
        """Values with no ties and at least 0.05 apart (max pooling and ReLU are not
        differentiable at ties and kinks, where a numeric gradient is meaningless)."""
        values = self.rng.permutation(int(numpy.prod(shape))) * 0.05
        return (values - values.mean() + 0.0125).reshape(shape)     # no value at 0

    def dev(self, array):
        """A copy on the checked device (never the checker's own array: code may write to it)."""
        return backend.to_device(numpy.array(array), self.device)

    def host(self, value, what: str, student: bool = True):
        """A result as a float64 host array; the student's must be on the checked device."""
        if isinstance(value, (int, float, numpy.number)):
            return numpy.asarray(value, dtype=numpy.float64)
        if isinstance(value, (tuple, list)) or value is None:
            raise CheckFailed(f"{what} should be an array, got {type(value).__name__}")
        try:
            if student and self.device != "cpu" and isinstance(value, numpy.ndarray) \
                    and value.ndim:
                raise CheckFailed(f"{what} is a host numpy.ndarray on device {self.device}",
                                  trap=DEVICE_HINT.format(name=what))
            return numpy.asarray(backend.to_host(value), dtype=numpy.float64)
        except (TypeError, ValueError) as exc:
            raise CheckFailed(f"{what} is not an array ({type(value).__name__}: {exc})")

    # --- running the student's code ---
    @contextlib.contextmanager
    def case(self, description: str, trap: str | None = None):
        """A case: its description (with the shapes) and the trap it adds to the earlier ones.
        A student's function that raises ends the case (its failure is recorded), not the
        check: the next case runs."""
        self.cases.append(description)
        self.case_trap = trap
        self.last = {"reference": None, "numeric": None}
        try:
            yield
        except CheckFailed as failure:
            self.fail(failure)

    def call(self, name: str, *args):
        """Run one of the student's functions, watching that it does not call into minires."""
        from .originality import watch_calls
        f = lookup(self.student, name)
        if f is None:
            raise MissingFunctionError(name)
        part = self.part_of(name)
        self.reached.add(part)
        failure, found = None, []
        try:
            with watch_calls(self.allowed_calls) as found:
                result = f(*args)
        except CheckFailed:
            raise
        except NotImplementedError:
            failure = CheckFailed(f"{name} raised NotImplementedError",
                                  STUB_HINT.format(name=name), part)
        except backend.StrictTransferError as exc:
            failure = CheckFailed(f"{name} raised StrictTransferError: {str(exc)[:120]}...",
                                  DEVICE_HINT.format(name=name), part)
        except Exception as exc:     # the student's bug: report it as the failing case
            failure = CheckFailed(f"{name} raised {type(exc).__name__}: {exc}", self.case_trap,
                                  part)
        if found:                    # a wrapper around minires, whether it worked or not
            raise Refused(f"{name} calls minires's own code ({found[0]}) while it is checked: "
                          f"the graded piece must be your own code, not a wrapper around minires")
        if failure:
            raise failure
        return result

    def unpack(self, result, n: int, name: str, names: str):
        if not isinstance(result, (tuple, list)) or len(result) != n:
            raise CheckFailed(f"{name} should return {n} values ({names}), got "
                              f"{type(result).__name__}"
                              + (f" of length {len(result)}" if isinstance(result, (tuple, list))
                                 else ""), part=self.part_of(name))
        return result

    # --- comparisons ---
    def _record(self, against: str, err: float):
        self.last[against] = err
        worst = self.worst[against]
        self.worst[against] = err if worst is None else max(worst, err)

    def compare(self, what: str, got, expected, wrong=(), against: str = "reference",
                student: bool = True):
        """Record a failure of ``what``'s part unless ``got`` matches ``expected`` (and go on).
        ``wrong``: ``(array, hint)`` trap signatures, the results of known mistakes; a wrong
        answer that matches one gets its hint."""
        part = self.part_of(what)
        self.reached.add(part)
        try:
            self._compare(what, got, expected, wrong, against, student)
        except CheckFailed as failure:
            failure.part = part
            self.fail(failure)

    def _compare(self, what, got, expected, wrong, against, student):
        got = self.host(got, what, student)
        expected = self.host(expected, "the reference", student=False)
        tol = REFERENCE_TOLERANCE if against == "reference" else NUMERIC_TOLERANCE
        trap = self.case_trap
        for array, hint in wrong:
            array = self.host(array, "a trap signature", student=False)
            if array.shape == got.shape and relative_error(got, array) < 1e-6:
                trap = hint
                break
        if got.shape != expected.shape:
            raise CheckFailed(f"{what} has shape {got.shape}, expected {expected.shape}", trap)
        err = relative_error(got, expected)
        self._record(against, err)
        if not numpy.isfinite(got).all():
            raise CheckFailed(f"{what} holds inf or NaN", trap)
        if err > tol:
            source = "minires's kernel" if against == "reference" else "the numeric gradient"
            raise CheckFailed(f"{what} differs from {source}: relative error {err:.1e} > "
                              f"{tol:.0e}", trap)

    def numeric(self, what: str, got, f, x, dy, wrong=(), student: bool = True):
        """Compare an analytic gradient with the numeric gradient of ``sum(f(x) * dy)``, the
        student's own forward ``f``: skipped once another part (that forward) has failed."""
        if any(part != self.part_of(what) for part in self.failures):
            return
        self.compare(what, got, numeric_gradient(f, x, dy), wrong, "numeric", student)

    def verdict(self) -> Verdict:
        """The piece's verdict, with one verdict per part."""
        parts, first = {}, None
        for name in self.parts:
            label = self.piece if name == self.piece else f"{self.piece} {name}"
            if name in self.failures:
                number, case, failure, errors = self.failures[name]
                parts[name] = Verdict(label, self.device, False, list(self.cases), case=case,
                                      failure=failure.message, trap=failure.trap,
                                      error_vs_reference=errors["reference"],
                                      error_vs_numeric=errors["numeric"], case_number=number)
            elif name in self.reached:
                parts[name] = Verdict(label, self.device, True, list(self.cases),
                                      error_vs_reference=self.worst["reference"],
                                      error_vs_numeric=self.worst["numeric"])
            else:
                before = next(iter(self.failures), None)
                blocked = f"{self.piece} {before}" if before else "an earlier step"
                parts[name] = Verdict(label, self.device, False, list(self.cases),
                                      failure=f"not checked: {blocked} failed first",
                                      trap=f"fix {blocked} first; {label} is checked on its "
                                           f"results")
        failed = [parts[n] for n in self.failures] or [v for v in parts.values() if not v.passed]
        if not failed:
            return Verdict(self.piece, self.device, True, list(self.cases),
                           error_vs_reference=self.worst["reference"],
                           error_vs_numeric=self.worst["numeric"], parts=parts)
        first = failed[0]
        return Verdict(self.piece, self.device, False, list(self.cases), case=first.case,
                       failure=first.failure, trap=first.trap,
                       error_vs_reference=first.error_vs_reference,
                       error_vs_numeric=first.error_vs_numeric, case_number=first.case_number,
                       parts=parts)
