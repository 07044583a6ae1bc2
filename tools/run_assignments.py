#!/usr/bin/env python
"""Execute the assignment notebooks twice: as solutions, and as the student versions.

For every ``notebooks/assignments/*.ipynb`` (the solution versions, with nbgrader's markers):

1. run it top to bottom: every cell must run and every autograder cell (nbgrader ``grade``) must
   print ``PASSED`` (its hidden tests included: every autograder cell must have them);
2. make the student version (``minires.course.release``: solution blocks become
   ``raise NotImplementedError()`` stubs, answers ``YOUR ANSWER HERE``, hidden tests removed:
   none may be left in it) and run it with errors
   allowed: every autograder cell must *fail*, printing the checker's report with a ``hint:``
   line, so that each checker is shown able to fail.

Prints each notebook's wall times. Exit status 0 when all of that holds, 1 otherwise, 2 for bad
arguments. Nothing is written into the repository (the student versions go to a temporary folder).

    python tools/run_assignments.py                    # all of them
    python tools/run_assignments.py --only a1_kernels  # one (repeatable)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "notebooks" / "assignments"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_notebooks import KERNEL, KERNEL_ENV, cell_label  # noqa: E402


def _execute(nb, folder: Path, timeout: int, allow_errors: bool):
    from nbclient import NotebookClient
    client = NotebookClient(nb, timeout=timeout, kernel_name=KERNEL, allow_errors=allow_errors,
                            resources={"metadata": {"path": str(folder)}},
                            extra_arguments=["--IPKernelApp.log_level=ERROR"])
    start = time.perf_counter()
    client.execute()
    return time.perf_counter() - start


def _text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif out.get("output_type") == "error":
            parts.append(f"{out.get('ename')}: {out.get('evalue')}")
    return "".join(parts)


def _is_autograder(cell) -> bool:
    return cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("grade", False)


def check_notebook(path: Path, timeout: int) -> list[str]:
    """Run both versions of one assignment; returns the problems found (empty: all good)."""
    import nbformat
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    from minires.course.release import student_notebook
    problems = []

    nb = nbformat.read(path, as_version=4)
    graders = [i for i, c in enumerate(nb.cells) if _is_autograder(c)]
    if not graders:
        return [f"{path.name}: no autograder cells (nbgrader 'grade': true)"]
    for i in graders:
        if "### BEGIN HIDDEN TESTS" not in nb.cells[i].source:
            problems.append(f"{path.name}: {cell_label(nb, i)} has no hidden tests")
    try:
        seconds = _execute(nb, path.parent, timeout, allow_errors=False)
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:
        return [f"{path.name} (solution): {str(exc).splitlines()[0] if str(exc) else exc!r}"]
    for i in graders:
        if "PASSED" not in _text(nb.cells[i]):
            problems.append(f"{path.name} (solution): {cell_label(nb, i)}: no PASSED")
    print(f"run_assignments: {path.name}: solution ran in {seconds:.1f} s, "
          f"{len(graders)} checks passed", flush=True)

    with open(path, encoding="utf-8") as f:
        released = json.dumps(student_notebook(json.load(f)))
    for leak in ("HIDDEN TESTS", "BEGIN SOLUTION"):
        if leak in released:
            problems.append(f"{path.name} (student version): {leak!r} left in it")
    student = nbformat.reads(released, as_version=4)
    with tempfile.TemporaryDirectory() as tmp:
        seconds = _execute(student, Path(tmp), timeout, allow_errors=True)
    failed = 0
    for i in graders:
        text = _text(student.cells[i])
        if "FAILED" in text and "hint:" in text:
            failed += 1
        else:
            problems.append(f"{path.name} (student version): {cell_label(student, i)} did not "
                            f"fail with a hint; it printed: {text.strip()[:300]!r}")
    print(f"run_assignments: {path.name}: student version ran in {seconds:.1f} s, "
          f"{failed} of {len(graders)} checks failed with a hint", flush=True)
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Run notebooks/assignments/ as solutions and "
                                     "as student versions.")
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="run only this assignment (name with or without .ipynb)")
    parser.add_argument("--timeout", type=int, default=180, metavar="SECONDS",
                        help="per-cell time limit (default 180)")
    args = parser.parse_args(argv)
    notebooks = sorted(p for p in SOURCE.glob("*.ipynb") if not p.name.startswith("."))
    if args.only:
        wanted = {Path(n).name.removesuffix(".ipynb") for n in args.only}
        unknown = wanted - {p.stem for p in notebooks}
        if unknown:
            parser.error(f"no assignment named {', '.join(sorted(unknown))} in "
                         f"{SOURCE.relative_to(ROOT)}/")
        notebooks = [p for p in notebooks if p.stem in wanted]
    os.environ.update(KERNEL_ENV)
    problems = []
    for path in notebooks:
        problems += check_notebook(path, args.timeout)
    if problems:
        print("run_assignments: FAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print(f"run_assignments: {len(notebooks)} assignments: solutions pass every check, student "
          f"versions fail every check with a hint")
    return 0


if __name__ == "__main__":
    sys.exit(main())
