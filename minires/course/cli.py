"""``minires check`` and ``minires release``: the course's two commands.

    minires check conv2d my_kernels.py [--device cpu|strict|cuda] [--seed 0]
    minires check all my_kernels.py       # every piece whose functions the file defines
    minires release notebooks/assignments student/      # solution notebooks -> student versions

``check`` exits 0 when every case passes and 1 otherwise: with each part's result and the
failing case and its hint, or with one ``REFUSED`` line when the piece is minires's own code or a
wrapper around it. A file that is missing, does not import or lacks a function the piece needs is
a bad argument: one line on stderr, exit status 2. An unavailable device exits with 1, as everywhere in ``minires``.
"""
from __future__ import annotations

import importlib.util
import os
import sys


def add_parsers(sub) -> None:
    """Register ``check`` and ``release`` on the ``minires`` command's subparsers."""
    from .registry import PIECES
    c = sub.add_parser("check", help="check a student's implementation of one piece (conv2d, "
                       "batch_norm, ...) against minires's kernels and numeric gradients")
    c.add_argument("piece", choices=list(PIECES) + ["all"], metavar="PIECE",
                   help=f"one of: {', '.join(PIECES)}; or all (every piece the file defines)")
    c.add_argument("file", help="the student's Python file, e.g. my_kernels.py")
    c.add_argument("--device", default="cpu", help="cpu (default), strict or cuda: the arrays "
                   "the student's functions receive")
    c.add_argument("--seed", type=int, default=0, help="the seed of the random cases")
    c.set_defaults(run=cmd_check)

    r = sub.add_parser("release", help="the student version of assignment notebooks: solution "
                       "blocks become stubs (what `nbgrader generate_assignment` does)")
    r.add_argument("source", help="a solution notebook, or a folder of them")
    r.add_argument("target", help="the student notebook, or a folder for them")
    r.set_defaults(run=cmd_release)


def _fail(command: str, message: str, status: int) -> int:
    print(f"minires {command}: error: {message}", file=sys.stderr)
    return status


def load_student_file(path: str):
    """Import a student's file as a module; raises ``ImportError`` with one line on failure."""
    if not os.path.isfile(path):
        raise ImportError(f"{path}: no such file")
    name = os.path.splitext(os.path.basename(path))[0] or "student"
    spec = importlib.util.spec_from_file_location(f"minires_student_{name}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:     # the student's file: a SyntaxError, a failing import, ...
        where = f" (line {exc.lineno})" if isinstance(exc, SyntaxError) and exc.lineno else ""
        raise ImportError(f"{path} does not import: {type(exc).__name__}: "
                          f"{getattr(exc, 'msg', None) or exc}{where}") from None
    return module


def cmd_check(args) -> int:
    from ..devices import backend
    from .registry import PIECES, check, missing_functions
    try:
        backend.get_array_module(args.device)
    except (ValueError, backend.DeviceError) as exc:
        return _fail("check", str(exc), 1)
    try:
        module = load_student_file(args.file)
    except ImportError as exc:
        return _fail("check", str(exc), 2)
    if args.piece == "all":
        pieces = [p for p in PIECES if not missing_functions(p, module)]
        if not pieces:
            return _fail("check", f"{args.file} defines the functions of no piece (see "
                         f"'minires check --help' and docs/teaching.md)", 2)
    else:
        missing = missing_functions(args.piece, module)
        if missing:
            return _fail("check", f"{args.file} does not define {', '.join(missing)} "
                         f"({PIECES[args.piece].summary})", 2)
        pieces = [args.piece]
    verdicts = [check(p, module, device=args.device, seed=args.seed) for p in pieces]
    for v in verdicts:
        print(v.report())
    if len(verdicts) > 1:
        print(f"{sum(v.passed for v in verdicts)} of {len(verdicts)} pieces passed")
    return 0 if all(v.passed for v in verdicts) else 1


def cmd_release(args) -> int:
    from .release import release
    try:
        written = release(args.source, args.target)
    except (OSError, ValueError) as exc:
        return _fail("release", str(exc), 2)
    for src, dst in written:
        print(f"{src} -> {dst}")
    return 0
