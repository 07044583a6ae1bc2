#!/usr/bin/env python
"""Execute the notebooks once, for CI and for the docs.

Runs every ``notebooks/*.ipynb`` top to bottom with nbclient (kernel ``python3``, the Python that
runs this script), with the notebooks' own folder as the working directory, and writes the
executed copies to ``docs/notebooks/<name>.ipynb`` (generated, git-ignored), which the docs render
without executing anything. Prints each notebook's wall time.

Exit status: 0 when every notebook ran (or there are none yet), 1 when a cell raised or timed out
(the notebook and the cell are named, with the traceback) or a notebook took longer than its
budget (``--budget``, default 180 s: the course says each notebook runs within three minutes at
most on a CPU, and this is the check that keeps that true), 2 for bad arguments.

    python tools/run_notebooks.py                       # all of them
    python tools/run_notebooks.py --only 01_autograd    # one (repeatable); the .ipynb is optional
    python tools/run_notebooks.py --timeout 300         # per-cell limit in seconds (default 180)
    python tools/run_notebooks.py --budget 0            # no limit on a notebook's total time
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "notebooks"
TARGET = ROOT / "docs" / "notebooks"
KERNEL = "python3"
BUDGET_SECONDS = 180     # per notebook, the whole run: README and docs/notebooks.md promise it

# the kernel inherits these: no progress bars in the outputs, figures rendered inline as PNG
KERNEL_ENV = {
    "MINIRES_PROGRESS": "0",
    "MPLBACKEND": "module://matplotlib_inline.backend_inline",
}


def find_notebooks(only: list[str] | None) -> list[Path]:
    notebooks = sorted(p for p in SOURCE.glob("*.ipynb") if not p.name.startswith("."))
    if not only:
        return notebooks
    by_name = {p.stem: p for p in notebooks}
    chosen, unknown = [], []
    for name in only:
        stem = Path(name).name
        stem = stem[:-len(".ipynb")] if stem.endswith(".ipynb") else stem
        if stem in by_name:
            chosen.append(by_name[stem])
        else:
            unknown.append(name)
    if unknown:
        known = ", ".join(sorted(by_name)) or "none"
        raise SystemExit(f"run_notebooks: no notebook named {', '.join(unknown)} in "
                         f"{SOURCE.relative_to(ROOT)}/ (there: {known})")
    return chosen


def cell_label(nb, index: int) -> str:
    """'cell 7 (code cell 4): first line of its source'."""
    code_number = sum(1 for c in nb.cells[:index + 1] if c.cell_type == "code")
    first = next((line for line in nb.cells[index].source.splitlines() if line.strip()), "")
    return f"cell {index + 1} (code cell {code_number}): {first[:70]}"


def run_one(path: Path, timeout: int) -> tuple[bool, float, str]:
    """Execute one notebook; write the executed copy on success. Returns (ok, seconds, message)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    nb = nbformat.read(path, as_version=4)
    current = {"index": None}

    def on_cell_start(cell, cell_index, **_):
        current["index"] = cell_index

    client = NotebookClient(nb, timeout=timeout, kernel_name=KERNEL, allow_errors=False,
                            resources={"metadata": {"path": str(path.parent)}},
                            on_cell_start=on_cell_start,
                            # the kernel's own start-up chatter (a local TCP warning) is noise here
                            extra_arguments=["--IPKernelApp.log_level=ERROR"])
    target = TARGET / path.name
    start = time.perf_counter()
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:
        seconds = time.perf_counter() - start
        where = cell_label(nb, current["index"]) if current["index"] is not None else "startup"
        kind = {CellTimeoutError: f"timed out after {timeout} s",
                DeadKernelError: "the kernel died"}.get(type(exc), "raised an error")
        if target.exists():
            target.unlink()              # never leave a stale copy for the docs to render
        return False, seconds, f"{path.name}: {where}: {kind}\n{exc}"
    seconds = time.perf_counter() - start
    TARGET.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    nbformat.write(nb, tmp)
    os.replace(tmp, target)
    return True, seconds, ""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Execute notebooks/*.ipynb into docs/notebooks/.")
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="run only this notebook (name with or without .ipynb; repeatable)")
    parser.add_argument("--timeout", type=int, default=180, metavar="SECONDS",
                        help="per-cell time limit (default 180)")
    parser.add_argument("--budget", type=float, default=BUDGET_SECONDS, metavar="SECONDS",
                        help=f"fail a notebook that runs longer than this in all "
                             f"(default {BUDGET_SECONDS}; 0: no limit)")
    args = parser.parse_args(argv)
    if args.timeout < 1:
        parser.error("--timeout must be >= 1")

    notebooks = find_notebooks(args.only)
    if not notebooks:
        print(f"run_notebooks: no notebooks in {SOURCE.relative_to(ROOT)}/ yet; nothing to run")
        return 0
    os.environ.update(KERNEL_ENV)
    if not args.only and TARGET.is_dir():       # copies of notebooks that no longer exist
        names = {p.name for p in notebooks}
        for stale in TARGET.glob("*.ipynb"):
            if stale.name not in names:
                stale.unlink()
    failures = []
    total = time.perf_counter()
    for path in notebooks:
        print(f"run_notebooks: {path.name} ...", flush=True)
        ok, seconds, message = run_one(path, args.timeout)
        if ok and args.budget and seconds > args.budget:
            ok, message = False, (f"{path.name}: ran in {seconds:.0f} s, over its budget of "
                                  f"{args.budget:.0f} s (the course promises each notebook runs "
                                  f"within it: make it cheaper, or change the promise and --budget)")
        if ok:
            print(f"run_notebooks: {path.name}: ok in {seconds:.1f} s -> "
                  f"{(TARGET / path.name).relative_to(ROOT)}", flush=True)
        else:
            if not sys.stderr.isatty():
                message = re.sub(r"\x1b\[[0-9;]*m", "", message)     # no colour codes in logs
            print(f"run_notebooks: {path.name}: FAILED after {seconds:.1f} s\n{message}",
                  file=sys.stderr, flush=True)
            failures.append(message.splitlines()[0])
    print(f"run_notebooks: {len(notebooks) - len(failures)} of {len(notebooks)} notebooks ran in "
          f"{time.perf_counter() - total:.1f} s")
    if failures:
        print("run_notebooks: failed:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
