"""Write the measured numbers that the README and the docs quote, from the committed result files.

    python tools/results_pages.py            # rewrite the generated blocks (and the figures)
    python tools/results_pages.py --check    # exit 1 if a page disagrees with the result files

A page holds a generated block between two comments::

    <!-- begin generated: NAME (tools/results_pages.py) -->
    ...
    <!-- end generated: NAME -->

and nothing in between is typed by hand. ``tests/test_docs_results.py`` runs the check, so a page
that stops agreeing with ``benchmarks/results/`` fails the tests.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
DEGRADATION = os.path.join(RESULTS, "degradation_quick")
DEGRADATION_LONG = os.path.join(RESULTS, "degradation_long")
RESPONSES = os.path.join(RESULTS, "responses_trained")
GRADFLOW = os.path.join(RESULTS, "gradflow_init")
DEPTH_SWEEP = os.path.join(RESULTS, "depth_sweep")
BLOCK = re.compile(r"(<!-- begin generated: (?P<name>[\w-]+) \(tools/results_pages\.py\) -->\n)"
                   r"(?P<body>.*?)(<!-- end generated: (?P=name) -->)", re.DOTALL)
PAGES = ["README.md", "docs/paper-results.md", "docs/cli.md", "docs/benchmarks.md",
         "docs/kernels/conv2d.md", "docs/kernels/batch-norm.md", "docs/kernels/pooling.md",
         "docs/kernels/cross-entropy.md", "docs/scaling-out.md",
         "docs/getting-started.md"]


def _load(path):
    with open(path) as f:
        return json.load(f)


def degradation_runs() -> list[dict]:
    """The committed quick-run results, one per seed, in seed order."""
    paths = sorted(glob.glob(os.path.join(DEGRADATION, "results_seed*.json")))
    return [_load(p) for p in paths]


def long_runs() -> list[dict]:
    """The committed runs of ``minires degradation --long``, one per seed, in seed order."""
    paths = sorted(glob.glob(os.path.join(DEGRADATION_LONG, "results_seed*.json")))
    return [_load(p) for p in paths]


def degradation_summary(results: list[dict]) -> dict:
    """model -> {"train": [per seed], "test": [per seed], "mean_train": float}."""
    out = {}
    for res in results:
        for r in res["runs"]:
            entry = out.setdefault(r["model"], {"train": [], "test": []})
            entry["train"].append(r["train_error"][-1])
            entry["test"].append(r["test_error"][-1])
    for entry in out.values():
        entry["mean_train"] = sum(entry["train"]) / len(entry["train"])
    return out


def _range(values) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:.0f}-{hi:.0f}%" if round(lo) != round(hi) else f"{lo:.0f}%"


def block_degradation_table(results) -> str:
    s = degradation_summary(results)
    seeds = [r["settings"]["seed"] for r in results]
    lines = ["| model | " + " | ".join(f"seed {k} (train / test)" for k in seeds) +
             " | mean train error |", "| --- " * (len(seeds) + 2) + "|"]
    for model in ("plain20", "plain56", "resnet20", "resnet56"):
        e = s[model]
        cells = " | ".join(f"{a:.1f} / {b:.1f}" for a, b in zip(e["train"], e["test"]))
        lines.append(f"| {model} | {cells} | {e['mean_train']:.1f} |")
    return "\n".join(lines) + "\n"


def long_run_facts(runs: list[dict]) -> dict:
    """What the committed ``--long`` runs say, computed once for the page, the notebook and the
    tests: per-seed gaps, their mean, the seeds' spread and the minutes per seed."""
    s = degradation_summary(runs)
    r20, r56, p20, p56 = (s[m] for m in ("resnet20", "resnet56", "plain20", "plain56"))
    gaps = [b - a for a, b in zip(r20["train"], r56["train"])]
    # the seed-to-seed spread of one net's final training error (the larger of the two ResNets):
    # what a different seed alone moves a result by
    spread = max(max(r20["train"]) - min(r20["train"]), max(r56["train"]) - min(r56["train"]))
    return {"seeds": [r["settings"]["seed"] for r in runs], "gaps": gaps,
            "mean_gap": sum(gaps) / len(gaps), "spread": spread,
            "gap_spread": max(gaps) - min(gaps),
            "deeper_ahead": sum(g < 0 for g in gaps),
            "degradation": [b - a for a, b in zip(p20["train"], p56["train"])],
            "minutes": [sum(r["seconds"] for r in run["runs"]) / 60 for run in runs],
            "steps": runs[0]["settings"]["steps"], "summary": s}


def block_degradation_long(results=None) -> str:
    runs = long_runs()
    if not runs:
        return "(no committed runs: `minires degradation --long --seed K`)\n"
    table = block_degradation_table(runs)
    f = long_run_facts(runs)
    st = runs[0]["settings"]
    s = f["summary"]
    n = len(runs)
    degrades = ("the deep plain net degrades in every seed" if min(f["degradation"]) > 0 else
                "the deep plain net does not degrade in every seed")
    ahead = ("ResNet-56 ends below ResNet-20 in every seed" if f["deeper_ahead"] == n else
             f"ResNet-56 ends below ResNet-20 in {f['deeper_ahead']} of the {n} seeds")
    noise = max(f["spread"], f["gap_spread"])
    if n < 2:
        reading = "One seed says nothing of the seed-to-seed spread: a second one is needed."
    elif abs(f["mean_gap"]) < noise:
        reading = (f"From seed to seed the gap moves by {f['gap_spread']:.1f} points and each "
                   f"ResNet's own error by up to {f['spread']:.1f}: a mean gap of "
                   f"{f['mean_gap']:+.1f} points is within that spread, so on {n} seeds its "
                   f"sign is a hint, not a settled result.")
    else:
        reading = (f"From seed to seed the gap moves by {f['gap_spread']:.1f} points and each "
                   f"ResNet's own error by up to {f['spread']:.1f}: the mean gap of "
                   f"{f['mean_gap']:+.1f} points is larger than that spread.")
    twins = next((c for c in depth_sweep_cells(depth_sweep() or {"runs": []})
                  if c["width"] == st["width"] and c["steps"] == st["steps"]), None) \
        if depth_sweep() else None
    if twins:
        reading += (f" The PyTorch twins of the sweep, in the same setting: "
                    f"{', '.join(f'{g:+.1f}' for g in twins['gap'])} (seeds "
                    f"{', '.join(map(str, twins['seeds']))}).")
    minutes = (f"{min(f['minutes']):.0f}" if round(min(f["minutes"])) == round(max(f["minutes"]))
               else f"{min(f['minutes']):.0f}-{max(f['minutes']):.0f}")
    text = (f"(`minires degradation --long --seed K`, {n} seed{'s' if n > 1 else ''}, "
            f"`benchmarks/results/degradation_long/`: embedded set at {st['image_size']}x"
            f"{st['image_size']}, base width {st['width']}, batch {st['batch_size']}, "
            f"{st['steps']:,} steps ({st['steps'] * st['batch_size'] / st['num_train']:.0f} "
            f"epochs), learning rate {st['lr']} after a {st['warmup_steps']}-step warm-up, "
            f"divided by 10 at 50% and 75% of the steps. Final training / test error in percent; "
            f"the training error is the error on the mini-batches of the last quarter of the "
            f"steps. Each seed's four nets took {minutes} minutes in one process with one BLAS "
            f"thread, on a 2-core machine shared with other work.) "
            f"Plain-56 minus plain-20, seed by seed: "
            f"{', '.join(f'{x:+.1f}' for x in f['degradation'])} points: {degrades}. "
            f"ResNet-56 minus ResNet-20: "
            f"{', '.join(f'{x:+.1f}' for x in f['gaps'])} points (means "
            f"{s['resnet56']['mean_train']:.1f}% and {s['resnet20']['mean_train']:.1f}%). "
            f"{ahead}. {reading}")
    return table + "\n" + _wrap(text)


