"""The course's tools: ``minires check``, ``minires release`` (nbgrader's stripping without
nbgrader) and ``mr.course.use`` (a model trained on the student's kernels)."""
import json
from pathlib import Path

import numpy as np
import pytest

import minires as mr
import minires.nn.functional as F
from minires import nn
from minires.cli import main
from minires.course.release import student_cell
from minires.ops import nn_ops

from .test_course import col2im_assign, solution_source, student


@pytest.fixture
def kernels_file(tmp_path):
    path = tmp_path / "my_kernels.py"
    path.write_text(solution_source("a1_kernels"))
    return path


def test_check_passes_with_exit_0(kernels_file, capsys):
    assert main(["check", "conv2d", str(kernels_file)]) == 0
    assert "conv2d: PASSED on cpu" in capsys.readouterr().out


def test_check_all_on_strict(kernels_file, capsys):
    assert main(["check", "all", str(kernels_file), "--device", "strict"]) == 0
    out = capsys.readouterr().out
    assert "6 of 6 pieces passed" in out and "PASSED on strict" in out


def test_check_fails_with_exit_1_case_and_hint(kernels_file, capsys):
    source = kernels_file.read_text()
    kernels_file.write_text(source.replace("] += d[:, :, a, b]", "] = d[:, :, a, b]"))
    assert main(["check", "conv2d", str(kernels_file)]) == 1
    out = capsys.readouterr().out
    assert "conv2d: FAILED on cpu: forward passed, backward FAILED" in out     # points per part
    assert "conv2d backward: FAILED on cpu, case 2: x (2, 3, 5, 6)" in out
    assert "hint: windows overlap" in out and "col2im must add" in out
    # docs/teaching.md shows this report: its lines (but the measured error) must be the real ones
    docs = (Path(__file__).resolve().parents[1] / "docs" / "teaching.md").read_text()
    blocks = [b.split("```", 1)[0] for b in docs.split("```text\n")[1:]]
    shown = next(b for b in blocks if b.startswith("conv2d: FAILED")).splitlines()
    assert len(shown) == 4
    for line in shown:
        if "relative error ..." in line:
            line = line.split("relative error ...")[0]
        assert line in out, line


@pytest.mark.parametrize("content, message", [
    ("def conv2d_forward(x, w, b, stride, padding):\n    return (\n", "does not import: Syntax"),
    ("import not_a_module_anywhere\n", "does not import: ModuleNotFoundError"),
    ("def conv2d_forward(x, w, b, stride, padding):\n    pass\n",
     "does not define conv2d_backward"),
])
def test_unusable_file_gives_one_line_and_exit_2(tmp_path, capsys, content, message):
    path = tmp_path / "broken.py"
    path.write_text(content)
    assert main(["check", "conv2d", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("minires check: error:") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_missing_file_and_unknown_piece(tmp_path, capsys):
    assert main(["check", "conv2d", str(tmp_path / "nope.py")]) == 2
    assert "no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["check", "conv3d", str(tmp_path / "nope.py")])
    assert exc.value.code == 2


# --- release: nbgrader's rules ---

def code_cell(source, **nbgrader):
    return {"cell_type": "code", "metadata": {"nbgrader": nbgrader} if nbgrader else {},
            "source": source, "outputs": [{"output_type": "stream", "text": "x"}],
            "execution_count": 3}


def test_release_stubs_solution_regions_with_their_indentation():
    cell = student_cell(code_cell(
        "def f(x):\n    \"\"\"doc\"\"\"\n    ### BEGIN SOLUTION\n    return 2 * x\n"
        "    ### END SOLUTION\n\nprint(f)", solution=True))
    assert "".join(cell["source"]) == ("def f(x):\n    \"\"\"doc\"\"\"\n    # YOUR CODE HERE\n"
                                       "    raise NotImplementedError()\n\nprint(f)")
    assert cell["outputs"] == [] and cell["execution_count"] is None


def test_release_markdown_hidden_tests_and_whole_cells():
    answer = {"cell_type": "markdown", "metadata": {"nbgrader": {"solution": True}},
              "source": "Q?\n### BEGIN SOLUTION\nbecause\n### END SOLUTION"}
    assert "".join(student_cell(answer)["source"]) == "Q?\nYOUR ANSWER HERE"
    whole = student_cell({"cell_type": "markdown", "metadata": {"nbgrader": {"solution": True}},
                          "source": "my answer"})
    assert "".join(whole["source"]) == "YOUR ANSWER HERE"
    tests = student_cell(code_cell("assert f(1) == 2\n### BEGIN HIDDEN TESTS\nassert f(2) == 4\n"
                                   "### END HIDDEN TESTS", grade=True))
    assert "".join(tests["source"]) == "assert f(1) == 2"
    with pytest.raises(ValueError, match="not marked as a solution"):
        student_cell(code_cell("### BEGIN SOLUTION\nx = 1\n### END SOLUTION"))
    with pytest.raises(ValueError, match="without its"):
        student_cell(code_cell("### BEGIN SOLUTION\nx = 1", solution=True))


def test_release_command_writes_student_versions(tmp_path, capsys):
    source = Path(__file__).resolve().parents[1] / "notebooks" / "assignments"
    assert main(["release", str(source), str(tmp_path / "student")]) == 0
    written = sorted((tmp_path / "student").glob("*.ipynb"))
    assert [p.name for p in written] == sorted(p.name for p in source.glob("*.ipynb"))
    for path in written:
        text = path.read_text()
        assert "BEGIN SOLUTION" not in text and "raise NotImplementedError()" in text
        nb = json.loads(text)
        assert all(c.get("outputs", []) == [] for c in nb["cells"])
    assert main(["release", str(tmp_path / "nothing"), str(tmp_path / "x")]) == 2


# --- use(): minires's autograd on the student's kernels ---

def _tiny_net():
    mr.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=True), nn.BatchNorm2d(4),
                         nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1, bias=False),
                         nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 3 * 3, 5)).double()


