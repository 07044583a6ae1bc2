"""The teacher's walk, end to end, where nbgrader is installed (``pip install -e '.[course]'``):
minires installed afresh from this checkout into its own folder, ``minires release``, a student's
wrong and right answers through ``minires check``, then nbgrader's own ``generate_assignment`` on
every assignment and ``autograde`` of submissions in a temporary course folder, with the points
read back from nbgrader's gradebook.

Slow (a pip install and several nbgrader runs, about a minute): ``pytest -m slow
tests/test_course_nbgrader.py``. Skipped cleanly without nbgrader. The fast tests
(``tests/test_course_grading.py``) cover the release, the refusals and the stripped hidden tests
without it.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .test_course import solution_source

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENTS = ROOT / "notebooks" / "assignments"


def run(env, *args, cwd=None, check=True):
    """Run a command outside this checkout (its folder would shadow the installed minires)."""
    result = subprocess.run([str(a) for a in args], env=env, cwd=cwd or env["HOME_FOR_TEST"],
                            capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} exited {result.returncode}:\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """minires installed (not editable) from a copy of this checkout into a fresh folder; the
    environment in which only that install is importable as minires."""
    pytest.importorskip("nbgrader")
    tmp = tmp_path_factory.mktemp("fresh")
    source = tmp / "src"
    source.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "minires", source / "minires",
                    ignore=shutil.ignore_patterns("__pycache__"))
    site = tmp / "site"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["HOME_FOR_TEST"] = str(tmp)
    install = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", site,
               source]
    if run(env, *install, check=False).returncode != 0:     # offline: the installed build tools
        run(env, *install, "--no-build-isolation")
    env["PYTHONPATH"] = str(site)
    env["PATH"] = os.pathsep.join([str(site / "bin"), str(Path(sys.executable).parent),
                                   env.get("PATH", "")])
    env["MPLBACKEND"] = "Agg"
    where = run(env, sys.executable, "-c", "import minires; print(minires.__file__)").stdout
    assert where.startswith(str(site)), where
    return env, tmp


def test_release_and_a_students_wrong_and_right_answers(installed):
    env, tmp = installed
    run(env, "minires", "release", ASSIGNMENTS, tmp / "student")
    released = sorted(p.name for p in (tmp / "student").glob("*.ipynb"))
    assert released == sorted(p.name for p in ASSIGNMENTS.glob("*.ipynb"))
    for path in (tmp / "student").glob("*.ipynb"):
        text = path.read_text()
        assert "HIDDEN TESTS" not in text and "BEGIN SOLUTION" not in text

    right = tmp / "right.py"
    right.write_text(solution_source("a1_kernels"))
    wrong = tmp / "wrong.py"
    wrong.write_text(right.read_text().replace("] += d[:, :, a, b]", "] = d[:, :, a, b]"))
    cheat = tmp / "cheat.py"
    cheat.write_text("from minires.course.reference import *\n")
    result = run(env, "minires", "check", "conv2d", wrong, check=False)
    assert result.returncode == 1
    assert "conv2d: FAILED on cpu: forward passed, backward FAILED" in result.stdout
    assert "hint: windows overlap" in result.stdout
    result = run(env, "minires", "check", "conv2d", cheat, check=False)
    assert result.returncode == 1 and result.stdout.startswith("conv2d: REFUSED: ")
    assert len(result.stdout.strip().splitlines()) == 1
    assert "conv2d: PASSED on cpu" in run(env, "minires", "check", "conv2d", right).stdout


def _answers(released: dict, source: dict, edit=None) -> dict:
    """The released notebook with the solutions typed in (what a right student hands in)."""
    solutions = {c["metadata"]["nbgrader"]["grade_id"]: "".join(c["source"])
                 for c in source["cells"] if c["metadata"].get("nbgrader", {}).get("solution")}
    nb = json.loads(json.dumps(released))
    for cell in nb["cells"]:
        meta = cell["metadata"].get("nbgrader", {})
        if meta.get("solution") and cell["cell_type"] == "code":
            text = "\n".join(line for line in solutions[meta["grade_id"]].split("\n")
                             if "### BEGIN SOLUTION" not in line
                             and "### END SOLUTION" not in line)
            cell["source"] = edit(text) if edit else text
    return nb


def test_nbgrader_generates_every_assignment_and_autogrades_points_per_part(installed):
    env, tmp = installed
    course = tmp / "course"
    names = sorted(p.stem for p in ASSIGNMENTS.glob("*.ipynb"))
    students = ("right", "wrong", "cheat")
    for name in names:
        (course / "source" / name).mkdir(parents=True)
        shutil.copy(ASSIGNMENTS / f"{name}.ipynb", course / "source" / name)
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        "c.CourseDirectory.course_id = 'minires'\n"
        f"c.CourseDirectory.root = {str(course)!r}\n"
        f"c.CourseDirectory.db_assignments = {[dict(name=n) for n in names]!r}\n"
        f"c.CourseDirectory.db_students = {[dict(id=s) for s in students]!r}\n")
    for name in names:
        run(env, sys.executable, "-m", "nbgrader", "generate_assignment", name, "--force",
            cwd=course)
        text = (course / "release" / name / f"{name}.ipynb").read_text()
        assert "HIDDEN TESTS" not in text and "BEGIN SOLUTION" not in text, name
        assert "raise NotImplementedError()" in text

    name = "a2_batch_norm"
    released = json.loads((course / "release" / name / f"{name}.ipynb").read_text())
    source = json.loads((ASSIGNMENTS / f"{name}.ipynb").read_text())
    handed_in = {
        "right": _answers(released, source),
        # batch norm's backward without the mean's path: the forward keeps its point
        "wrong": _answers(released, source,
                          lambda s: s.replace("dy - per_channel(dbeta) / m\n", "dy\n")),
        # minires's own batch norm, imported: refused, no points for it
        "cheat": _answers(released, source, lambda s: s if "batch_norm_forward(x, gamma" not in s
                          else "from minires.course.reference import batch_norm_forward, "
                               "batch_norm_backward\n" + s.split("def batch_norm_backward")[0]
                          .split("def batch_norm_forward")[0]),
    }
    for student, nb in handed_in.items():
        folder = course / "submitted" / student / name
        folder.mkdir(parents=True)
        (folder / f"{name}.ipynb").write_text(json.dumps(nb))
    run(env, sys.executable, "-m", "nbgrader", "autograde", name, "--force", cwd=course)

    from nbgrader.api import Gradebook
    scores = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for student in students:
            submission = gradebook.find_submission(name, student)
            scores[student] = {g.name: g.auto_score for nb in submission.notebooks
                               for g in nb.grades if g.auto_score is not None}
    checks = {c["metadata"]["nbgrader"]["grade_id"]: c["metadata"]["nbgrader"]["points"]
              for c in source["cells"] if c["metadata"].get("nbgrader", {}).get("grade")
              and c["cell_type"] == "code"}
    scores = {s: {k: v for k, v in got.items() if k in checks} for s, got in scores.items()}
    assert scores["right"] == checks
    assert scores["wrong"] == dict(checks, check_batch_norm_backward=0.0)
    assert scores["cheat"]["check_batch_norm_forward"] == 0.0
    assert scores["cheat"]["check_batch_norm_backward"] == 0.0
    assert scores["cheat"]["check_batch_norm_eval_running"] == checks[
        "check_batch_norm_eval_running"]
    # the hidden tests ran: nbgrader put the locked cells back with them
    graded = (course / "autograded" / "right" / name / f"{name}.ipynb").read_text()
    assert "### BEGIN HIDDEN TESTS" in graded