def _wrap(text: str) -> str:
    return textwrap.fill(text.strip(), width=99, break_on_hyphens=False) + "\n"


def block_degradation_facts(results) -> str:
    s = degradation_summary(results)
    p20, p56, r20, r56 = (s[m] for m in ("plain20", "plain56", "resnet20", "resnet56"))
    degr = [b - a for a, b in zip(p20["train"], p56["train"])]
    rescue = [a - b for a, b in zip(p56["train"], r56["train"])]
    lag = [b - a for a, b in zip(r20["train"], r56["train"])]
    n = len(results)
    return _wrap(f"In every one of the {n} seeds, plain-56 ends near chance ({_range(p56['train'])} "
            f"training error; chance is 90%) while plain-20 trains ({_range(p20['train'])}): "
            f"the degradation problem, in the training error, {min(degr):.0f} to {max(degr):.0f} "
            f"points of it. ResNet-56, the same layers with identity shortcuts, ends "
            f"{min(rescue):.0f} to {max(rescue):.0f} points below plain-56. ResNet-56 minus "
            f"ResNet-20, seed by seed: {', '.join(f'{x:+.1f}' for x in lag)} points (means "
            f"{r56['mean_train']:.1f}% and {r20['mean_train']:.1f}%): "
            + ("in this quick run the deeper ResNet does **not** train better than the "
               "shallower one." if r56["mean_train"] >= r20["mean_train"] else
               "in this quick run the deeper ResNet trains better than the shallower one, on "
               "average."))


def block_readme_quick(results) -> str:
    s = degradation_summary(results)
    p20, p56, r20, r56 = (s[m] for m in ("plain20", "plain56", "resnet20", "resnet56"))
    lag = [b - a for a, b in zip(r20["train"], r56["train"])]
    verdict = ("ResNet-56 does **not** beat ResNet-20 here" if r56["mean_train"] >= r20["mean_train"]
               else "ResNet-56 beats ResNet-20 on average")
    minutes = [sum(r["seconds"] for r in res["runs"]) / 60 for res in results]
    return _wrap(f"In the committed quick runs ({len(results)} seeds, `benchmarks/results/"
            f"degradation_quick/`; training the four nets took {min(minutes):.0f}-"
            f"{max(minutes):.0f} minutes per seed), plain-56 stays near chance ({_range(p56['train'])} training "
            f"error) while plain-20 reaches {_range(p20['train'])}, and ResNet-56 trains where "
            f"plain-56 cannot ({_range(r56['train'])}). {verdict}: ResNet-56 minus ResNet-20 is "
            f"{', '.join(f'{x:+.1f}' for x in lag)} points. In the paper's long CIFAR-10 runs "
            f"(64,000 iterations, about 180 epochs, against our 800 steps, about 5) the deeper "
            f"ResNet does train better; see `docs/paper-results.md` for why the short run "
            f"differs." + _readme_sweep_sentence())


def block_quick_run_facts(results) -> str:
    """What getting-started promises about the default run, from the committed runs."""
    s = degradation_summary(results)
    minutes = [sum(r["seconds"] for r in res["runs"]) / 60 for res in results]
    p20, p56, r20, r56 = (s[m] for m in ("plain20", "plain56", "resnet20", "resnet56"))
    lag = [b - a for a, b in zip(r20["train"], r56["train"])]
    verdict = ("does not train better on average" if r56["mean_train"] >= r20["mean_train"]
               else "trains better on average")
    return _wrap(
        f"In the committed runs of this command ({len(results)} seeds, "
        f"`benchmarks/results/degradation_quick/`), training the four networks took "
        f"{min(minutes):.0f}-{max(minutes):.0f} minutes per seed on a 2-core CPU. Plain-56 ended at "
        f"{_range(p56['train'])} training error against plain-20's {_range(p20['train'])}: the "
        f"degradation. ResNet-56 ended at {_range(r56['train'])}, far below its plain twin; "
        f"against ResNet-20 ({_range(r20['train'])}) it {verdict} in a run this short "
        f"(ResNet-56 minus ResNet-20: {', '.join(f'{x:+.1f}' for x in lag)} points). The "
        f"paper's long runs show the deeper ResNet training better; {{doc}}`paper-results` "
        f"says why a short run need not, and what a longer one shows.")


def _readme_sweep_sentence() -> str:
    data = depth_sweep()
    if data is None:
        return ""
    cells = depth_sweep_cells(data)
    wins = [c for c in cells if c["mean_gap"] < 0]
    steps = sorted({c["steps"] for c in cells})
    widths = sorted({c["width"] for c in cells})
    found = (f"ResNet-56 ends below ResNet-20 in {len(wins)} of its {len(cells)} settings"
             if wins else "in none of its settings does ResNet-56 end below ResNet-20")
    most = max(cells, key=lambda c: (len(c["seeds"]), c["steps"]))
    if wins and len(most["seeds"]) > 1 and \
            max(-c["mean_gap"] for c in wins) < max(most["gap"]) - min(most["gap"]):
        found += ", by less than the gap moves from seed to seed"
    return (f" A sweep over base widths {', '.join(map(str, widths))} and "
            f"{' and '.join(f'{s:,}' for s in steps)} steps with the paper's step schedule "
            f"(`benchmarks/depth_sweep.py`, on PyTorch twins; `benchmarks/results/depth_sweep/`): "
            f"{found}." + _readme_long_sentence())


def _readme_long_sentence() -> str:
    runs = long_runs()
    if len(runs) < 2:
        return ""
    f = long_run_facts(runs)
    n = len(runs)
    ahead = (f"ends below ResNet-20 in all {n} seeds" if f["deeper_ahead"] == n else
             f"ends below ResNet-20 in {f['deeper_ahead']} of {n} seeds")
    within = (", within the seeds' spread" if abs(f["mean_gap"]) <
              max(f["spread"], f["gap_spread"]) else "")
    return (f" Its longest width-8 setting is the preset `minires degradation --long`: in "
            f"minires's own committed runs of it (`benchmarks/results/degradation_long/`), "
            f"ResNet-56 {ahead} (ResNet-56 minus ResNet-20: "
            f"{', '.join(f'{g:+.1f}' for g in f['gaps'])} points{within}).")


