"""The experiments are a package by job (minires/experiments/), but every import path that users,
notebooks, docs, benchmarks and tools used before keeps working and names the same objects."""
import importlib
import inspect

import pytest

from minires import experiments, jsonio, studies
from minires.experiments import (common, degradation, gradflow, landscape, lesion, responses,
                                 train)

# name -> the module of minires.experiments that defines it
OLD_EXPERIMENTS_NAMES = {
    "DegradationConfig": degradation, "run_degradation": degradation,
    "degradation_table": degradation, "load_data": common, "load_trained_model": common,
    "trained_model_path": common, "run_gradflow": gradflow, "gradflow_table": gradflow,
    "GRADFLOW_RESPONSES_TITLE": gradflow, "GRADFLOW_POOL_IMAGES": gradflow,
    "GRADFLOW_TEST_IMAGES": gradflow, "GRADFLOW_MAX_WARMUP_STEPS": gradflow,
    "run_responses": responses, "RESPONSES_BATCH_SIZE": responses,
    "PROBE_BATCH_SIZE": common, "PROBE_SEED_OFFSET": common, "run_train": train,
}
OLD_STUDIES_NAMES = {
    "run_lesion": lesion, "lesion_table": lesion, "lesion_markdown": lesion,
    "lesion_rows": lesion, "run_landscape": landscape, "landscape_table": landscape,
    "landscape_markdown": landscape, "trained_models": degradation, "degradation_data": common,
}


@pytest.mark.parametrize("name", sorted(OLD_EXPERIMENTS_NAMES))
def test_minires_experiments_still_hands_on_every_name(name):
    assert getattr(experiments, name) is getattr(OLD_EXPERIMENTS_NAMES[name], name)


@pytest.mark.parametrize("name", sorted(OLD_STUDIES_NAMES))
def test_minires_studies_still_hands_on_every_name(name):
    assert getattr(studies, name) is getattr(OLD_STUDIES_NAMES[name], name)
    assert name in studies.__all__


def test_the_landscape_figures_are_still_importable_from_lesion_plots():
    pytest.importorskip("matplotlib")
    from minires.diagnostics import landscape_plots, lesion_plots
    for name in ("landscape_contour_figure", "landscape_surface_figure",
                 "landscape_curves_figure", "save_figure"):
        assert getattr(lesion_plots, name) is getattr(landscape_plots, name)
    assert not hasattr(landscape_plots, "lesion_single_figure")


def test_no_experiment_writes_results_json_but_through_jsonio():
    # one writer of results files (atomic, fsync-ed): the experiments do not carry their own
    for module in (common, degradation, gradflow, landscape, lesion, responses, train):
        source = inspect.getsource(module)
        assert "json.dump(" not in source and "os.replace(" not in source, module.__name__


def test_the_experiments_write_results_with_jsonio():
    for module in (degradation, gradflow, landscape, lesion, responses, train):
        assert module.write_json is jsonio.write_json, module.__name__


def test_the_cli_only_parses_and_calls():
    # the work of `minires train` is experiments.train.run_train: the CLI builds no model,
    # augmentation, data-parallel wrapper or figure itself
    from minires import cli
    source = inspect.getsource(cli.cmd_train)
    for built_there in ("get_model", "Compose(", "DistributedDataParallel", "save_figure",
                        "fit(", "write_json"):
        assert built_there not in source, built_there


@pytest.mark.parametrize("old, new", [("backend", "devices.backend"),
                                      ("strict_device", "devices.strict"),
                                      ("cuda", "compat.cuda"), ("accelerator", "compat.accelerator")])
def test_the_old_device_paths_name_the_very_modules_of_their_new_homes(old, new):
    import minires as mr
    moved = importlib.import_module(f"minires.{new}")
    assert importlib.import_module(f"minires.{old}") is moved     # not a copy: one state
    assert getattr(mr, old) is moved
    if old == "backend":
        from minires.backend import Device, to_device, to_host      # noqa: F401
        assert mr.backend.to_host is moved.to_host


# old path -> its home now; each old path names the very module (one state, one set of flags)
MOVED_MODULES = {
    "minires.host_allocator": "minires.devices.host_allocator",
    "minires.accelerator": "minires.compat.accelerator",
    "minires.cuda": "minires.compat.cuda",
    "minires.backends.cudnn": "minires.compat.cudnn",
    "minires.utils.data": "minires.compat.data",
    "minires.utils.data.distributed": "minires.compat.data.distributed",
}


@pytest.mark.parametrize("old", sorted(MOVED_MODULES))
def test_the_old_paths_name_the_very_modules_of_their_new_homes(old):
    assert importlib.import_module(old) is importlib.import_module(MOVED_MODULES[old])


def test_the_pytorch_spellings_of_the_shims_still_work():
    import minires as mr
    from minires import compat
    from minires.backends import cudnn
    from minires.utils.data import DataLoader, DistributedSampler, TensorDataset, distributed
    from minires.utils.data.distributed import DistributedSampler as Sampler
    from minires.autograd import Variable   # noqa: F401  (a name, kept in autograd)
    assert mr.backends.cudnn is cudnn is importlib.import_module("minires.compat.cudnn")
    assert mr.utils.data.DataLoader is DataLoader and DataLoader.__module__ == "minires.compat.data"
    assert DistributedSampler is Sampler is distributed.DistributedSampler
    assert TensorDataset is mr.data.TensorDataset            # one TensorDataset
    assert mr.cuda.is_available is mr.backend.cuda_is_available
    assert mr.accelerator.device_count() == mr.cuda.device_count()
    cudnn.benchmark = True                      # a flag set through one path is seen through all
    try:
        assert importlib.import_module("minires.compat.cudnn").benchmark is True
    finally:
        cudnn.benchmark = False
    assert "torch" in compat.__doc__ and "Variable" in compat.__doc__


def test_the_allocator_tuning_keeps_its_old_paths():
    from minires.backend import tune_host_allocator
    from minires.devices import host_allocator
    from minires.host_allocator import host_allocator_tuned, tune_host_allocator as old
    assert tune_host_allocator is old is host_allocator.tune_host_allocator
    assert host_allocator_tuned is host_allocator.host_allocator_tuned


def test_nothing_of_minires_imports_the_shims_but_their_old_paths():
    # one-way: minires.compat dresses minires's own devices, engine and loader in PyTorch's
    # names; minires's own code uses its own names, and only the PyTorch paths lead to the shims
    import pathlib
    package = pathlib.Path(inspect.getfile(experiments)).parents[1]
    old_paths = {"__init__.py",                                  # mr.cuda
                 "accelerator.py", "cuda.py", "backends/__init__.py", "backends/cudnn.py",
                 "utils/__init__.py", "utils/data/__init__.py"}
    users = [str(p.relative_to(package)) for p in package.rglob("*.py")
             if "compat" not in p.relative_to(package).parts
             and str(p.relative_to(package)) not in old_paths
             and any(line.lstrip().startswith(("from ", "import ")) and "compat" in line
                     for line in p.read_text().splitlines())]
    assert users == [], users
