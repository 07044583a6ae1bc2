"""``minires.config``: every process-wide switch in one object. The modes (grad, inference,
anomaly) stay per thread and the old functions work on top of it; the ``MINIRES_*`` variables are
read at use, not at import, in one module, and a bad value is one line naming the variable."""
import os
import pathlib
import re
import subprocess
import sys
import threading

import numpy
import pytest

import minires as mr
from minires import autograd, configuration
from minires.errors import AnomalyError, ConfigError

ROOT = str(pathlib.Path(__file__).resolve().parents[1])


def test_print_shows_every_switch():
    text = str(mr.config)
    for name in ("grad_enabled", "inference_mode", "anomaly", "kernels['conv2d']",
                 "kernels['batch_norm']", *configuration.ENVIRONMENT):
        assert name in text, name
    assert repr(mr.config) == mr.config.describe() == text


def test_the_grad_functions_are_views_of_the_config():
    assert mr.config.grad_enabled and mr.is_grad_enabled()
    with mr.no_grad():
        assert not mr.config.grad_enabled
        with mr.enable_grad():
            assert mr.config.grad_enabled
        assert "grad_enabled          False" in mr.config.describe()
    assert mr.config.grad_enabled
    mr.set_grad_enabled(False)
    try:
        assert not mr.config.grad_enabled and not mr.is_grad_enabled()
    finally:
        mr.config.grad_enabled = True
    assert mr.is_grad_enabled() and mr.tensor([1.0], requires_grad=True).mul(2).requires_grad
    with mr.inference_mode():
        assert mr.config.inference_mode and not mr.config.grad_enabled


def test_the_modes_stay_per_thread():
    seen = {}

    def other():
        seen["grad"], seen["anomaly"] = mr.config.grad_enabled, mr.config.anomaly
    with mr.no_grad(), autograd.detect_anomaly():
        assert mr.config.anomaly and autograd.is_anomaly_enabled()
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert seen == {"grad": True, "anomaly": False}
    assert not mr.config.anomaly


def test_setting_anomaly_on_the_config_is_detect_anomaly():
    mr.config.anomaly = True
    try:
        assert autograd.is_anomaly_enabled()
        with pytest.raises(AnomalyError), numpy.errstate(invalid="ignore"):
            mr.log(mr.tensor([-1.0]))
    finally:
        mr.config.anomaly = False


def test_the_kernels_are_the_dict_the_ops_read():
    from minires.kernels import conv, norm
    from minires.ops import nn_ops
    assert mr.config.kernels is nn_ops.ACTIVE_KERNELS
    assert mr.config.kernels == {"conv2d": conv, "batch_norm": norm}


def test_the_environment_is_read_at_use_not_at_import(monkeypatch):
    monkeypatch.setenv("MINIRES_DEVICE", "strict")
    assert mr.zeros(2).device.type == "strict"
    monkeypatch.setenv("MINIRES_DEVICE", "cpu")
    assert mr.zeros(2).device.type == "cpu"
    monkeypatch.setenv("MINIRES_DATA", "/some/where")
    from minires.data import cifar10
    assert cifar10.default_root() == pathlib.Path("/some/where")
    assert "'/some/where'" in mr.config.describe()
    monkeypatch.delenv("MINIRES_DATA")
    assert cifar10.default_root() == pathlib.Path("~/.cache/minires").expanduser()


@pytest.mark.parametrize("name, value", [("MINIRES_PROGRESS", "off"), ("MINIRES_PROGRESS", "0"),
                                         ("MINIRES_TUNE_MALLOC", "No"), ("MINIRES_PROGRESS", "")])
def test_switches_read_the_usual_spellings(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    assert mr.config.env(name) is (value == "")       # unset or empty: the default, on


@pytest.mark.parametrize("name, value, use", [
    ("MINIRES_PROGRESS", "maybe", lambda: __import__("minires.train").train.progress_enabled()),
    ("MINIRES_TUNE_MALLOC", "2", lambda: mr.devices.host_allocator.tune_host_allocator()),
    ("MINIRES_DEVICE", "gpu", lambda: mr.zeros(1)),
])
def test_a_bad_value_is_one_line_naming_the_variable(monkeypatch, name, value, use):
    import minires.devices.host_allocator  # noqa: F401
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        use()
    message = str(info.value)
    assert message.startswith(f"{name}={value!r}") and "\n" not in message
    assert isinstance(info.value, ValueError)


def test_an_unknown_variable_is_refused():
    with pytest.raises(ConfigError, match="MINIRES_DEVICE"):
        mr.config.env("MINIRES_DEVIC")


def test_the_cli_prints_a_bad_variable_in_one_line(monkeypatch, capsys):
    from minires import cli
    monkeypatch.setenv("MINIRES_DEVICE", "tpu")
    assert cli.main(["gradflow", "--model", "resnet8", "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert "MINIRES_DEVICE='tpu'" in err and len(err.splitlines()) == 1


def test_import_reads_no_variable():
    env = {**os.environ, "PYTHONPATH": ROOT, "MINIRES_DEVICE": "tpu", "MINIRES_PROGRESS": "x",
           "MINIRES_TUNE_MALLOC": "x", "MINIRES_DATA": ""}
    code = "import minires, minires.train, minires.cli, minires.data, minires.utils.data"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_only_the_configuration_module_reads_minires_variables():
    package = pathlib.Path(ROOT) / "minires"
    reads = re.compile(r"""(environ(\.get)?[(\[]|getenv\()\s*["']MINIRES_""")
    readers = [str(p.relative_to(package)) for p in package.rglob("*.py")
               if reads.search(p.read_text())]
    assert readers == [], f"read MINIRES_* through minires.config.env, not os.environ: {readers}"


def test_the_docs_table_lists_every_variable():
    page = (pathlib.Path(ROOT) / "docs" / "configuration.md").read_text()
    for name, var in configuration.ENVIRONMENT.items():
        assert f"`{name}`" in page, name


def test_the_old_homes_of_the_modes_name_the_same_objects():
    from minires.autograd import anomaly, grad_mode
    assert grad_mode.GRAD_MODE is configuration.GRAD_MODE
    assert grad_mode.INFERENCE_MODE is configuration.INFERENCE_MODE
    assert anomaly.ANOMALY_MODE is configuration.ANOMALY_MODE
    assert grad_mode.ThreadMode is configuration.ThreadMode


def test_set_detect_anomaly_switches_at_once_and_back_on_exit():
    autograd.set_detect_anomaly(True)
    try:
        assert mr.config.anomaly
        with autograd.set_detect_anomaly(False):
            assert not mr.config.anomaly
        assert mr.config.anomaly
    finally:
        autograd.set_detect_anomaly(False)
    assert not mr.config.anomaly

    @autograd.set_detect_anomaly(True)
    def checked():
        return mr.config.anomaly
    assert not mr.config.anomaly and checked() and not mr.config.anomaly
