"""The student version of an assignment notebook, as ``nbgrader generate_assignment`` makes it.

For instructors without nbgrader: ``minires release SRC DST`` (or ``python -m
minires.course.release SRC DST``) applies nbgrader's rules to a solution notebook:

* in a code cell, the lines from ``### BEGIN SOLUTION`` to ``### END SOLUTION`` become
  ``# YOUR CODE HERE`` / ``raise NotImplementedError()``, indented like the ``BEGIN`` line;
* in a markdown cell, that region becomes ``YOUR ANSWER HERE``;
* a cell marked as a solution in its nbgrader metadata but without the markers is replaced
  whole by the stub; markers in a cell that is not marked as a solution are an error (as in
  nbgrader);
* ``### BEGIN HIDDEN TESTS`` .. ``### END HIDDEN TESTS`` are removed;
* every output and execution count is cleared. The nbgrader metadata stays, so
  ``nbgrader autograde`` grades the result as it would its own.
"""
from __future__ import annotations

import json
import os
import sys

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
CODE_STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
TEXT_STUB = "YOUR ANSWER HERE"


def _lines(source) -> list[str]:
    text = "".join(source) if isinstance(source, list) else source
    return text.split("\n")


def _replace_regions(lines, begin, end, stub_for):
    """Replace each begin..end region (markers included) by ``stub_for(indent)``.
    Returns ``(lines, found)``."""
    out, inside, found, indent = [], False, False, ""
    for line in lines:
        stripped = line.strip()
        if stripped == begin and not inside:
            inside, found = True, True
            indent = line[:len(line) - len(line.lstrip())]
            out.extend(stub_for(indent))
        elif stripped == end and inside:
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"a {begin!r} without its {end!r}")
    return out, found


def student_cell(cell: dict) -> dict:
    """The student version of one notebook cell (a new dict)."""
    cell = json.loads(json.dumps(cell))
    meta = cell.get("metadata", {}).get("nbgrader", {})
    lines = _lines(cell.get("source", ""))
    lines, _ = _replace_regions(lines, BEGIN_HIDDEN, END_HIDDEN, lambda indent: [])
    if cell["cell_type"] == "code":
        lines, found = _replace_regions(lines, BEGIN, END,
                                        lambda indent: [indent + s for s in CODE_STUB])
        whole = list(CODE_STUB)
        cell["outputs"], cell["execution_count"] = [], None
    else:
        lines, found = _replace_regions(lines, BEGIN, END, lambda indent: [indent + TEXT_STUB])
        whole = [TEXT_STUB]
    if found and not meta.get("solution"):
        raise ValueError(f"solution markers in a cell not marked as a solution (nbgrader "
                         f"metadata 'solution': true): {''.join(_lines(cell['source'])[:1])!r}")
    if meta.get("solution") and not found:
        lines = whole
    text = "\n".join(lines)
    cell["source"] = [line + "\n" for line in text.split("\n")[:-1]] + [text.split("\n")[-1]]
    if cell["source"][-1] == "":
        cell["source"].pop()
    return cell


def student_notebook(nb: dict) -> dict:
    return dict(nb, cells=[student_cell(c) for c in nb["cells"]])


def release(source: str, target: str) -> list[tuple[str, str]]:
    """Write the student version of a notebook (or of every notebook in a folder).
    Returns the ``(source, target)`` paths written."""
    if os.path.isdir(source):
        names = sorted(n for n in os.listdir(source)
                       if n.endswith(".ipynb") and not n.startswith("."))
        if not names:
            raise ValueError(f"{source}: no notebooks in this folder")
        os.makedirs(target, exist_ok=True)
        pairs = [(os.path.join(source, n), os.path.join(target, n)) for n in names]
    elif os.path.isfile(source):
        if os.path.isdir(target):
            target = os.path.join(target, os.path.basename(source))
        pairs = [(source, target)]
    else:
        raise FileNotFoundError(f"{source}: no such notebook or folder")
    for src, dst in pairs:
        with open(src, encoding="utf-8") as f:
            nb = json.load(f)
        out = student_notebook(nb)
        if os.path.dirname(dst):
            os.makedirs(os.path.dirname(dst), exist_ok=True)
        with open(dst, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1, ensure_ascii=False)
            f.write("\n")
    return pairs


def main(argv=None) -> int:
    import argparse
    parser = argparse.ArgumentParser(prog="python -m minires.course.release",
                                     description="Student versions of solution notebooks.")
    parser.add_argument("source")
    parser.add_argument("target")
    args = parser.parse_args(argv)
    try:
        for src, dst in release(args.source, args.target):
            print(f"{src} -> {dst}")
    except (OSError, ValueError) as exc:
        print(f"release: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
