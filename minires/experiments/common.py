"""What the experiments share: the data they train and test on, the trained nets a degradation
run leaves behind, the process group's ranks, and a log line on stdout.

Results files are written by :func:`minires.jsonio.write_json` (strict JSON, atomically, flushed
to disk); :func:`refuse_overwrite` keeps an existing one unless asked.
"""
from __future__ import annotations

import json
import os

from .. import models
from ..data.cifar10 import load_cifar10
from ..data.embedded import load_embedded
from ..data.transforms import PerPixelMean
from ..errors import UsageError
from ..serialization import load

# The batch measure_gradient_flow sees (at most this many images: the paper's batch size).
PROBE_BATCH_SIZE = 128
# Added to the run's seed for the probe batch's shuffle: other images than the first training
# batch, the same ones for every model of the run.
PROBE_SEED_OFFSET = 1


def print_line(message: str) -> None:
    """The experiments' default ``log``: one line on stdout, at once."""
    print(message, flush=True)


def load_data(dataset: str, image_size: int, num_train: int, num_test: int, seed: int,
              data_dir: str | None = None):
    """``(train, test)`` datasets, per-pixel-mean subtracted with the training mean (the paper)."""
    if dataset == "embedded":
        train, test = load_embedded(image_size=image_size, num_train=num_train,
                                    num_test=num_test, seed=seed)
    elif dataset == "cifar10":
        train, test = load_cifar10(root=data_dir)
        if image_size != 32:
            raise UsageError("CIFAR-10 images are 32x32; use --image-size 32 with cifar10")
    else:
        raise UsageError(f"unknown dataset {dataset!r}: use 'embedded' or 'cifar10'")
    mean = PerPixelMean().fit(train.images)
    train.images = mean(train.images)
    test.images = mean(test.images)
    if dataset == "cifar10" and num_train < len(train):
        from ..data.loader import train_val_split
        train, _ = train_val_split(train, val_fraction=1 - num_train / len(train), seed=seed)
    return train, test


def first_images(dataset, count: int | None):
    """The first ``count`` examples of ``dataset`` (all of them when ``count`` is None)."""
    from ..data.loader import Subset
    import numpy
    if count is None or count >= len(dataset):
        return dataset
    return Subset(dataset, numpy.arange(int(count)))


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def trained_model_path(out: str, name: str) -> str:
    """Where a degradation run in ``out`` keeps the trained weights of model ``name``."""
    return os.path.join(out, "models", f"{name}.npz")


def read_results(out: str) -> dict:
    """The ``results.json`` of the degradation run in ``out``."""
    results_path = os.path.join(out, "results.json")
    if not os.path.exists(results_path):
        raise FileNotFoundError(f"{results_path} not found: run `minires degradation --out "
                                f"{out}` first")
    with open(results_path) as f:
        return json.load(f)


def load_trained_model(out: str, name: str, device: str = "cpu"):
    """The model ``name`` (e.g. ``"resnet56"``) as a degradation run in ``out`` left it: built
    from the run's settings in ``results.json``, with its trained weights, in eval mode."""
    results = read_results(out)
    run = next((r for r in results["runs"] if r["model"] == name), None)
    if run is None:
        raise UsageError(f"{out} holds no trained {name} (it has "
                         f"{', '.join(r['model'] for r in results['runs']) or 'none'})")
    if run.get("diverged"):
        raise UsageError(f"{name} diverged in {out} (at step {run.get('diverged_step')}); no "
                         f"trained weights were kept")
    settings = results["settings"]
    model = models.cifar_resnet(run["depth"], residual=run["residual"],
                                shortcut=run["shortcut"] or settings.get("shortcut", "A"),
                                width=settings["width"])
    model.load_state_dict(load(trained_model_path(out, name)))
    return model.to(device).eval()


def degradation_data(folder: str, data_dir: str | None = None):
    """``(train, test, settings)``: the data a degradation run in ``folder`` trained and tested on
    (rebuilt from its ``results.json``: the same images, mean-subtracted the same way)."""
    with open(os.path.join(folder, "results.json")) as f:
        s = json.load(f)["settings"]
    train, test = load_data(s["dataset"], s["image_size"], s["num_train"], s["num_test"],
                            s["seed"], data_dir)
    return train, test, s


def refuse_overwrite(path: str, overwrite: bool) -> None:
    """Results are never overwritten silently: ``path`` must not exist unless ``overwrite``."""
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists: pass --overwrite (overwrite=True) to replace it")


def process_ranks() -> tuple[int, int]:
    """``(rank, ranks)`` of the process group when there is one (``mpiexec -n N minires ...``),
    else ``(0, 1)``."""
    from .. import distributed as dist
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1
