"""The README and the docs quote measured results only through blocks generated from the
committed result files (tools/results_pages.py); here: they agree, and a typed-over number fails."""
import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location(
    "results_pages", os.path.join(ROOT, "tools", "results_pages.py"))
pages = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pages)

EXPECTED = {"README.md": {"readme-quick-run", "readme-performance"},
            "docs/getting-started.md": {"quick-run-facts"},
            "docs/paper-results.md": {"degradation-table", "degradation-facts",
                                      "responses-trained", "depth-sweep", "depth-sweep-commands",
                                      "degradation-long",
                                      "gradflow-init"},
            "docs/cli.md": {"cli-results-json"},
            "docs/benchmarks.md": {"benchmarks-step", "benchmarks-step-plain", "benchmarks-kernels",
                                   "benchmarks-profile", "scaling-out-benchmark",
                                   "benchmarks-conv-floor", "benchmarks-goal-2x"},
            "docs/kernels/conv2d.md": {"kernel-conv2d"},
            "docs/kernels/batch-norm.md": {"kernel-batch-norm"},
            "docs/kernels/pooling.md": {"kernel-pooling"},
            "docs/kernels/cross-entropy.md": {"kernel-cross-entropy"},
            "docs/scaling-out.md": {"scaling-out-benchmark"}}


def _text(page):
    with open(os.path.join(ROOT, page)) as f:
        return f.read()


@pytest.mark.parametrize("page", sorted(EXPECTED))
def test_page_agrees_with_the_result_files(page):
    text = _text(page)
    found = {m.group("name") for m in pages.BLOCK.finditer(text)}
    assert found >= EXPECTED[page], f"{page} lost its generated blocks {EXPECTED[page] - found}"
    assert pages.render(text, pages.degradation_runs()) == text, (
        f"{page} disagrees with benchmarks/results/: run `python tools/results_pages.py`")


def test_a_typed_over_number_is_caught():
    results = pages.degradation_runs()
    text = _text("docs/paper-results.md")
    table = pages.block_degradation_table(results)
    first = table.splitlines()[2]                     # the plain20 row
    doctored = text.replace(first, first.replace("|", "| 1", 1).replace("| 1 plain", "| plain"))
    doctored = doctored.replace(first.split(" | ")[1], "12.3 / 45.6", 1)
    assert doctored != text
    assert pages.render(doctored, results) == text


def test_the_summary_is_the_json():
    results = pages.degradation_runs()
    summary = pages.degradation_summary(results)
    assert len(results) == 3
    for res in results:
        for run in res["runs"]:
            assert run["train_error"][-1] in summary[run["model"]]["train"]


def test_the_figure7_block_gives_a_verdict_per_claim():
    data = pages._load(os.path.join(pages.RESPONSES, "responses.json"))
    comp = data["comparison"]
    text = pages.block_responses(pages.degradation_runs())
    assert "Section 4.2" in text and "generally smaller responses" in text, "the paper is quoted"
    bullets = [b.replace("\n  ", " ") for b in text.split("\n- ")[1:]]
    for depth, twin in comp["twins"].items():
        line = next(b for b in bullets if b.startswith(f"Depth {depth}:"))
        assert ("the first claim holds" in line) == twin["resnet_smaller"], line
    for pair, c in comp["deeper_resnet"].items():
        line = next(b for b in bullets if b.startswith(pair.replace("_vs_", " vs ")))
        assert ("the second claim holds" in line) == c["deeper_smaller"], line
    assert comp["twins"] and comp["deeper_resnet"], "both claims are tested (depths 20 and 56)"


def test_the_depth_sweep_block_is_the_json():
    data = pages.depth_sweep()
    assert data is not None, "benchmarks/results/depth_sweep/sweep.json is committed"
    cells = pages.depth_sweep_cells(data)
    text = pages.block_depth_sweep(pages.degradation_runs())
    for cell in cells:
        row = next(line for line in text.splitlines()
                   if line.startswith(f"| {cell['width']} | {cell['steps']:,} | "))
        assert f"{sum(cell['resnet56']) / len(cell['resnet56']):.1f}" in row
        assert all(f"{g:+.1f}" in row for g in cell["gap"])
    wins = sum(c["mean_gap"] < 0 for c in cells)
    if wins == 0:
        assert "In none of the" in text
    else:
        assert f"in {wins} of the {len(cells)}" in text


def test_the_paper_results_prose_on_the_sweep_holds():
    """docs/paper-results.md says, in typed prose, that the deeper ResNet closes the distance as
    the runs get longer: the committed sweep must show that at every width."""
    cells = pages.depth_sweep_cells(pages.depth_sweep())
    trends = pages.depth_sweep_trends(cells)
    assert trends, "the sweep has two step counts for some width"
    for width, (s0, first), (s1, last) in trends:
        assert last < first, (f"width {width}: the lag grows from {s0} to {s1} steps; update the "
                              f"prose after the depth-sweep block in docs/paper-results.md")
    assert "closes the distance as the runs get longer" in " ".join(
        _text("docs/paper-results.md").split())


