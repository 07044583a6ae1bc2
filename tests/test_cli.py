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