def block_cli_results_json(results) -> str:
    """The start of a committed results.json, as docs/cli.md shows it."""
    res = results[0]
    run = dict(res["runs"][0])
    shown = {"settings": res["settings"], "runs": [run]}
    text = json.dumps(shown, indent=1)
    for key in ("train_error", "test_error", "train_loss"):       # keep the example short
        text = re.sub(rf'("{key}": \[)[^\]]*(\])',
                      lambda m: m.group(1) + ", ".join(f"{v:.4g}" for v in run[key]) + m.group(2),
                      text, flags=re.DOTALL)
    text = re.sub(r'("steps": \[)[^\]]*(\])',
                  lambda m: m.group(1) + ", ".join(str(v) for v in run["steps"]) + m.group(2),
                  text, flags=re.DOTALL)
    text = re.sub(r'("depths": \[)[^\]]*(\])',
                  lambda m: m.group(1) + ", ".join(str(v) for v in res["settings"]["depths"])
                  + m.group(2), text, flags=re.DOTALL)
    text = text.rstrip("\n").rstrip("}").rstrip().rstrip("]").rstrip()
    return ("```javascript\n" + text + ",\n  ... (resnet20, plain56, resnet56)\n ]\n}\n```\n")


PAPER_RESPONSES = ("He et al. (2015), Section 4.2: \"Fig. 7 shows that ResNets have generally "
                   "smaller responses than their plain counterparts. [...] We also notice that the "
                   "deeper ResNet has smaller magnitudes of responses, as evidenced by the "
                   "comparisons among ResNet-20, 56, and 110 in Fig. 7.\"")


def _bullet(text: str) -> str:
    return textwrap.fill(text.strip(), width=99, initial_indent="- ", subsequent_indent="  ",
                         break_on_hyphens=False) + "\n"


def block_responses(results=None) -> str:
    data = _load(os.path.join(RESPONSES, "responses.json"))
    comp = data["comparison"]
    lines = ["| model | layers | mean std | median std | max std |", "| --- | --- | --- | --- | --- |"]
    for name, s in comp["summary"].items():
        lines.append(f"| {name} | {s['layers']} | {s['mean']:.3f} | {s['median']:.3f} | "
                     f"{s['max']:.3f} |")
    text = "\n".join(lines) + "\n\n"
    run = data["settings"]["degradation_run"]
    text += _wrap(f"(Trained by the quick degradation run, seed {run['seed']}: {run['image_size']}x"
             f"{run['image_size']} images, width {run['width']}, {run['steps']} steps; measured in "
             f"eval mode on its {data['settings']['images']} held-out test images.)") + "\n"
    text += _wrap(PAPER_RESPONSES + " On our data:") + "\n"
    final_train = {}                                 # the same run's final training error
    for res in results or []:
        if res["settings"]["seed"] == run["seed"]:
            final_train = {r["model"]: r["train_error"][-1] for r in res["runs"]}
    for depth, t in comp["twins"].items():
        mean_below = t["resnet_mean"] < t["plain_mean"]
        median_below = t["resnet_median"] < t["plain_median"]
        if t["resnet_smaller"]:
            verdict = "the first claim holds here"
        elif mean_below or median_below:
            verdict = (f"mixed (the {'mean' if mean_below else 'median'} is smaller, the "
                       f"{'median' if mean_below else 'mean'} is not), so the first claim does "
                       f"**not** hold here")
        else:
            verdict = "the first claim does **not** hold here"
        note = ""
        plain_err = final_train.get(f"plain{depth}")
        if plain_err is not None and plain_err >= 80:
            note = (f" Plain-{depth} hardly trained in this run ({plain_err:.1f}% final training "
                    f"error; chance is 90%), so it is a weak twin to compare against.")
        text += _bullet(f"Depth {depth}: the ResNet's response std is below the plain net's in "
                        f"{t['layers_resnet_smaller']} of {t['layers']} layers (mean "
                        f"{t['resnet_mean']:.3f} vs {t['plain_mean']:.3f}, median "
                        f"{t['resnet_median']:.3f} vs {t['plain_median']:.3f}): {verdict}.{note}")
    missing = [f"{kind}{d}" for d in run["depths"] for kind in ("plain", "resnet")
               if f"{kind}{d}" not in data["models"]]
    if missing:
        text += _bullet("Not measured: " + ", ".join(missing) + " (their weights were not among "
                        "the run's saved models when this was committed)" +
                        (", so the second claim, about the deeper ResNet, is not tested here."
                         if not comp["deeper_resnet"] else "."))
    for pair, c in comp["deeper_resnet"].items():
        holds = "holds" if c["deeper_smaller"] else "does **not** hold"
        deep, shallow = pair.split("_vs_")
        text += _bullet(f"{deep} vs {shallow}: mean std {c['deeper_mean']:.3f} vs "
                        f"{c['shallower_mean']:.3f}, median {c['deeper_median']:.3f} vs "
                        f"{c['shallower_median']:.3f}: the second claim {holds} here.")
    return text


def _bench(name: str) -> dict | None:
    path = os.path.join(RESULTS, name)
    return _load(path) if os.path.exists(path) else None


def _x(v) -> str:
    return "-" if v is None else f"{v:.2f}x"


def _step_label(row) -> str:
    return (f"{row['model']}, batch {row['batch']}, "
            f"{row['image_size']}x{row['image_size']}")


def _step_cells(r, eval_ratio: bool) -> list[str]:
    """One bench_step row's cells: case, both step times, ratio, (eval ratio,) both peaks, ratio."""
    mem_mr, mem_t = r.get("minires_memory"), r.get("torch_memory")
    return ([_step_label(r), f"{r['minires_s']:.3f} s",
             f"{r['torch_s']:.3f} s" if r.get("torch_s") else "-", _x(r.get("ratio"))]
            + ([_x(r.get("eval_ratio"))] if eval_ratio else [])
            + [f"{mem_mr['peak_rss_mib']:.0f} MiB" if mem_mr else "-",
               f"{mem_t['peak_rss_mib']:.0f} MiB" if mem_t else "-", _x(r.get("peak_rss_ratio"))])