def test_the_committed_long_runs_are_what_the_preset_makes():
    """Every committed ``--long`` run has the settings ``minires degradation --long --seed K``
    gives today, all four nets, finished; the page's figures are theirs."""
    from minires.cli import build_parser, degradation_config
    runs = pages.long_runs()
    assert len(runs) >= 2, "two or more seeds of `minires degradation --long` are committed"
    for res in runs:
        seed = res["settings"]["seed"]
        config = degradation_config(build_parser().parse_args(
            ["degradation", "--long", "--seed", str(seed)]))
        for key, value in res["settings"].items():
            if key in ("minires_version", "depths"):
                continue
            assert getattr(config, key) == value, (seed, key, value, getattr(config, key))
        assert list(config.depths) == res["settings"]["depths"]
        assert sorted(r["model"] for r in res["runs"]) == ["plain20", "plain56", "resnet20",
                                                           "resnet56"]
        for r in res["runs"]:
            assert r["steps"][-1] == config.steps and not r.get("diverged"), r["model"]
    facts = pages.long_run_facts(runs)
    text = " ".join(_text("docs/paper-results.md").split())
    assert ", ".join(f"{g:+.1f}" for g in facts["gaps"]) in text
    assert ("a hint, not a settled result" in text) == \
        (abs(facts["mean_gap"]) < max(facts["spread"], facts["gap_spread"]))


def test_the_kernel_pages_show_the_reference_against_the_fast_kernel():
    data = pages._bench("bench_reference_cpu.json")
    assert data is not None, "benchmarks/results/bench_reference_cpu.json is committed"
    blocks = {"conv2d 3x3": pages.block_kernel_conv2d(),
              "batch_norm": pages.block_kernel_batch_norm(),
              "max_pool2d 2x2": pages.block_kernel_pooling(),
              "cross_entropy": pages.block_kernel_cross_entropy()}
    for row in data["rows"]:
        prefix = next(p for p in blocks if row["kernel"].startswith(p))
        label = row["kernel"][len(prefix):].strip()
        line = next(line for line in blocks[prefix].splitlines() if line.startswith(f"| {label} |"))
        assert f"| {row['speedup']:.1f}x |" in line, line


def test_the_depth_sweep_commands_make_exactly_the_committed_runs():
    """The page's commands, expanded the way benchmarks/depth_sweep.py expands its arguments,
    give every committed run and nothing else."""
    data = pages.depth_sweep()
    made = set()
    for command in pages.depth_sweep_commands(data):
        words = command.split()
        assert words[:2] == ["python", "benchmarks/depth_sweep.py"]
        args, key = {"--depths": ["20", "56"]}, None
        for word in words[2:]:
            if word.startswith("--"):
                key = word
                args[key] = []              # a given --depths replaces the default
            else:
                args[key].append(word)
        kinds = (False, True) if "--plain" in args else (True,)
        for width in args["--widths"]:
            for steps in args["--steps"]:
                for seed in args["--seeds"]:
                    for depth in args["--depths"]:
                        for residual in kinds:
                            made.add((int(width), int(steps), int(depth), residual, int(seed)))
    committed = {(r["width"], r["steps"], r["depth"], r["residual"], r["seed"])
                 for r in data["runs"]}
    assert made == committed
    assert f"The committed sweep is {len(data['runs'])} runs" in pages.block_depth_sweep_commands()


def test_a_sweep_lead_within_the_seeds_spread_is_said_to_be_one():
    cells = pages.depth_sweep_cells(pages.depth_sweep())
    wins = [c for c in cells if c["mean_gap"] < 0]
    most = max(cells, key=lambda c: (len(c["seeds"]), c["steps"]))
    spread = max(most["gap"]) - min(most["gap"])
    text = " ".join(pages.block_depth_sweep(pages.degradation_runs()).split())
    if wins and max(-c["mean_gap"] for c in wins) < spread:
        assert "is a hint, not a settled result" in text and f"{spread:.1f} points" in text


def test_the_benchmarks_verdict_on_2x_is_the_json():
    """docs/benchmarks.md's sentence on the 2x goal names, from the JSON, the step cases within
    2x and those beyond it (it once said the whole step met 2x while its own table said no)."""
    text = " ".join(pages.block_benchmarks_goal_2x().split())
    step = pages._bench("bench_step_cpu.json")
    beyond = [r for r in step["rows"] if r["ratio"] > 2]
    for r in step["rows"]:
        assert f"{r['model']} ({r['ratio']:.2f}x)" in text
    if beyond:
        assert "and not for" in text
    first = pages._bench("bench_kernels_cpu.json")["rows"][0]
    assert f"{first['ratio']:.2f}x" in text
