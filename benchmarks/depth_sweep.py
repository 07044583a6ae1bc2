"""Does the deeper ResNet train better within a small budget? ResNet-20 against ResNet-56 (and
optionally their plain twins) on the embedded set, over a grid of base widths and step counts.

    python benchmarks/depth_sweep.py --json benchmarks/results/depth_sweep/sweep.json
           [--widths 4 8 16] [--steps 800 2400] [--depths 20 56] [--seeds 0] [--plain]
           [--schedule decay|constant] [--image-size 12] [--jobs 2]

The grid is dozens of training runs, so it runs on the **PyTorch twins** of minires's nets
(``twins.py``: the same layers, minires's He initialisation) with PyTorch's CPU speed, one BLAS
thread per run and ``--jobs`` runs at a time. Everything else is minires's: the data
(``minires.experiments.load_data``), the batches in the same order (minires's ``DataLoader`` with
the run's seed), the recipe of ``minires degradation`` (SGD, momentum 0.9, weight decay 1e-4, lr 0.1
after a 100-step linear warm-up; ``decay``: /10 at 50% and 75% of the steps, the paper's schedule)
and its measure: the **final training error** is the error on the mini-batches of the last quarter
of the steps.

Each finished run is written to the JSON file at once; run the same command again to continue an
interrupted sweep (runs already there with the same settings are skipped). ``tools/results_pages.py``
draws the figure and the docs table from the committed file.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from minires.data.loader import DataLoader  # noqa: E402
from minires.experiments import DegradationConfig, load_data  # noqa: E402
from minires.creation import zeros  # noqa: E402
from minires.jsonio import write_json  # noqa: E402
from minires.optim import SGD  # noqa: E402
from minires.train import paper_schedule  # noqa: E402

from common import machine, torch_or_none  # noqa: E402
from twins import init_he_, torch_cifar_resnet  # noqa: E402

RECIPE = DegradationConfig.quick()        # lr, warm-up, batch, images: the quick preset's


def lr_factors(steps: int, warmup: int, decay: bool) -> list[float]:
    """The learning rate of every step over the base one, from minires's own ``paper_schedule``
    (stepped on a dummy parameter): the twins follow minires's schedule exactly."""
    opt = SGD([zeros(1, requires_grad=True)], lr=1.0)
    schedule = paper_schedule(opt, steps, warmup, decay=decay)
    factors = []
    for _ in range(steps):
        factors.append(opt.param_groups[0]["lr"])
        schedule.step()
    return factors


def train_one(run: dict) -> dict:
    """Train one twin; returns ``run`` with its final training and test error (percent)."""
    torch = torch_or_none()
    torch.set_num_threads(run["threads"])
    torch.manual_seed(run["seed"])
    train, test = load_data("embedded", run["image_size"], RECIPE.num_train, RECIPE.num_test,
                            run["seed"])
    model = init_he_(torch, torch_cifar_resnet(torch, run["depth"], run["width"],
                                               residual=run["residual"]))
    opt = torch.optim.SGD(model.parameters(), lr=RECIPE.lr, momentum=0.9, weight_decay=1e-4)
    loader = DataLoader(train, batch_size=RECIPE.batch_size, shuffle=True, drop_last=True,
                        seed=run["seed"])
    steps, quarter = run["steps"], run["steps"] // 4
    factors = lr_factors(steps, RECIPE.warmup_steps, run["schedule"] == "decay")
    wrong, seen, curve, step, start = 0, 0, [], 0, time.perf_counter()
    while step < steps:
        for images, labels in loader:
            if step == steps:
                break
            for group in opt.param_groups:
                group["lr"] = RECIPE.lr * factors[step]
            x, y = torch.from_numpy(images.numpy()), torch.from_numpy(labels.numpy())
            out = model(x)
            loss = torch.nn.functional.cross_entropy(out, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            wrong += int((out.argmax(1) != y).sum())
            seen += len(y)
            step += 1
            if step % quarter == 0:            # the training error of each quarter
                curve.append(100.0 * wrong / seen)
                wrong = seen = 0
    model.eval()
    with torch.no_grad():
        predicted = model(torch.from_numpy(test.images)).argmax(1).numpy()
    return {**run, "train_error": curve[-1], "train_error_by_quarter": curve,
            "test_error": float(100.0 * (predicted != test.labels).mean()),
            "seconds": round(time.perf_counter() - start, 1)}


def _run_all(todo: list, jobs: int):
    """Yield each finished run: in this process with one job, else ``jobs`` processes."""
    if jobs <= 1:
        yield from map(train_one, todo)
        return
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for future in as_completed([pool.submit(train_one, r) for r in todo]):
            yield future.result()


def _key(run: dict) -> tuple:
    return tuple(run[k] for k in ("width", "steps", "depth", "residual", "seed"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", required=True, help="the results file (continued if it exists)")
    p.add_argument("--widths", type=int, nargs="+", default=[4, 8, 16])
    p.add_argument("--steps", type=int, nargs="+", default=[800, 2400])
    p.add_argument("--depths", type=int, nargs="+", default=[20, 56])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--plain", action="store_true", help="also the plain twins")
    p.add_argument("--schedule", choices=("decay", "constant"), default="decay")
    p.add_argument("--image-size", type=int, default=RECIPE.image_size)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="runs at a time, one BLAS thread each")
    args = p.parse_args(argv)
    if torch_or_none() is None:
        p.error("the sweep runs on PyTorch's twins: pip install torch==2.13.0")
    settings = {"schedule": args.schedule, "image_size": args.image_size,
                "batch_size": RECIPE.batch_size, "lr": RECIPE.lr,
                "warmup_steps": RECIPE.warmup_steps, "num_train": RECIPE.num_train,
                "num_test": RECIPE.num_test, "shortcut": "A", "framework": "torch twin"}
    results = {"settings": settings, "machine": machine(), "runs": []}
    if os.path.exists(args.json):
        with open(args.json) as f:
            previous = json.load(f)
        if previous.get("settings") != settings:
            p.error(f"{args.json} holds a sweep with other settings ({previous.get('settings')});"
                    f" give another --json")
        results["runs"] = previous["runs"]
    done = {_key(r) for r in results["runs"]}
    kinds = (False, True) if args.plain else (True,)
    todo = [{"width": w, "steps": s, "depth": d, "residual": r, "seed": seed,
             "image_size": args.image_size, "schedule": args.schedule, "threads": 1}
            for w, s, seed, d, r in itertools.product(args.widths, args.steps, args.seeds,
                                                      args.depths, kinds)]
    todo = [r for r in todo if _key(r) not in done]
    todo.sort(key=lambda r: -r["steps"] * r["depth"] * r["width"])   # longest first
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    print(f"{len(todo)} runs to go ({len(done)} already in {args.json})", flush=True)
    for run in _run_all(todo, args.jobs):
        run.pop("threads")
        results["runs"].append(run)
        results["runs"].sort(key=_key)
        write_json(results, args.json)
        name = f"{'resnet' if run['residual'] else 'plain'}{run['depth']}"
        print(f"width {run['width']:>2}, {run['steps']:>5} steps, seed {run['seed']}, "
              f"{name:>8}: training error {run['train_error']:5.1f}%, test "
              f"{run['test_error']:5.1f}% ({run['seconds']:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
