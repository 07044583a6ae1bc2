"""The graded piece must be the student's own code: not minires's, and not a thin wrapper over it.

Two checks, before and while a piece is checked:

* **where the code lives**: a function of the piece whose code object comes from a file inside
  the ``minires`` package (``from minires.course.reference import *``, ``from minires.kernels.conv
  import ...``), or whose module is minires's, is refused before any case runs;
* **what it calls**: while the student's function runs, a profile hook (``sys.setprofile``) sees
  every Python call; a call from the student's code straight into minires (its kernels, ops,
  autograd, the reference adapters, the checkers) refuses the piece. NumPy/CuPy calls are the
  student's business, and so are the helpers a student is meant to use: ``minires.backend``
  (``array_module``) and ``minires.course.graph`` (the ``Value`` nodes). A piece may also allow
  minires's *other* pieces: assignment 3 composes its BasicBlock from the reference conv2d and
  batch norm, and only the block itself is graded there.

Calls that minires's own code makes (a reference adapter calling a kernel) are not the student's
and are not looked at: only the caller of the first minires frame counts.
"""
from __future__ import annotations

import contextlib
import functools
import os
import sys

PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
"""The ``minires`` package's folder, with a trailing separator."""

SELF = "course" + os.sep + "originality.py"

STUDENT_HELPERS = ("devices" + os.sep + "backend.py", "devices" + os.sep + "strict.py",
                   "course" + os.sep + "graph.py")
"""What a student's code may call inside minires: the array module helpers, the ``strict`` device's
arrays (a stand-in for CuPy's) and ``Value``."""


def _inside(filename: str) -> str | None:
    """``filename``'s path relative to the minires package, or None when it is outside."""
    filename = os.path.abspath(filename) if filename and not filename.startswith("<") else ""
    return filename[len(PACKAGE):] if filename.startswith(PACKAGE) else None


def where_defined(f) -> str | None:
    """Where inside minires a callable's code lives (``course/reference.py``,
    ``minires.kernels.conv``), or None for code that is not minires's."""
    while isinstance(f, functools.partial):
        f = f.func
    f = getattr(f, "__func__", f)                    # a bound method: its function
    f = getattr(f, "__wrapped__", f)                 # functools.wraps: the wrapped function
    code = getattr(f, "__code__", None)
    if code is not None:
        where = _inside(code.co_filename)
        return "minires/" + where.replace(os.sep, "/") if where else None
    module = getattr(f, "__module__", None) or ""
    return module if module == "minires" or module.startswith("minires.") else None


def refuse_minires_functions(piece: str, functions: dict) -> str | None:
    """The refusal (one sentence) when one of the piece's functions is minires's own code."""
    for name, f in functions.items():
        where = where_defined(f)
        if where:
            return (f"{name} is minires's own code ({where}), not yours: write {name} yourself "
                    f"(the checker grades only code defined in your file or notebook)")
    return None


def _allowed(relative: str, name: str, allowed: tuple[str, ...]) -> bool:
    if relative.endswith("__init__.py") and name == "__getattr__":     # lazy attribute access
        return True
    return any(relative == a or relative.startswith(a) for a in STUDENT_HELPERS + allowed)


@contextlib.contextmanager
def watch_calls(allowed: tuple[str, ...] = ()):
    """Within the block, record the first call from code outside minires into minires (other
    than the student helpers and ``allowed``, paths relative to the package). Yields a list that
    holds ``"minires/PATH: FUNCTION"`` for that call, if there was one."""
    found: list[str] = []
    allowed = tuple(a.replace("/", os.sep) for a in allowed)

    def profile(frame, event, arg):
        if event != "call" or found:
            return
        relative = _inside(frame.f_code.co_filename)
        if relative is None or relative == SELF:
            return
        caller = frame.f_back
        if caller is None or _inside(caller.f_code.co_filename) is not None:
            return                                    # minires calling itself
        if not _allowed(relative, frame.f_code.co_name, allowed):
            found.append(f"minires/{relative.replace(os.sep, '/')}: {frame.f_code.co_name}")

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        yield found
    finally:
        sys.setprofile(previous)
