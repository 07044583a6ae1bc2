"""Grading the course as a teacher would: the checker refuses minires's own code and wrappers
around it, grades each part (forward, backward) on its own, the assignments keep hidden tests
out of the released notebooks and state their points, and assignment 4's training loop is graded
on what it does."""
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

import minires as mr
from minires.cli import main
from minires.course import training
from minires.course.release import student_notebook

from .test_course import col2im_assign, solution_source, student

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENTS = ROOT / "notebooks" / "assignments"
NOTEBOOKS = sorted(ASSIGNMENTS.glob("*.ipynb"))


# --- refusing minires's own code ---

@pytest.mark.parametrize("notebook, pieces", [
    ("a1_kernels", ("im2col", "conv2d", "relu")),
    ("a2_batch_norm", ("batch_norm",)),
    ("a4_train_resnet", ("conv2d", "batch_norm")),
])
def test_star_import_of_the_reference_is_refused(notebook, pieces):
    """`from minires.course.reference import *` in place of the student's code."""
    from minires.course import reference
    namespace = student(notebook)
    namespace.update({k: v for k, v in vars(reference).items() if not k.startswith("_")})
    for piece in pieces:
        verdict = mr.course.check(piece, namespace)
        assert not verdict.passed and verdict.refused, piece
        assert "minires's own code (minires/course/" in verdict.report()
        with pytest.raises(AssertionError, match="REFUSED"):
            verdict.assert_passed("forward" if piece != "im2col" else "im2col")


def test_wrappers_around_minires_are_refused():
    from minires.kernels import conv as conv_kernel
    from minires.course import reference

    def conv2d_forward(x, w, b, stride, padding):       # the student's file, minires inside
        return conv_kernel.conv2d_forward(x, w, b, (stride, stride), (padding, padding), (1, 1))

    def conv2d_backward(dy, cache):
        return reference.conv2d_backward(dy, cache)

    ns = student("a1_kernels", conv2d_forward=conv2d_forward)
    verdict = mr.course.check("conv2d", ns)
    assert verdict.refused and "minires/kernels/conv.py: conv2d_forward" in verdict.refused
    ns = student("a1_kernels", conv2d_backward=conv2d_backward)
    assert "minires/course/reference.py" in mr.course.check("conv2d", ns).refused

    def relu_forward(x):                                # minires's autograd doing the work
        t = mr.tensor(x)
        return mr.relu(t).numpy(), x
    assert mr.course.check("relu", student("a1_kernels", relu_forward=relu_forward)).refused

    def sgd_momentum(w, dw, velocity, lr, momentum, weight_decay):
        p = mr.nn.Parameter(mr.tensor(w))
        p.grad = mr.tensor(dw)
        mr.optim.SGD([p], lr=lr, momentum=momentum, weight_decay=weight_decay).step()
        return p.numpy(), velocity
    assert mr.course.check("sgd_momentum",
                           student("a3_residual_block", sgd_momentum=sgd_momentum)).refused


def test_a3_builds_its_block_from_reference_pieces_and_still_passes():
    """Only the graded piece must be the student's own: the block may use reference kernels,
    the shortcut it uses may not be minires's."""
    ns = student("a3_residual_block")
    assert mr.course.check("basic_block", ns).passed
    from minires.course import reference
    ns.update(shortcut_a_forward=reference.shortcut_a_forward,
              shortcut_a_backward=reference.shortcut_a_backward)
    assert mr.course.check("shortcut_a", ns).refused


