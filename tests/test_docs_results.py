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

EXPECTED = {"README.md": {"readme-quick-run"},
            "docs/paper-results.md": {"degradation-table", "degradation-facts",
                                      "responses-trained"},
            "docs/cli.md": {"cli-results-json"}}


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
