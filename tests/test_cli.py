"""The minires command end to end (tiny settings) and its errors."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import minires as mr
from minires import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(args):
    return cli.main(args)


def test_degradation_tiny_run(tmp_path, capsys):
    out = str(tmp_path / "deg")
    rc = run(["degradation", "--depths", "8", "14", "--steps", "6", "--image-size", "8",
              "--width", "4", "--num-train", "256", "--batch-size", "32", "--eval-every", "3",
              "--out", out, "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "plain" in printed and "ResNet" in printed and "14 |" in printed
    results = json.load(open(os.path.join(out, "results.json")))
    assert results["settings"]["steps"] == 6 and results["settings"]["dataset"] == "embedded"
    names = [r["model"] for r in results["runs"]]
    assert names == ["plain8", "resnet8", "plain14", "resnet14"]
    for r in results["runs"]:
        assert r["steps"] == [3, 6] and len(r["train_error"]) == 2 and len(r["test_error"]) == 2
        assert r["params"] > 0 and r["seconds"] > 0
        assert r["residual"] == r["model"].startswith("resnet")
    for png in ("training_error.png", "test_error.png", "gradient_norms_at_init.png"):
        assert os.path.getsize(os.path.join(out, png)) > 1000
    # every trained model is kept, and comes back with the weights it ended with
    from minires.experiments import load_trained_model, trained_model_path
    for name in names:
        assert os.path.exists(trained_model_path(out, name))
    model = load_trained_model(out, "resnet14")
    assert model.name == "resnet14" and not model.training
    saved = mr.load(trained_model_path(out, "resnet14"))
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), saved[key].numpy())
    with pytest.raises(ValueError, match="no trained resnet20"):
        load_trained_model(out, "resnet20")


def test_gradflow_tiny_run(tmp_path, capsys):
    out = str(tmp_path / "gf")
    rc = run(["gradflow", "--model", "plain8", "--compare", "resnet8", "--batch-size", "8",
              "--image-size", "8", "--width", "4", "--out", out, "--no-progress"])
    assert rc == 0
    data = json.load(open(os.path.join(out, "gradflow.json")))
    assert set(data["models"]) == {"plain8", "resnet8"}
    blocks = data["models"]["resnet8"]["blocks"]
    assert blocks[0]["name"] == "blocks.0" and blocks[0]["shortcut_grad_norm"] is not None
    assert data["models"]["plain8"]["blocks"][0]["shortcut_grad_norm"] is None
    p = data["models"]["plain8"]["params"][0]
    assert set(p) >= {"name", "depth", "grad_norm", "weight_norm"}
    assert "sc/branch" in capsys.readouterr().out
    assert os.path.exists(os.path.join(out, "gradient_norms.png"))


def test_train_and_resume(tmp_path, capsys):
    out = str(tmp_path / "tr")
    args = ["train", "--model", "resnet8", "--steps", "4", "--image-size", "8", "--width", "4",
            "--num-train", "128", "--batch-size", "32", "--out", out, "--no-progress"]
    assert run(args) == 0
    assert os.path.exists(os.path.join(out, "checkpoint.npz"))
    assert run(args + ["--resume"]) == 0
    hist = json.load(open(os.path.join(out, "history.json")))["history"]
    assert hist["steps"][-1] == 4


def _config(args):
    return cli.degradation_config(cli.build_parser().parse_args(["degradation"] + args))


def test_degradation_defaults_are_the_quick_run():
    config = _config([])
    assert (config.dataset, config.image_size, config.width, config.steps) == \
        ("embedded", 12, 8, 800)
    assert (config.batch_size, config.lr, config.warmup_steps, config.depths) == \
        (128, 0.1, 100, (20, 56))
    assert _config(["--quick"]) == config
    assert _config(["--image-size", "16", "--width", "16"]).image_size == 16
    full = _config(["--full"])
    assert (full.dataset, full.image_size, full.width, full.steps) == ("cifar10", 32, 16, 64000)


def test_degradation_on_cifar10_defaults_to_32x32():
    from minires.experiments import DegradationConfig
    assert DegradationConfig.quick(dataset="cifar10").image_size == 32
    assert _config(["--dataset", "cifar10"]).image_size == 32
    with pytest.raises(cli.CLIError, match="32x32"):
        _config(["--dataset", "cifar10", "--image-size", "12"])


@pytest.mark.parametrize("args, message", [
    (["degradation", "--depths", "21"], "6n+2"),
    (["degradation", "--steps", "0"], "positive"),
    (["gradflow", "--model", "vgg16"], "unknown model"),
    (["gradflow", "--model", "resnet21"], "6n+2"),
    (["train", "--model", "resnet20", "--device", "tpu"], "unknown device"),
    (["train", "--model", "resnet20", "--dataset", "cifar10", "--image-size", "16"], "32x32"),
])
def test_bad_arguments_one_line_error(args, message, capsys):
    try:
        rc = run(args)
    except SystemExit as exc:       # argparse errors exit with status 2
        rc = exc.code
    assert rc in (1, 2)
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_unwritable_out(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc = run(["degradation", "--out", str(blocker / "sub"), "--no-progress"])
    assert rc == 1
    assert "not a writable folder" in capsys.readouterr().err


def test_unavailable_cuda(capsys):
    import minires as mr
    if mr.cuda.is_available():
        pytest.skip("a GPU is available here")
    rc = run(["degradation", "--device", "cuda", "--no-progress", "--out", "/tmp/unused-mr"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "cuda" in err and "Traceback" not in err


def test_python_dash_m_entry_point():
    proc = subprocess.run([sys.executable, "-m", "minires", "--version"], capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT})
    assert proc.returncode == 0 and proc.stdout.startswith("minires ")


# --- results are never overwritten silently; every refusal is one line (exit 1) ---

TRAIN = ["train", "--model", "resnet8", "--steps", "4", "--image-size", "8", "--width", "4",
         "--num-train", "64", "--batch-size", "16", "--no-progress"]


def one_line(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def one_line_error(capsys):
    return one_line(capsys.readouterr().err)


def test_train_refuses_to_overwrite_and_to_resume_nothing(tmp_path, capsys):
    out = str(tmp_path / "tr")
    assert run(TRAIN + ["--out", out]) == 0
    checkpoint = os.path.join(out, "checkpoint.npz")
    assert mr.load(checkpoint)["step"] == 4
    assert run(TRAIN + ["--steps", "2", "--out", out]) == 1
    line = one_line_error(capsys)
    assert "--resume" in line and "--overwrite" in line
    assert mr.load(checkpoint)["step"] == 4                       # untouched
    assert run(TRAIN + ["--out", out + "-typo", "--resume"]) == 1
    assert "nothing to resume" in one_line_error(capsys)
    assert not os.path.exists(out + "-typo")                      # no empty folder left behind
    # another width, batch size or model: one line naming what differs, the checkpoint untouched
    for flags, named in ((["--width", "8"], "width"), (["--batch-size", "32"], "batch_size"),
                         (["--model", "plain8"], "model")):
        assert run(TRAIN + flags + ["--out", out, "--resume"]) == 1
        assert named in one_line_error(capsys)
    assert mr.load(checkpoint)["step"] == 4
    assert run(TRAIN + ["--steps", "2", "--out", out, "--overwrite"]) == 0
    assert mr.load(checkpoint)["step"] == 2
    with pytest.raises(SystemExit):                               # one or the other
        run(TRAIN + ["--out", out, "--resume", "--overwrite"])


def test_resume_from_a_damaged_or_foreign_checkpoint_is_one_line(tmp_path, capsys):
    out = tmp_path / "tr"
    assert run(TRAIN + ["--out", str(out)]) == 0
    checkpoint = out / "checkpoint.npz"
    data = checkpoint.read_bytes()
    checkpoint.write_bytes(data[:len(data) // 2])                 # truncated
    assert run(TRAIN + ["--out", str(out), "--resume"]) == 1
    assert "truncated" in one_line_error(capsys)
    mr.save({"model": {"w": np.ones(2)}, "step": 3}, checkpoint)   # not a training checkpoint
    assert run(TRAIN + ["--out", str(out), "--resume"]) == 1
    assert "not a training checkpoint" in one_line_error(capsys)


def test_degradation_refuses_to_overwrite_and_to_resume_nothing(tmp_path, capsys):
    out = tmp_path / "deg"
    out.mkdir()
    (out / "results.json").write_text('{"settings": {}, "runs": []}')
    args = ["degradation", "--depths", "8", "--steps", "2", "--image-size", "8", "--width", "4",
            "--num-train", "32", "--batch-size", "16", "--no-progress"]
    assert run(args + ["--out", str(out)]) == 1
    assert "--overwrite" in one_line_error(capsys)
    assert run(args + ["--out", str(out), "--resume"]) == 1      # made with other settings
    assert "--overwrite" in one_line_error(capsys)
    assert (out / "results.json").read_text() == '{"settings": {}, "runs": []}'
    assert run(args + ["--out", str(tmp_path / "typo"), "--resume"]) == 1
    assert "nothing to resume" in one_line_error(capsys)
    assert not (tmp_path / "typo").exists()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_train_divergence_is_one_line_and_keeps_the_finite_checkpoint(tmp_path, capsys):
    out = str(tmp_path / "tr")
    assert run(TRAIN + ["--steps", "8", "--lr", "1e30", "--out", out]) == 1
    line = one_line_error(capsys)
    assert "diverged at step" in line and "--lr" in line
    text = open(os.path.join(out, "history.json")).read()
    history = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))["history"]
    assert history["diverged"] and f"step {history['diverged_step']}:" in line
    assert None in history["train_loss"] + history["test_loss"]    # null, not NaN
    state = mr.load(os.path.join(out, "checkpoint.npz"))
    assert state["step"] < history["diverged_step"]
    for key, value in state["model"].items():
        assert np.isfinite(value.numpy()).all(), key


@pytest.mark.parametrize("args, message", [
    (["train", "--lr", "-0.1"], "finite number >= 0"),
    (["train", "--lr", "nan"], "finite number >= 0"),
    (["degradation", "--lr", "inf"], "finite number >= 0"),
    (["train", "--seed", "-1"], ">= 0"),
    (["degradation", "--warmup-steps", "-5"], ">= 0"),
    (["gradflow", "--after-steps", "-1"], ">= 0"),
    (["train", "--image-size", "4"], "at least 8 pixels"),
    (["degradation", "--image-size", "7"], "at least 8 pixels"),
    (["train", "--batch-size", "512", "--num-train", "256"], "larger than the training set"),
    (["degradation", "--batch-size", "512", "--num-train", "256"], "larger than the training"),
])
def test_bad_values_are_refused_before_any_folder(args, message, tmp_path, capsys):
    out = tmp_path / "never"
    try:
        rc = run(args + ["--out", str(out), "--no-progress"])
    except SystemExit as exc:
        rc = exc.code
    assert rc in (1, 2)
    assert message in one_line_error(capsys)
    assert not out.exists()


def test_cifar_data_dir_problems_are_one_line(tmp_path, capsys, monkeypatch):
    from minires.data import cifar10
    args = ["train", "--dataset", "cifar10", "--steps", "1", "--no-progress",
            "--out", str(tmp_path / "out")]
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert run(args + ["--data-dir", str(a_file)]) == 1
    assert "is a file" in one_line_error(capsys)
    assert not (tmp_path / "out").exists()             # no empty --out left behind
    # an archive whose member climbs out of the folder is refused, nothing extracted
    import io
    import tarfile
    root = tmp_path / "data"
    root.mkdir()
    with tarfile.open(root / cifar10.ARCHIVE_NAME, "w:gz") as tar:
        info = tarfile.TarInfo("../evil")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    monkeypatch.setattr(cifar10, "CIFAR10_MD5", None)
    assert run(args + ["--data-dir", str(root)]) == 1
    assert "unsafe archive" in one_line_error(capsys)
    assert not (tmp_path / "evil").exists()
    # a folder it may not write to (simulated: the tests may run as root, who writes anywhere)
    def read_only(archive, target):
        raise PermissionError(13, "Permission denied", str(target))
    monkeypatch.setattr(cifar10, "_extract", read_only)
    assert run(args + ["--data-dir", str(root)]) == 1
    line = one_line_error(capsys)
    assert "Permission denied" in line and "writable folder" in line


def test_degradation_table_stays_aligned_with_a_diverged_run():
    from minires.experiments import degradation_table

    def entry(depth, residual, diverged):
        return {"depth": depth, "residual": residual, "diverged": diverged,
                "train_error": [90.0, None if diverged else 12.5], "test_error": [90.0, 20.25]}
    table = degradation_table({"runs": [entry(8, False, False), entry(8, True, True),
                                        entry(14, False, True), entry(14, True, False)]})
    lines = table.splitlines()[1:]
    assert "(diverged)" in table and "-" in lines[2]
    assert len({len(line) for line in lines}) == 1, table                 # same width
    assert len({line.index("|") for line in lines if "|" in line}) == 1
    assert len({line.rindex("|") for line in lines if "|" in line}) == 1


def test_gradflow_data_does_not_grow_with_the_steps(tmp_path, monkeypatch):
    from minires import experiments
    from minires.experiments import gradflow
    asked = []
    real_load = experiments.load_data

    def load_data(dataset, image_size, num_train, *rest, **kw):
        asked.append(num_train)
        return real_load(dataset, image_size, num_train, *rest, **kw)
    monkeypatch.setattr(gradflow, "load_data", load_data)
    monkeypatch.setattr(gradflow, "fit", lambda *a, **kw: None)   # only the data is measured
    for steps in (0, 10 ** 6):
        experiments.run_gradflow(["plain8"], batch_size=8, image_size=8, width=2,
                                 after_steps=steps, out=str(tmp_path / str(steps)),
                                 progress=False, log=lambda m: None)
    assert asked[0] == asked[1] <= 2048


def test_the_cli_catches_minires_errors_by_their_base_class_only(monkeypatch, capsys):
    from minires.errors import MiniresError

    class SomeNewError(MiniresError):
        pass

    def fails_on_purpose(args):
        raise SomeNewError("what is wrong, and how to fix it")
    monkeypatch.setattr(cli, "cmd_gradflow", fails_on_purpose)
    assert run(["gradflow"]) == 1
    assert one_line_error(capsys) == "minires gradflow: error: what is wrong, and how to fix it"

    def has_a_bug(args):
        raise RuntimeError("cifar device checkpoint")     # words are not a reason to hide it
    monkeypatch.setattr(cli, "cmd_gradflow", has_a_bug)
    with pytest.raises(RuntimeError, match="cifar device checkpoint"):
        run(["gradflow"])


def test_minires_errors_share_one_base_class():
    from minires.data import CorruptArchiveError, DatasetError
    from minires.errors import CheckpointError, MiniresError
    for error in (mr.DeviceError, DatasetError, CorruptArchiveError, CheckpointError,
                  cli.CLIError):
        assert issubclass(error, MiniresError), error
    assert issubclass(CheckpointError, ValueError) and issubclass(mr.DeviceError, RuntimeError)
    assert mr.serialization.CheckpointError is CheckpointError


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_degradation_records_divergence_and_exits_1(tmp_path, capsys):
    from minires.experiments import load_trained_model
    out = str(tmp_path / "deg")
    assert run(["degradation", "--depths", "8", "--steps", "4", "--image-size", "8", "--width",
                "4", "--num-train", "32", "--batch-size", "16", "--eval-every", "2", "--lr",
                "1e30", "--warmup-steps", "0", "--out", out, "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert "(diverged)" in captured.out
    line = one_line(captured.err)
    assert "plain8 diverged at step" in line and "resnet8 diverged at step" in line
    text = open(os.path.join(out, "results.json")).read()
    results = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    for r in results["runs"]:
        assert r["diverged"] and r["diverged_step"] >= 1
    assert not os.path.exists(os.path.join(out, "models", "plain8.npz"))
    with pytest.raises(ValueError, match="diverged"):
        load_trained_model(out, "plain8")


def test_device_default_is_the_flag_then_minires_device_then_cpu(monkeypatch):
    monkeypatch.setenv("MINIRES_DEVICE", "strict")
    assert cli._device(None) == "strict"
    assert cli._device("cpu") == "cpu"
    monkeypatch.delenv("MINIRES_DEVICE")
    assert cli._device(None) == "cpu"
    with pytest.raises(cli.CLIError, match="tpu"):
        cli._device("tpu")


def test_train_with_lr_zero_keeps_the_weights_and_moves_batch_norm(tmp_path, capsys):
    out = str(tmp_path / "tr")
    assert run(TRAIN + ["--lr", "0", "--out", out]) == 0
    state = mr.load(os.path.join(out, "checkpoint.npz"))["model"]
    mr.manual_seed(0)                       # the CLI's default seed, before building the model
    initial = mr.models.get_model("resnet8", width=4)
    for name, p in initial.named_parameters():
        np.testing.assert_array_equal(state[name].numpy(), p.detach().numpy(), err_msg=name)
    means = [v.numpy() for k, v in state.items() if k.endswith("running_mean")]
    assert means and all(np.abs(m).sum() > 0 for m in means)


def test_degradation_accepts_lr_zero():
    assert _config(["--lr", "0"]).lr == 0.0


def test_train_resume_extends_a_finished_run(tmp_path, capsys):
    out = str(tmp_path / "tr")
    assert run(TRAIN + ["--out", out]) == 0
    first = json.load(open(os.path.join(out, "history.json")))["history"]
    capsys.readouterr()
    longer = TRAIN + ["--steps", "8"]                         # the last --steps counts
    assert run(longer + ["--out", out, "--resume"]) == 0
    printed = capsys.readouterr().out
    assert "extending the finished run" in printed and "from step 4 to 8" in printed
    hist = json.load(open(os.path.join(out, "history.json")))["history"]
    assert hist["steps"] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert hist["train_loss"][:4] == first["train_loss"]
    assert hist["lr"][4:] == [first["lr"][-1]] * 4          # the schedule's last value
    # resumed again with the longer length: the finished extension, nothing more to train
    assert run(longer + ["--out", out, "--resume"]) == 0
    assert json.load(open(os.path.join(out, "history.json")))["history"]["steps"][-1] == 8


def test_train_resume_with_fewer_steps_is_one_line(tmp_path, capsys):
    out = str(tmp_path / "tr")
    assert run(TRAIN + ["--out", out]) == 0
    capsys.readouterr()
    shorter = TRAIN + ["--steps", "2"]
    assert run(shorter + ["--out", out, "--resume"]) == 1
    line = one_line_error(capsys)
    assert "already trained 4 steps" in line and "nothing to do" in line