def test_check_command_refuses_a_reference_file_with_one_line_each(tmp_path, capsys):
    path = tmp_path / "my_kernels.py"
    path.write_text("from minires.course.reference import *\n")
    assert main(["check", "conv2d", str(path)]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("conv2d: REFUSED: conv2d_forward is minires's")
    assert f"```text\n{out[0]}\n```" in (ROOT / "docs" / "teaching.md").read_text()
    assert main(["check", "all", str(path)]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert all(line.split(": ")[1] == "REFUSED" for line in out[:-1]) and len(out) >= 4


# --- points per part ---

def test_parts_pass_and_fail_separately():
    verdict = mr.course.check("conv2d", student("a1_kernels", col2im=col2im_assign))
    assert not verdict.passed
    assert verdict.part("forward").passed and not verdict.part("backward").passed
    assert verdict.assert_passed("forward").passed
    with pytest.raises(AssertionError, match="conv2d backward: FAILED on cpu, case 2"):
        verdict.assert_passed("backward")
    report = verdict.report()
    assert report.splitlines()[0] == "conv2d: FAILED on cpu: forward passed, backward FAILED"
    with pytest.raises(KeyError, match="its parts are forward, backward"):
        verdict.part("middle")


def test_a_wrong_forward_does_not_cost_the_backward_its_points():
    ns = student("a2_batch_norm")
    right = ns["batch_norm_forward"]

    def forward_with_wrong_y(x, gamma, beta, eps):     # y off by one, the cache right
        y, cache = right(x, gamma, beta, eps)
        return y + 1.0, cache
    verdict = mr.course.check("batch_norm", dict(ns, batch_norm_forward=forward_with_wrong_y))
    assert not verdict.part("forward").passed
    assert verdict.part("backward").passed, verdict.report()


def test_a_stub_forward_leaves_the_backward_unchecked_with_a_hint():
    def stub(*args):
        raise NotImplementedError()
    verdict = mr.course.check("relu", student("a1_kernels", relu_forward=stub))
    backward = verdict.part("backward")
    assert not backward.passed and "not checked" in backward.failure
    assert "hint: fix relu forward first" in backward.report()


def test_every_piece_has_parts_and_the_notebooks_grade_each_part():
    graded = set()
    for path in NOTEBOOKS:
        for cell in json.loads(path.read_text())["cells"]:
            meta = cell["metadata"].get("nbgrader", {})
            if cell["cell_type"] == "code" and meta.get("grade"):
                graded.add(meta["grade_id"])
    for name, piece in mr.course.PIECES.items():
        assert piece.parts, name
        for part in piece.parts:
            assert f"check_{name}_{part}" in graded, (name, part)


# --- the notebooks: hidden tests, points, titles, submission ---

def grade_cells(nb):
    return [c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade")]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_hidden_tests_are_in_the_source_and_not_in_the_release(path, tmp_path):
    nb = json.loads(path.read_text())
    for cell in grade_cells(nb):
        if cell["cell_type"] == "code":
            source = "".join(cell["source"])
            assert "### BEGIN HIDDEN TESTS" in source and "### END HIDDEN TESTS" in source, \
                cell["metadata"]["nbgrader"]["grade_id"]
    assert main(["release", str(path), str(tmp_path / path.name)]) == 0
    released = (tmp_path / path.name).read_text()
    assert "HIDDEN" not in released and "BEGIN SOLUTION" not in released
    assert "seed=2015" not in released and "other_test_set" not in released
    # each autograder cell keeps its visible check, exactly what comes before the hidden tests
    visible = ["".join(c["source"]).split("### BEGIN HIDDEN TESTS")[0].rstrip("\n")
               for c in grade_cells(nb) if c["cell_type"] == "code"]
    kept = ["".join(c["source"]) for c in grade_cells(json.loads(released))
            if c["cell_type"] == "code"]
    assert kept == visible


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_intro_renders_and_states_points_time_and_submission(path):
    nb = json.loads(path.read_text())
    intro = "".join(nb["cells"][0]["source"])
    assert nb["cells"][0]["cell_type"] == "markdown"
    assert intro.startswith("# Assignment "), "the title must not be indented (a code block)"
    assert not any(line.startswith("    ") for line in intro.split("\n\n")[1].splitlines())
    total = sum(c["metadata"]["nbgrader"].get("points", 0) for c in grade_cells(nb))
    stated = re.search(r"\*\*Points: (\d+)\.\*\*", intro)
    assert stated and int(stated.group(1)) == total, (stated and stated.group(0), total)
    for cell in grade_cells(nb):        # each autograder cell states its own points
        if cell["cell_type"] == "code":
            points = cell["metadata"]["nbgrader"]["points"]
            first = cell["source"][0]
            assert f"({points} point" in first, first
    assert "**How to submit.**" in intro and "**Time.**" in intro
    assert "minute" not in intro and not re.search(r"\d+ (hours?|minutes?)", intro)
    assert "this notebook ran top to bottom in" in "".join(nb["cells"][-1]["source"])


def test_each_intro_points_to_its_own_checker():
    for path in NOTEBOOKS:
        intro = "".join(json.loads(path.read_text())["cells"][0]["source"])
        named = set(re.findall(r"`minires check (\w+) ", intro)) - {"all"}
        graded = {c["metadata"]["nbgrader"]["grade_id"] for c in grade_cells(
            json.loads(path.read_text()))}
        assert named and all(any(g.startswith(f"check_{p}_") for g in graded) for p in named), \
            (path.name, named)


def test_a4_has_no_typed_run_time_and_no_claim_that_deep_resnets_never_degrade():
    text = (ASSIGNMENTS / "a4_train_resnet.ipynb").read_text()
    assert "seven minutes" not in text
    assert "The residual nets of the same depths do not degrade." not in text
    for grade_id in ("check_sanity", "check_training"):
        assert f'"grade_id": "{grade_id}"' in text


# --- assignment 4's training loop, graded on what it does ---

class FixedModel:
    """A stand-in model: logits that pick ``pick(labels)``, in eval mode or not."""

    def __init__(self, predictions):
        self.predictions, self.training = predictions, True

    def eval(self):
        self.training = False

    def train(self, mode=True):
        self.training = mode

    def __call__(self, x):
        n = x.shape[0]
        logits = np.zeros((n, 10))
        logits[np.arange(n), self.predictions[:n]] = 1.0
        return mr.tensor(logits)


class Data:
    def __init__(self, n, seed=0):
        rng = np.random.default_rng(seed)
        self.images = rng.standard_normal((n, 3, 2, 2)).astype(np.float32)
        self.labels = rng.integers(0, 10, n)


def fake_train(losses, predictions):
    def train(kernels, data, steps, batch_size, lr):
        return FixedModel(predictions(data)), losses(steps)
    return train


def test_training_grader_passes_a_loop_that_learns():
    test = Data(200)
    train = fake_train(lambda s: list(np.linspace(2.3, 1.5, s)), lambda d: test.labels)
    verdict = mr.course.check_training(train, None, Data(50), test, 40, 8, 0.1)
    assert verdict.passed, verdict.report()
    assert verdict.measured["held_out_error"] == 0.0
    assert "held-out error 0.0% on 200 images (chance 90%)" in verdict.report()


def test_training_grader_fails_each_part_on_its_own():
    test = Data(200)
    flat = fake_train(lambda s: [2.3] * s, lambda d: test.labels)
    verdict = mr.course.check_training(flat, None, Data(50), test, 40, 8, 0.1)
    assert not verdict.part("loss_falls").passed and verdict.part("held_out").passed
    assert verdict.part("loss_falls").trap == training.FALL_HINT
    constant = fake_train(lambda s: list(np.linspace(2.3, 1.5, s)),
                          lambda d: (test.labels + 1) % 10)         # always wrong
    verdict = mr.course.check_training(constant, None, Data(50), test, 40, 8, 0.1)
    assert verdict.part("loss_falls").passed and not verdict.part("held_out").passed
    assert "chance is 90%" in verdict.part("held_out").failure

    def stub(*args):
        raise NotImplementedError()
    verdict = mr.course.check_training(stub, None, Data(50), test, 40, 8, 0.1)
    assert not verdict.passed and "hint: train is still a stub" in verdict.report()


def _tiny_loop(scale=1.0):
    """A real training loop on minires's kernels; ``scale`` multiplies the reported loss."""
    from minires import models, optim
    import minires.nn.functional as F

    def train(kernels, data, steps, batch_size, lr):
        mr.manual_seed(0)
        model = models.resnet20(width=2)
        opt = optim.SGD(model.parameters(), lr=lr, momentum=0.9)
        losses = []
        for step in range(steps):
            batch = np.arange(step * batch_size, (step + 1) * batch_size) % len(data.labels)
            loss = F.cross_entropy(model(mr.tensor(data.images[batch])),
                                   mr.tensor(data.labels[batch]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item() * scale)
        return model, losses
    return train


def test_sanity_checks_on_a_real_loop():
    data, _ = mr.data.load_embedded(image_size=8, num_train=20, num_test=0)
    verdict = mr.course.check_sanity(_tiny_loop(), None, data)
    assert verdict.passed, verdict.report()
    assert abs(verdict.measured["first_loss"] - math.log(10)) < training.INITIAL_LOSS_TOLERANCE
    summed = mr.course.check_sanity(_tiny_loop(scale=20.0), None, data)   # a loss summed
    assert not summed.part("initial_loss").passed
    assert summed.part("initial_loss").trap == training.INITIAL_HINT


def test_release_of_every_assignment_keeps_grade_cells_and_drops_solutions():
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text())
        released = student_notebook(nb)
        assert len(grade_cells(released)) == len(grade_cells(nb))
        text = json.dumps(released)
        assert "### BEGIN SOLUTION" not in text and "### BEGIN HIDDEN TESTS" not in text


def test_solution_source_helper_still_finds_every_solution_cell():
    assert "def conv2d_backward" in solution_source("a1_kernels")
    assert "def train(" in solution_source("a4_train_resnet")