def block_benchmarks_step(results=None) -> str:
    """The training-step table of docs/benchmarks.md, from bench_step_cpu.json."""
    data = _bench("bench_step_cpu.json")
    lines = ["| case (float32) | step, minires | step, PyTorch | ratio | eval forward ratio | "
             "peak RSS, minires | peak RSS, PyTorch | ratio |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in data["rows"]:
        lines.append("| " + " | ".join(_step_cells(r, eval_ratio=True)) + " |")
    m = data["machine"]
    lines.append("")
    imports = [r["torch_memory"]["rss_before_mib"] for r in data["rows"] if r.get("torch_memory")]
    torch_import = (f"; PyTorch's includes its import ({min(imports):.0f}-{max(imports):.0f} MiB "
                    f"before the first step)") if imports else ""
    lines.append(_wrap(f"(`benchmarks/results/bench_step_cpu.json`: {m['cpus']} CPU cores, "
                       f"NumPy {m.get('numpy')}, PyTorch {m.get('torch')} with "
                       f"{m.get('torch_threads')} threads. Peak RSS is each framework's whole "
                       f"process, measured in a process of its own{torch_import}."
                       f"{_load_note(data)})").rstrip("\n"))
    return "\n".join(lines) + "\n"


def _load_note(data) -> str:
    """How loaded the machine was while a benchmark ran (its JSON's ``run``), if it says."""
    run = data.get("run") or {}
    before, after = run.get("load_average_before"), run.get("load_average_after")
    if not before or not after:
        return ""
    cpus = data["machine"]["cpus"]
    busy = max(before[0], after[0]) > cpus
    return (f" The machine's load average (1 minute) was {before[0]:.1f} when the run started and "
            f"{after[0]:.1f} when it ended, on {cpus} cores" +
            (": other work shared them, which slows PyTorch's threads most, so the time ratios "
             "are not conclusive." if busy else
             " (the benchmark's own threads count in it): a quiet machine."))


STEP_TIME_TARGET, PEAK_MEMORY_TARGET = 2.0, 1.0     # issue 24: minires / PyTorch, plain loop


def block_benchmarks_step_plain(results=None) -> str:
    """The plain-loop training-step table of docs/benchmarks.md (bench_step_plain_cpu.json), with
    each case's verdict against the targets."""
    data = _bench("bench_step_plain_cpu.json")
    if data is None:
        return "(no committed plain-loop run: run `benchmarks/bench_step.py --plain-loop`)\n"
    lines = ["| case (float32), a user's loop, no tuning call | step, minires | step, PyTorch | "
             "ratio | peak RSS, minires | peak RSS, PyTorch | ratio | targets "
             f"(<= {STEP_TIME_TARGET:.1f}x, <= {PEAK_MEMORY_TARGET:.1f}x) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    # a time ratio measured while more work ran than the machine has cores says little
    load = (data.get("run") or {}).get("load_average_before")
    loaded = load is not None and load[0] > data["machine"]["cpus"]
    for r in data["rows"]:
        time_ok = r.get("ratio") is not None and r["ratio"] <= STEP_TIME_TARGET
        memory_ok = r.get("peak_rss_ratio") is not None and \
            r["peak_rss_ratio"] <= PEAK_MEMORY_TARGET
        verdict = ("time met" if time_ok else "time not met") + \
            (" (on a loaded machine: not conclusive)" if loaded else "") + ", " + \
            ("memory met" if memory_ok else "memory not met")
        lines.append("| " + " | ".join(_step_cells(r, eval_ratio=False) + [verdict]) + " |")
    lines.append("")
    lines.append(_wrap(f"(`benchmarks/results/bench_step_plain_cpu.json`, `bench_step.py "
                       f"--plain-loop`: no `tune_host_allocator()` in either framework's "
                       f"process.{_load_note(data)})").rstrip("\n"))
    return "\n".join(lines) + "\n"


def block_benchmarks_kernels(results=None) -> str:
    data = _bench("bench_kernels_cpu.json")
    lines = ["| kernel, forward + backward, batch 128 | minires | PyTorch | ratio |",
             "| --- | --- | --- | --- |"]
    for r in data["rows"]:
        lines.append(f"| {r['kernel']} | {r['minires_ms']:.1f} ms | "
                     + (f"{r['torch_ms']:.1f} ms" if r.get("torch_ms") else "-")
                     + f" | {_x(r.get('ratio'))} |")
    return "\n".join(lines) + "\n"


CONV_FLOOR_LABELS = {
    "minires forward": "minires forward (`conv2d_forward`)",
    "minires backward": "minires backward (`conv2d_backward`)",
    "im2col (one patch matrix)": "im2col, one patch matrix (131,072 x 144)",
    "write of as many bytes": "writing as many bytes (75 MB)",
    "3 GEMMs, rows x K (minires)": "the 3 GEMMs, patches as rows (minires's orientation)",
    "3 GEMMs, K x rows": "the 3 GEMMs, patches as columns",
    "Winograd input transform": "Winograd F(2x2, 3x3): input transform",
    "Winograd 16 GEMMs": "Winograd: the 16 small GEMMs",
    "Winograd output transform": "Winograd: output transform",
    "im2col floor (best GEMMs + 2 writes)": "im2col floor: the faster GEMMs + two patch matrices",
    "torch forward + backward": "PyTorch forward + backward",
}
# one 3x3 product at the floor's shape: 2 * (128 * 32 * 32 rows) * 16 outputs * 144 deep
CONV_FLOOR_GFLOP = 2 * 128 * 32 * 32 * 16 * 144 / 1e9


def block_benchmarks_conv_floor(results=None) -> str:
    data = _bench("bench_conv_floor_cpu.json")
    if data is None:
        return "(no committed conv floor: run `benchmarks/bench_conv_floor.py`)\n"
    ms = {r["piece"]: r["ms"] for r in data["rows"]}
    lines = ["| piece (batch 128, 16 -> 16 channels, 32x32, float32) | ms |", "| --- | --- |"]
    lines += [f"| {CONV_FLOOR_LABELS.get(piece, piece)} | {t:.1f} |" for piece, t in ms.items()]
    torch_ms = ms["torch forward + backward"]
    gemms = (ms["3 GEMMs, rows x K (minires)"], ms["3 GEMMs, K x rows"])
    gflops = [3 * CONV_FLOOR_GFLOP / (t / 1000) for t in gemms]
    minires_ms = ms["minires forward"] + ms["minires backward"]
    floor = ms["im2col floor (best GEMMs + 2 writes)"]
    text = (f"(`benchmarks/results/bench_conv_floor_cpu.json`, {data['machine']['cpus']} CPU "
            f"cores, PyTorch {data['machine'].get('torch')}.) An im2col convolution does three "
            f"matrix products of {CONV_FLOOR_GFLOP:.2f} GFLOP each (Y, dW and dX), and built the "
            f"textbook way it writes a patch matrix nine times the size of its input twice (once "
            f"for x, once for dY). At this shape the products are thin (16 output channels "
            f"against 131,072 rows, 144 deep), and OpenBLAS runs them on whole patch matrices at "
            f"{min(gflops):.0f}-{max(gflops):.0f} GFLOPS in this run (minires's orientation, then "
            f"the other): the three products alone take {gemms[0] / torch_ms:.2f} times "
            f"PyTorch's *whole* forward and backward, and with the two patch matrices the floor "
            f"of a whole-matrix im2col convolution is {floor / torch_ms:.2f} times PyTorch. "
            f"minires's kernel, which works a block of images at a time on every core and never "
            f"writes a patch matrix to memory, takes {minires_ms / torch_ms:.2f} times PyTorch, "
            + (f"below that floor." if minires_ms < floor else f"no better than that floor.")
            + " PyTorch convolves with oneDNN's direct kernels and builds no patch matrix.")
    winograd = sum(ms[k] for k in ("Winograd input transform", "Winograd 16 GEMMs",
                                   "Winograd output transform"))
    text += (f" Winograd's three pieces together (one thread each, whole arrays) take "
             f"{winograd:.1f} ms, "
             + (f"no less than minires's whole forward and backward ({minires_ms:.1f} ms)."
                if winograd >= minires_ms else
                f"less than minires's forward and backward ({minires_ms:.1f} ms)."))
    return "\n".join(lines) + "\n\n" + _wrap(text)


def block_benchmarks_goal_2x(results=None) -> str:
    kernels, step = _bench("bench_kernels_cpu.json"), _bench("bench_step_cpu.json")
    if kernels is None or step is None:
        return "(no committed benchmarks: run `benchmarks/bench_kernels.py` and `bench_step.py`)\n"
    convs = [r for r in kernels["rows"] if r["kernel"].startswith("conv2d") and r.get("ratio")]
    first, others = convs[0], convs[1:]
    within = [r for r in others if r["ratio"] <= 2]
    steps_in = [r for r in step["rows"] if r["ratio"] <= 2]
    steps_out = [r for r in step["rows"] if r["ratio"] > 2]

    def shapes(rows):
        return ", ".join(f"{r['kernel'].split()[-1]} ({_ratio_near(r['ratio'], 2)}x)" for r in rows)

    def models(rows):
        return ", ".join(f"{r['model']} ({_x(r['ratio'])})" for r in rows) or "none"
    floor = _bench("bench_conv_floor_cpu.json")
    apart = ""
    if floor is not None:
        ms = {r["piece"]: r["ms"] for r in floor["rows"]}
        if "torch forward + backward" in ms:
            ratio = (ms["minires forward"] + ms["minires backward"]) / ms["torch forward + backward"]
            apart = (f" Taken apart above (the kernels alone, in another run, where neither side "
                     f"goes through `.sum().backward()`), the same convolution is {_x(ratio)}.")
    shape = first["kernel"].split()[-1]
    if first["ratio"] <= 2:
        text = (f"So the goal of 2x is met at the first shape ({shape}): {_x(first['ratio'])} in "
                f"the kernel benchmark.{apart} ")
    else:
        text = (f"So the first shape ({shape}) still misses 2x in the kernel benchmark: "
                f"{_x(first['ratio'])}.{apart} PyTorch's direct kernels build no patches at all, "
                f"while minires's still copies nine times its input, if only a block at a time; "
                f"closing that needs compiled code (a direct or Winograd kernel in C, or a JIT), "
                f"which minires's dependency rules leave out. ")
    if len(within) == len(others):
        text += f"The other CIFAR shapes meet it: {shapes(others)}. "
    else:
        text += (f"Of the other CIFAR shapes, {shapes(within) or 'none'} meet it and "
                 f"{shapes([r for r in others if r['ratio'] > 2])} do not. ")
    text += (f"The training step as a whole (the table above) is within 2x of PyTorch for "
             f"{models(steps_in)}, and not for {models(steps_out)}." if steps_out else
             f"The training step as a whole (the table above) is within 2x of PyTorch for every "
             f"case: {models(steps_in)}.")
    return _wrap(text)


def block_benchmarks_profile(results=None) -> str:
    data = _bench("profile_step_cpu.json")
    if data is None:
        return "(no committed profile: run `benchmarks/profile_step.py`)\n"
    lines = []
    for case in data["rows"]:
        lines += [f"| {case['model']}, batch {case['batch']}, {case['image_size']}x"
                  f"{case['image_size']}: {case['step_ms']:.0f} ms per step | forward | backward "
                  f"| total | share |", "| --- | --- | --- | --- | --- |"]
        for r in case["ops"]:
            if r["share"] < 0.005 and not r["op"].startswith("("):
                continue                      # the ops below half a percent: one line below
            cells = ["" if r[k] is None else f"{r[k]:.1f} ms"
                     for k in ("forward_ms", "backward_ms", "total_ms")]
            lines.append(f"| {r['op']} | " + " | ".join(cells) + f" | {100 * r['share']:.1f}% |")
        small = [r for r in case["ops"] if r["share"] < 0.005 and not r["op"].startswith("(")]
        if small:
            lines.append(f"| the other {len(small)} ops together | | | "
                         f"{sum(r['total_ms'] for r in small):.1f} ms | "
                         f"{100 * sum(r['share'] for r in small):.1f}% |")
        lines.append("")
    case = data["rows"][0]
    share = {r["op"]: 100 * r["share"] for r in case["ops"]}
    framework = next(v for k, v in share.items() if k.startswith("("))
    lines.append(_wrap(
        f"In the {case['model']} step, the convolutions take {share.get('Conv2d', 0):.0f}% of "
        f"the time, batch norm {share.get('BatchNorm', 0):.0f}%, ReLU {share.get('ReLU', 0):.0f}% "
        f"and the framework around the ops (graph, modules, Python) {framework:.0f}%. A lever "
        f"that speeds up one op can gain at most that op's share."))
    return "\n".join(lines)


def _ms(v) -> str:
    if v is None:
        return "-"
    return f"{v:.1f} ms" if v >= 1 else f"{1000 * v:.0f} µs"


def _percent(share: float) -> str:
    return f"{100 * share:.1f}%" if share >= 0.0005 else "under 0.1%"


def kernel_table(prefix: str, op: str) -> str:
    """What a fast kernel bought: the plain path (kernels/reference.py) against the fast kernel
    (bench_reference_cpu.json), the fast kernel against PyTorch (bench_kernels_cpu.json), and the
    op's share of a training step (profile_step_cpu.json); rows whose kernel starts with
    ``prefix``, the share of graph node ``op``."""
    plain = _bench("bench_reference_cpu.json")
    versus = {r["kernel"]: r for r in (_bench("bench_kernels_cpu.json") or {"rows": []})["rows"]}
    lines = []
    rows = [r for r in plain["rows"] if r["kernel"].startswith(prefix)] if plain else []
    if rows:
        lines += [f"| {prefix}, forward + backward, batch {rows[0]['batch']} | reference | fast "
                  f"kernel | speed-up | another run: PyTorch (minires, ratio) |",
                  "| --- | --- | --- | --- | --- |"]
        for r in rows:
            other = versus.get(r["kernel"])
            vs = (f"{_ms(other['torch_ms'])} ({_ms(other['minires_ms'])}, {_x(other['ratio'])})"
                  if other and other.get("torch_ms") else "-")
            lines.append(f"| {r['kernel'][len(prefix):].strip() or prefix} | "
                         f"{_ms(r['reference_ms'])} | {_ms(r['fast_ms'])} | "
                         f"{r['speedup']:.1f}x | {vs} |")
        m = plain["machine"]
        loads = [r["load_1min"] for r in plain["rows"] if r.get("load_1min") is not None]
        threads = {r.get("blas_threads") for r in plain["rows"]} - {None}
        busy = (f", OpenBLAS and minires's kernels on {' or '.join(sorted(threads))} thread(s)"
                if threads else "")
        if loads:
            kind = "a shared machine" if max(loads) > m["cpus"] else "a quiet machine"
            busy += (f", {kind} with a load average of {min(loads):.1f}-{max(loads):.1f} during "
                     f"the run: a ratio near 1 is within its noise")
        lines += ["", _wrap(f"(The reference and the fast kernel: "
                            f"`benchmarks/results/bench_reference_cpu.json`, medians of one run "
                            f"on {m['cpus']} CPU cores{busy}; NumPy {m.get('numpy')}, float32. "
                            f"PyTorch and minires through its ops: `bench_kernels_cpu.json`, "
                            f"another run, on all cores.)").rstrip("\n")]
    profile = _bench("profile_step_cpu.json")
    if profile:
        case = profile["rows"][0]
        row = next((r for r in case["ops"] if r["op"] == op), None)
        if row is not None:
            lines += ["", _wrap(
                f"In a {case['model']} training step (batch {case['batch']}, "
                f"{case['image_size']}x{case['image_size']}, `profile_step_cpu.json`), {op} "
                f"forward and backward take {row['total_ms']:.1f} ms of {case['step_ms']:.0f} "
                f"ms, {_percent(row['share'])} of the step.").rstrip("\n")]
    return "\n".join(lines).lstrip("\n") + "\n"


def block_kernel_conv2d(results=None) -> str:
    return kernel_table("conv2d 3x3", "Conv2d")


def block_kernel_batch_norm(results=None) -> str:
    return kernel_table("batch_norm", "BatchNorm")


def block_kernel_pooling(results=None) -> str:
    return kernel_table("max_pool2d 2x2", "AdaptiveAvgPool2d")


def block_kernel_cross_entropy(results=None) -> str:
    return kernel_table("cross_entropy", "CrossEntropy")


def _ratio_near(ratio: float, target: float) -> str:
    """``ratio`` to two decimals, or as many more (up to five) as it takes not to print the
    target itself when it differs from it (a ratio just over a target must not read as on it)."""
    for decimals in range(2, 6):
        text = f"{ratio:.{decimals}f}"
        if ratio == target or float(text) != float(target):
            return text
    return text


def block_scaling_out_benchmark(results=None) -> str:
    """One process with 2 BLAS threads against 2 processes with 1, from
    bench_distributed_cpu.json (docs/scaling-out.md and docs/benchmarks.md)."""
    data = _bench("bench_distributed_cpu.json")
    lines = ["| ResNet-20 training step, global batch "
             f"{data['global_batch']}, {data['image_size']}x{data['image_size']} | step | "
             "images/s | step vs 1 process |",
             "| --- | --- | --- | --- |"]
    names = {"minires": "minires", "torch": "PyTorch (gloo)"}
    for r in data["rows"]:
        one = next(o for o in data["rows"] if o["framework"] == r["framework"] and
                   o["processes"] == 1)
        lines.append(f"| {names[r['framework']]}, {r['processes']} process"
                     f"{'es' if r['processes'] > 1 else ''} x {r['threads']} thread"
                     f"{'s' if r['threads'] > 1 else ''} | {r['step_s'] * 1000:.0f} ms | "
                     f"{r['images_per_s']:.1f} | {r['step_s'] / one['step_s']:.2f}x |")
    m, load = data["machine"], data["load_average_1_5_15_min"]
    ratio = data["two_process_over_one_process"]["minires"]
    verdict = "meets" if data["target_met"] else "misses"
    lines.append("")
    lines.append(_wrap(
        f"(`benchmarks/results/bench_distributed_cpu.json`, `python "
        f"benchmarks/bench_distributed.py`: {m['cpus']} CPU cores, NumPy {m.get('numpy')}, "
        f"PyTorch {m.get('torch')}. minires's 2-process step takes {_ratio_near(ratio, data['target'])}x "
        f"its 1-process step, which {verdict} the target of {data['target']}x. Load average "
        f"{load['before'][0]:.1f} before, {load['after'][0]:.1f} after, on {m['cpus']} cores"
        + (": the machine was shared with other jobs, so these times are noisy.)"
           if max(load["before"][0], load["after"][0]) > m["cpus"] else
           " (the benchmark's own processes count in it).)")).rstrip("\n"))
    return "\n".join(lines) + "\n"


def block_readme_performance(results=None) -> str:
    data = _bench("bench_step_cpu.json")
    parts = []
    for r in data["rows"]:
        text = f"{r['model']} (batch {r['batch']}, {r['image_size']}x{r['image_size']}): step " \
               f"{_x(r.get('ratio'))}"
        if r.get("eval_ratio"):
            text += f", eval forward {_x(r['eval_ratio'])}"
        if r.get("peak_rss_ratio"):
            text += f", peak memory {_x(r['peak_rss_ratio'])}"
        parts.append(text)
    text = (f"Measured against PyTorch {data['machine'].get('torch')} in the same run on "
            f"{data['machine']['cpus']} CPU cores (`benchmarks/results/bench_step_cpu.json`, "
            f"minires / PyTorch, lower is better): " + "; ".join(parts) + ".")
    plain = _bench("bench_step_plain_cpu.json")
    if plain is not None:
        text += (" In a user's own loop with no tuning call (`bench_step.py --plain-loop`, "
                 "`benchmarks/results/bench_step_plain_cpu.json`): " + "; ".join(
                     f"{r['model']} step {_x(r.get('ratio'))}, peak memory "
                     f"{_x(r.get('peak_rss_ratio'))}" for r in plain["rows"]) + ".")
        load = (plain.get("run") or {}).get("load_average_before")
        if load is not None and load[0] > plain["machine"]["cpus"]:
            text += (f" That run shared the machine (load average {load[0]:.1f} on "
                     f"{plain['machine']['cpus']} cores), so its time ratios are not conclusive.")
    return _wrap(text)


def depth_sweep() -> dict | None:
    """The committed sweep of ``benchmarks/depth_sweep.py``, or None before there is one."""
    path = os.path.join(DEPTH_SWEEP, "sweep.json")
    return _load(path) if os.path.exists(path) else None


def depth_sweep_cells(data: dict) -> list[dict]:
    """One cell per (width, steps): the ResNet-20 and -56 training errors by seed, in seed order,
    and ResNet-56 minus ResNet-20 by seed and in the mean."""
    cells = {}
    for r in data["runs"]:
        if not r["residual"]:
            continue
        cell = cells.setdefault((r["width"], r["steps"]), {"width": r["width"],
                                                           "steps": r["steps"], "by_depth": {}})
        cell["by_depth"].setdefault(r["depth"], {})[r["seed"]] = r["train_error"]
    out = []
    for key in sorted(cells):
        cell = cells[key]
        shallow, deep = cell["by_depth"].get(20, {}), cell["by_depth"].get(56, {})
        seeds = sorted(set(shallow) & set(deep))
        if not seeds:
            continue
        cell["seeds"] = seeds
        cell["resnet20"] = [shallow[k] for k in seeds]
        cell["resnet56"] = [deep[k] for k in seeds]
        cell["gap"] = [b - a for a, b in zip(cell["resnet20"], cell["resnet56"])]
        cell["mean_gap"] = sum(cell["gap"]) / len(seeds)
        out.append(cell)
    return out


def depth_sweep_trends(cells: list[dict]) -> list[tuple]:
    """Per base width with two or more step counts: ``(width, (fewest steps, mean gap), (most
    steps, mean gap))``."""
    out = []
    for width in sorted({c["width"] for c in cells}):
        mine = sorted((c for c in cells if c["width"] == width), key=lambda c: c["steps"])
        if len(mine) >= 2:
            out.append((width, (mine[0]["steps"], mine[0]["mean_gap"]),
                        (mine[-1]["steps"], mine[-1]["mean_gap"])))
    return out


def _mean(values) -> float:
    return sum(values) / len(values)


def block_depth_sweep(results) -> str:
    data = depth_sweep()
    if data is None:
        return "(no committed sweep: run `benchmarks/depth_sweep.py`)\n"
    cells = depth_sweep_cells(data)
    st = data["settings"]
    lines = ["| base width | steps | seeds | ResNet-20 | ResNet-56 | ResNet-56 minus ResNet-20, "
             "by seed |", "| --- | --- | --- | --- | --- | --- |"]
    for c in cells:
        lines.append(f"| {c['width']} | {c['steps']:,} | {', '.join(map(str, c['seeds']))} | "
                     f"{_mean(c['resnet20']):.1f} | {_mean(c['resnet56']):.1f} | "
                     + ", ".join(f"{g:+.1f}" for g in c["gap"]) + " |")
    wins = [c for c in cells if c["mean_gap"] < 0]
    every = [c for c in cells if all(g < 0 for g in c["gap"])]
    longest = max(c["steps"] for c in cells)
    schedule = ("divided by 10 at 50% and 75% of the steps (the paper's schedule)"
                if st["schedule"] == "decay" else "constant after the warm-up")
    text = (f"(Final training error in percent, the mean over the seeds listed: the error on "
            f"the mini-batches of the last quarter of the steps. PyTorch twins of "
            f"minires's nets on minires's data and batches: embedded set at {st['image_size']}x"
            f"{st['image_size']}, batch {st['batch_size']}, learning rate {st['lr']} after a "
            f"{st['warmup_steps']}-step warm-up, {schedule}; "
            f"`benchmarks/results/depth_sweep/sweep.json`; {longest:,} steps are "
            f"{longest * st['batch_size'] / st['num_train']:.0f} epochs of the "
            f"{st['num_train']:,} training images.) ")
    trends = depth_sweep_trends(cells)
    if trends:
        text += ("ResNet-56's lag behind ResNet-20 (the mean gap) from the shortest run to the "
                 "longest, per base width: " + "; ".join(
                     f"width {w}: {a:+.1f} at {s0:,} steps, {b:+.1f} at {s1:,}"
                     for w, (s0, a), (s1, b) in trends) + ". ")
        shrinks = all(b < a for _, (_, a), (_, b) in trends)
        text += ("At every width the lag shrinks as the runs get longer: the deeper net is "
                 "catching up. " if shrinks else "The lag does not shrink at every width. ")
    if not wins:
        text += (f"In none of the {len(cells)} settings does ResNet-56 end below ResNet-20 on "
                 f"average: within these budgets the deeper ResNet does not yet train better.")
    else:
        names = "; ".join(f"width {c['width']}, {c['steps']:,} steps" for c in wins)
        text += (f"ResNet-56 ends below ResNet-20 on average in {len(wins)} of the {len(cells)} "
                 f"settings ({names})")
        text += (f", in every seed in {len(every)} of them." if every else
                 ", but in none of them in every seed.")
        most = max(cells, key=lambda c: (len(c["seeds"]), c["steps"]))
        spread = max(most["gap"]) - min(most["gap"])
        lead = max(-c["mean_gap"] for c in wins)
        if len(most["seeds"]) > 1 and lead < spread:
            text += (f" Read that lead with the seeds' spread: it is {lead:.1f} points at most, "
                     f"and where the sweep has the most seeds (width {most['width']}, "
                     f"{most['steps']:,} steps, seeds {', '.join(map(str, most['seeds']))}) the "
                     f"gap ranges from {min(most['gap']):+.1f} to {max(most['gap']):+.1f} from "
                     f"seed to seed, a spread of {spread:.1f} points: a lead smaller than that, "
                     f"over {len(wins[0]['seeds'])} seeds, is a hint, not a settled result.")
    return "\n".join(lines) + "\n\n" + _wrap(text)


def depth_sweep_commands(data: dict) -> list[str]:
    """The ``benchmarks/depth_sweep.py`` commands that produce the committed file: each command
    continues the file (runs already in it are skipped), so together they make every run in it.
    One command per seed set and step count, with the widths that have them."""
    by_cell: dict = {}
    for r in data["runs"]:
        cell = by_cell.setdefault((r["width"], r["steps"]), {"seeds": set(), "depths": set(),
                                                             "plain": False})
        cell["seeds"].add(r["seed"])
        cell["depths"].add(r["depth"])
        cell["plain"] |= not r["residual"]
    groups: dict = {}
    for (width, steps), cell in sorted(by_cell.items()):
        key = (tuple(sorted(cell["seeds"])), steps, tuple(sorted(cell["depths"])), cell["plain"])
        groups.setdefault(key, []).append(width)
    st = data["settings"]
    commands = []
    for (seeds, steps, depths, plain), widths in sorted(groups.items(), key=lambda g: (g[0][1], g[0][0])):
        cmd = (f"python benchmarks/depth_sweep.py --json benchmarks/results/depth_sweep/sweep.json "
               f"--widths {' '.join(map(str, widths))} --steps {steps} --seeds "
               f"{' '.join(map(str, seeds))}")
        if depths != (20, 56):
            cmd += f" --depths {' '.join(map(str, depths))}"
        if plain:
            cmd += " --plain"
        if st["schedule"] != "decay":
            cmd += f" --schedule {st['schedule']}"
        commands.append(cmd)
    return commands


def block_depth_sweep_commands(results=None) -> str:
    data = depth_sweep()
    if data is None:
        return "(no committed sweep: run `benchmarks/depth_sweep.py`)\n"
    commands = depth_sweep_commands(data)
    return (_wrap(f"The committed sweep is {len(data['runs'])} runs, so it runs on PyTorch twins "
                  f"of minires's nets (the same layers and initialisation, on minires's data and "
                  f"batches), one run per core. These {len(commands)} commands make it (each "
                  f"continues the file, skipping the runs already in it):").rstrip("\n")
            + "\n\n```bash\n" + "\n".join(commands) + "\n```\n")


def depth_sweep_figure(data: dict, path: str) -> str:
    """Final training error against steps, one panel per base width, ResNet-20 and -56 (each
    seed a small mark, the mean a line)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    cells = depth_sweep_cells(data)
    widths = sorted({c["width"] for c in cells})
    fig, axes = plt.subplots(1, len(widths), figsize=(3.6 * len(widths), 3.4), sharey=True,
                             squeeze=False)
    for ax, width in zip(axes[0], widths):
        mine = [c for c in cells if c["width"] == width]
        steps = [c["steps"] for c in mine]
        for name, color in (("resnet20", "tab:blue"), ("resnet56", "tab:red")):
            ax.plot(steps, [_mean(c[name]) for c in mine], "-o", color=color,
                    label=name.replace("resnet", "ResNet-"))
            for c in mine:
                ax.plot([c["steps"]] * len(c[name]), c[name], "_", color=color, markersize=9)
        ax.set_xscale("log")
        ax.set_xticks(steps)
        ax.set_xticklabels([f"{s:,}" for s in steps])
        ax.minorticks_off()
        ax.set_title(f"base width {width}")
        ax.set_xlabel("training steps")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("final training error, %")
    axes[0][0].legend()
    st = data["settings"]
    fig.suptitle(f"Depth sweep on the embedded set, {st['image_size']}x{st['image_size']} "
                 f"(lines: mean over seeds; dashes: each seed)", fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _sig(value: float) -> str:
    """Two or three significant figures, as the gradient-flow table shows them."""
    if value >= 1e4:
        return f"{value:.1e}".replace("e+0", "e").replace("e+", "e")
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def block_gradflow_init(results=None) -> str:
    data = _load(os.path.join(GRADFLOW, "gradflow.json"))
    lines = ["| model | 3x3 conv grad-norm spread (max/min) | first / last conv | shortcut / "
             "branch gradient at the first, middle and last block |", "| --- | --- | --- | --- |"]
    for name, m in data["models"].items():
        ratios = [b["shortcut_grad_norm"] / b["branch_grad_norm"] for b in m["blocks"]
                  if b.get("shortcut_grad_norm") is not None]
        shown = (", ".join(f"{ratios[i]:.2f}" for i in (0, len(ratios) // 2, -1))
                 if ratios else "-")
        lines.append(f"| {name} | {_sig(m['spread'])} | {_sig(m['first_to_last'])} | {shown} |")
    return "\n".join(lines) + "\n"


BLOCKS = {"degradation-table": block_degradation_table,
          "quick-run-facts": block_quick_run_facts,
          "degradation-facts": block_degradation_facts,
          "readme-quick-run": block_readme_quick,
          "cli-results-json": block_cli_results_json,
          "responses-trained": block_responses,
          "benchmarks-step": block_benchmarks_step,
          "benchmarks-step-plain": block_benchmarks_step_plain,
          "benchmarks-kernels": block_benchmarks_kernels,
          "readme-performance": block_readme_performance,
          "depth-sweep": block_depth_sweep,
          "depth-sweep-commands": block_depth_sweep_commands,
          "gradflow-init": block_gradflow_init,
          "degradation-long": block_degradation_long,
          "benchmarks-profile": block_benchmarks_profile,
          "kernel-conv2d": block_kernel_conv2d,
          "kernel-batch-norm": block_kernel_batch_norm,
          "kernel-pooling": block_kernel_pooling,
          "kernel-cross-entropy": block_kernel_cross_entropy,
          "scaling-out-benchmark": block_scaling_out_benchmark,
          "benchmarks-conv-floor": block_benchmarks_conv_floor,
          "benchmarks-goal-2x": block_benchmarks_goal_2x}


def render(text: str, results) -> str:
    def replace(m):
        name = m.group("name")
        if name not in BLOCKS:
            raise KeyError(f"unknown generated block {name!r}")
        body = BLOCKS[name](results)
        return m.group(1) + body + (m.group(4) if body.endswith("\n") else "\n" + m.group(4))
    return BLOCK.sub(replace, text)


def figures(results) -> list[str]:
    """The committed figures drawn from the committed results (no training)."""
    sys.path.insert(0, ROOT)
    from minires.diagnostics import plots
    from minires.diagnostics.gradflow import LayerResponse
    written = []
    for res in results:
        seed = res["settings"]["seed"]
        path = os.path.join(DEGRADATION, f"training_error_seed{seed}.png")
        plots.save_figure(plots.training_curves_figure(
            res["runs"], title=f"Quick degradation run, seed {seed}, embedded "
            f"{res['settings']['image_size']}x{res['settings']['image_size']} (paper Figure 6 "
            f"style)"), path)
        written.append(path)
    import shutil
    shutil.copyfile(os.path.join(DEGRADATION, "training_error_seed0.png"),
                    os.path.join(ROOT, "docs", "_static", "degradation_quick_training_error.png"))
    responses_png = os.path.join(RESPONSES, "response_std.png")
    if os.path.exists(responses_png):
        shutil.copyfile(responses_png, os.path.join(ROOT, "docs", "_static",
                                                    "responses_trained_response_std.png"))
    flow_data = _load(os.path.join(GRADFLOW, "gradflow.json"))
    from minires.experiments import GRADFLOW_RESPONSES_TITLE

    class _Flow:
        def __init__(self, model, responses):
            self.model, self.responses = model, [LayerResponse(**r) for r in responses]
    flows = [_Flow(name, d["responses"]) for name, d in flow_data["models"].items()]
    path = os.path.join(GRADFLOW, "response_std.png")
    plots.save_figure(plots.response_std_figure(flows, title=GRADFLOW_RESPONSES_TITLE), path)
    written.append(path)
    from types import SimpleNamespace
    for name, d in flow_data["models"].items():          # the shortcut/branch split per block
        if any(b.get("shortcut_grad_norm") is not None for b in d["blocks"]):
            flow = SimpleNamespace(model=name, blocks=[SimpleNamespace(**b) for b in d["blocks"]])
            path = os.path.join(GRADFLOW, f"shortcut_vs_branch_{name}.png")
            plots.save_figure(plots.shortcut_branch_figure(flow), path)
            written.append(path)
    lesion_json = os.path.join(RESULTS, "lesion_quick", "lesion.json")
    if os.path.exists(lesion_json):
        from minires.diagnostics import lesion_plots
        models = _load(lesion_json)["models"]
        for kind, draw in (("single", lesion_plots.lesion_single_figure),
                           ("random", lesion_plots.lesion_random_figure)):
            path = os.path.join(RESULTS, "lesion_quick", f"lesion_{kind}.png")
            lesion_plots.save_figure(draw(models), path)
            written.append(path)
            static = os.path.join(ROOT, "docs", "_static", f"lesion_quick_{kind}.png")
            if os.path.exists(static):
                shutil.copyfile(path, static)
    long = long_runs()
    if long:
        runs = [dict(r, model=f"{r['model']} s{res['settings']['seed']}")
                for res in long for r in res["runs"]]
        path = os.path.join(DEGRADATION_LONG, "training_error.png")
        plots.save_figure(plots.training_curves_figure(
            runs, key="train_error", title=f"minires degradation --long, "
            f"{len(long)} seeds"), path)
        shutil.copyfile(path, os.path.join(ROOT, "docs", "_static",
                                           "degradation_long_training_error.png"))
        written.append(path)
    sweep = depth_sweep()
    if sweep is not None:
        path = depth_sweep_figure(sweep, os.path.join(DEPTH_SWEEP, "depth_sweep.png"))
        shutil.copyfile(path, os.path.join(ROOT, "docs", "_static", "depth_sweep.png"))
        written.append(path)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 on any "
                        "difference")
    parser.add_argument("--no-figures", action="store_true", help="rewrite the text only")
    args = parser.parse_args(argv)
    results = degradation_runs()
    stale = []
    for page in PAGES:
        path = os.path.join(ROOT, page)
        with open(path) as f:
            text = f.read()
        new = render(text, results)
        if new != text:
            stale.append(page)
            if not args.check:
                with open(path, "w") as f:
                    f.write(new)
    if args.check:
        for page in stale:
            print(f"results_pages: {page} disagrees with benchmarks/results/: run "
                  f"`python tools/results_pages.py`")
        return 1 if stale else 0
    if not args.no_figures:
        for path in figures(results):
            print(f"results_pages: drew {os.path.relpath(path, ROOT)}")
    for page in stale:
        print(f"results_pages: rewrote {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