def _loss_and_grads(model, x, y):
    model.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    return loss.item(), [p.grad.numpy().copy() for p in model.parameters()]


def test_use_trains_on_the_students_kernels(device):
    kernels = {**student("a1_kernels"), **student("a2_batch_norm")}
    calls = []
    conv_backward = kernels["conv2d_backward"]

    def counting_conv_backward(dy, cache):
        calls.append(dy.shape)
        return conv_backward(dy, cache)
    kernels["conv2d_backward"] = counting_conv_backward

    model = _tiny_net().to(device)
    x = mr.tensor(np.random.default_rng(0).standard_normal((4, 3, 6, 6)), device=device)
    y = mr.tensor([0, 1, 2, 3], device=device)
    loss_ref, grads_ref = _loss_and_grads(model, x, y)
    mean_ref = model[1].running_mean.numpy().copy()
    model[1].running_mean.array[...] = 0
    with mr.course.use(kernels) as swapped:
        assert swapped == ("conv2d", "batch_norm")
        loss, grads = _loss_and_grads(model, x, y)
    assert len(calls) == 2                          # both convolutions ran the student's backward
    assert loss == pytest.approx(loss_ref, rel=1e-12)
    for g, g_ref in zip(grads, grads_ref):
        np.testing.assert_allclose(g, g_ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(model[1].running_mean.numpy(), mean_ref * 1, rtol=1e-12)
    model.eval()                                    # eval mode: the student's eval kernels
    with mr.course.use(kernels):
        out = model(x).numpy()
    np.testing.assert_allclose(out, model(x).numpy(), rtol=1e-9, atol=1e-12)


def test_use_restores_minires_kernels_even_on_error():
    before = dict(nn_ops.ACTIVE_KERNELS)
    with pytest.raises(ZeroDivisionError):
        with mr.course.use(student("a1_kernels")):
            assert nn_ops.ACTIVE_KERNELS["conv2d"] is not before["conv2d"]
            1 / 0
    assert nn_ops.ACTIVE_KERNELS == before
    with pytest.raises(mr.course.MissingFunctionError, match="found neither"):
        with mr.course.use({"col2im": col2im_assign}):
            pass


def test_docs_table_lists_every_check_with_its_points():
    root = Path(__file__).resolve().parents[1]
    rows = {line.split("|")[1].strip(" `"): line for line in
            (root / "docs" / "teaching.md").read_text().splitlines()
            if line.startswith("| `a")}
    for path in sorted((root / "notebooks" / "assignments").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        checks = [c["metadata"]["nbgrader"] for c in cells
                  if c["cell_type"] == "code" and c["metadata"].get("nbgrader", {}).get("grade")]
        assert checks, path.name
        for meta in checks:
            piece = meta["grade_id"].removeprefix("check_")
            assert f"`{piece}` ({meta['points']})" in rows[path.name], (path.name, piece)
        total = sum(c["metadata"]["nbgrader"]["points"] for c in cells
                    if c["metadata"].get("nbgrader", {}).get("grade"))
        assert rows[path.name].rstrip().endswith(f"| {total} |"), (path.name, total)


def test_release_matches_nbgrader_generate_assignment():
    """Where nbgrader is installed (the optional `.[course]` extra): its own preprocessors give
    the same student notebooks as `minires release`."""
    pytest.importorskip("nbgrader")
    import nbformat
    from nbgrader.preprocessors import ClearHiddenTests, ClearOutput, ClearSolutions
    from minires.course.release import student_notebook
    source = Path(__file__).resolve().parents[1] / "notebooks" / "assignments"
    for path in sorted(source.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for preprocessor in (ClearSolutions(), ClearHiddenTests(), ClearOutput()):
            nb, _ = preprocessor.preprocess(nb, {})
        ours = student_notebook(json.loads(path.read_text()))
        assert len(ours["cells"]) == len(nb.cells)
        for theirs, mine in zip(nb.cells, ours["cells"]):
            assert "".join(mine["source"]) == theirs.source, path.name
