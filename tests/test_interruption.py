"""Runs that are stopped by a signal keep what they finished, and `--resume` ends where an
uninterrupted run ends, bit for bit (tiny nets, a few steps, each command in its own process)."""
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import minires as mr

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# one BLAS thread in every process, so that the interrupted and the uninterrupted run compute alike
ENV = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
       "MKL_NUM_THREADS": "1", "MINIRES_PROGRESS": "0"}

# A real signal at a known point: the process sends it to itself right after the n-th save of
# the named checkpoint (a timer could fire before the first checkpoint or after the run).
SIGNAL_AFTER_SAVE = r"""
import os, signal, sys
import minires.serialization as serialization
from minires import cli
name, after, signame = sys.argv[1], int(sys.argv[2]), sys.argv[3]
real_save, saved = serialization.save, []

def save(obj, path):
    real_save(obj, path)
    if os.path.basename(path) == name:
        saved.append(path)
        if len(saved) == after:
            os.kill(os.getpid(), getattr(signal, signame))

serialization.save = save
sys.exit(cli.main(sys.argv[4:]))
"""


def minires(*args):
    return subprocess.run([sys.executable, "-m", "minires", *args], capture_output=True,
                          text=True, cwd=ROOT, env=ENV, timeout=300)


def minires_stopped(name, after, signame, *args):
    return subprocess.run([sys.executable, "-c", SIGNAL_AFTER_SAVE, name, str(after), signame,
                           *args], capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=300)


def one_line(stderr):
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


DEGRADATION = ["degradation", "--depths", "8", "14", "--steps", "8", "--image-size", "8",
               "--width", "4", "--num-train", "64", "--batch-size", "16", "--eval-every", "2",
               "--no-progress"]


def _without_seconds(results):
    return {**results, "runs": [{k: v for k, v in r.items() if k != "seconds"}
                                for r in results["runs"]]}


def test_degradation_interrupted_in_the_third_run_resumes_to_the_same_results(tmp_path):
    whole, cut = str(tmp_path / "whole"), str(tmp_path / "cut")
    done = minires(*DEGRADATION, "--out", whole)
    assert done.returncode == 0, done.stderr

    # Ctrl-C in the third of four runs (plain14), after its second checkpoint (step 4 of 8)
    stopped = minires_stopped("plain14.npz", 2, "SIGINT", *DEGRADATION, "--out", cut)
    assert stopped.returncode == 128 + signal.SIGINT
    assert "--resume" in one_line(stopped.stderr)
    kept = json.load(open(os.path.join(cut, "results.json")))
    assert [r["model"] for r in kept["runs"]] == ["plain8", "resnet8"]
    assert sorted(os.listdir(os.path.join(cut, "models"))) == ["plain8.npz", "resnet8.npz"]
    assert mr.load(os.path.join(cut, "checkpoints", "plain14.npz"))["step"] == 4

    again = minires(*DEGRADATION, "--out", cut)            # neither --resume nor --overwrite
    assert again.returncode == 1
    line = one_line(again.stderr)
    assert "--resume" in line and "--overwrite" in line
    assert mr.load(os.path.join(cut, "checkpoints", "plain14.npz"))["step"] == 4   # untouched

    resumed = minires(*DEGRADATION, "--out", cut, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "plain8: finished before" in resumed.stdout and "resuming plain14" in resumed.stdout
    a = json.load(open(os.path.join(whole, "results.json")))
    b = json.load(open(os.path.join(cut, "results.json")))
    assert _without_seconds(a) == _without_seconds(b)        # every error and loss, exactly
    for name in ("plain8", "resnet8", "plain14", "resnet14"):
        wa = mr.load(os.path.join(whole, "models", f"{name}.npz"))
        wb = mr.load(os.path.join(cut, "models", f"{name}.npz"))
        assert wa.keys() == wb.keys()
        for key in wa:
            np.testing.assert_array_equal(wa[key].numpy(), wb[key].numpy(), err_msg=key)
    assert not os.path.exists(os.path.join(cut, "checkpoints"))   # dropped once finished


TRAIN = ["train", "--model", "resnet8", "--steps", "8", "--image-size", "8", "--width", "4",
         "--num-train", "64", "--batch-size", "16", "--no-progress"]


@pytest.mark.skipif(not hasattr(signal, "SIGTERM"), reason="no SIGTERM here")
def test_train_stopped_by_sigterm_resumes_bit_for_bit(tmp_path):
    whole, cut = str(tmp_path / "whole"), str(tmp_path / "cut")
    assert minires(*TRAIN, "--out", whole).returncode == 0
    stopped = minires_stopped("checkpoint.npz", 3, "SIGTERM", *TRAIN, "--out", cut)
    assert stopped.returncode == 128 + signal.SIGTERM
    assert "SIGTERM" in one_line(stopped.stderr)
    assert mr.load(os.path.join(cut, "checkpoint.npz"))["step"] == 3
    resumed = minires(*TRAIN, "--out", cut, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    a, b = mr.load(os.path.join(whole, "checkpoint.npz")), mr.load(os.path.join(cut,
                                                                           "checkpoint.npz"))
    assert a["step"] == b["step"] == 8
    for key in a["model"]:
        np.testing.assert_array_equal(a["model"][key].numpy(), b["model"][key].numpy())
    ha = json.load(open(os.path.join(whole, "history.json")))["history"]
    hb = json.load(open(os.path.join(cut, "history.json")))["history"]
    ha.pop("seconds"), hb.pop("seconds")
    assert ha == hb
