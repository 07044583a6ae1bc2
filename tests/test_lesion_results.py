"""The committed lesion and landscape results, and the docs that quote them: the tables on the
paper-results page are generated from the JSON (they must match it), and every claim the page makes
about them is checked here against the same files."""
import json
import os

import numpy as np

from minires.studies import landscape_markdown, lesion_markdown, lesion_rows

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
PAGE = os.path.join(ROOT, "docs", "paper-results.md")


def load(*parts):
    with open(os.path.join(RESULTS, *parts)) as f:
        return json.load(f)


def page():
    with open(PAGE) as f:
        return f.read()


def test_docs_tables_are_the_committed_results():
    text = page()
    for table, source in ((lesion_markdown(load("lesion_quick", "lesion.json")),
                           "lesion_quick/lesion.json"),
                          (landscape_markdown(load("landscape_quick", "landscape.json")),
                           "landscape_quick/landscape.json")):
        assert table in text, (f"docs/paper-results.md does not show the table of "
                               f"benchmarks/results/{source}; it should read:\n{table}")


def single(model, shape_keeping=True):
    return {b["index"]: b["error"] for b in model["single"]
            if b["deletable"] and not (shape_keeping and b["downsampling"])}


def all_single(model):
    return single(model, shape_keeping=False)


def test_lesion_claims_of_the_docs_hold():
    models = load("lesion_quick", "lesion.json")["models"]
    chance = models["plain20"]["chance_error"]
    assert chance == 90.0
    res56, res20, plain20 = models["resnet56"], models["resnet20"], models["plain20"]
    # plain-56 never trained: near chance before anything is deleted
    assert models["plain56"]["baseline_error"] > chance - 10
    # any one block deleted sends plain-20 to within 10 points of chance; two cannot be deleted
    assert min(single(plain20).values()) > chance - 10
    assert [b["index"] for b in plain20["single"] if not b["deletable"]] == [3, 6]
    assert [b["index"] for b in models["plain56"]["single"] if not b["deletable"]] == [9, 18]
    # ResNet-56: the median deletion is within 5 points of no deletion; no deletion in the second
    # and third stages raises the error by 5 points or more, several lower it; the first stage is
    # where deletions cost: its worst more than 15 points
    base = res56["baseline_error"]
    errors = single(res56)
    assert abs(np.median(list(errors.values())) - base) < 5
    later = [e for b, e in all_single(res56).items() if b >= 9]
    assert sorted(b for b in all_single(res56) if b >= 9) == list(range(9, 27))
    assert "blocks 9-26, counting from 0" in " ".join(page().split())
    assert len(later) == 18 and max(later) < base + 5
    assert sum(e < base for e in later) >= 2
    assert max(e for b, e in errors.items() if b < 9) > base + 15
    # its downsampling blocks (the first of stages 2 and 3) do not stand out either
    down = [b["error"] for b in res56["single"] if b["downsampling"]]
    assert len(down) == 2 and all(e < base + 5 for e in down)
    # ResNet-20 loses more than ResNet-56 for a median block, plain-20 far more than both
    cost = {name: np.median(list(single(m).values())) - m["baseline_error"]
            for name, m in (("resnet56", res56), ("resnet20", res20), ("plain20", plain20))}
    assert cost["resnet56"] < cost["resnet20"] < cost["plain20"]
    assert cost["plain20"] > 2 * cost["resnet20"]
    # the error of ResNet-56 grows steadily with the number of blocks deleted, to chance
    means = [np.mean(r["errors"]) for r in res56["random"]]
    assert all(b >= a for a, b in zip(means, means[1:]))
    assert means[-1] > chance - 5


def test_landscape_claims_of_the_docs_hold():
    models = load("landscape_quick", "landscape.json")["models"]
    res56, plain56, plain20 = models["resnet56"], models["plain56"], models["plain20"]
    # plain-56 sits at the chance loss (ln 10), walled by cliffs a thousand times higher than
    # around ResNet-56
    assert abs(plain56["center_loss"] - np.log(10)) < 0.2
    assert plain56["summary"]["rise"] > 1000 * res56["summary"]["rise"]
    # ResNet-56: one minimum on the grid and the fewest points with negative curvature; both
    # plain nets: more than one, and more such points
    assert res56["summary"]["local_minima"] == 1
    for plain in (plain56, plain20):
        assert plain["summary"]["local_minima"] > 1
        assert plain["summary"]["nonconvex_fraction"] > res56["summary"]["nonconvex_fraction"]
    assert plain20["summary"]["nonconvex_fraction"] - res56["summary"]["nonconvex_fraction"] < 0.1
    # ... but not convex: a third of its inner grid points or more have negative curvature
    assert res56["summary"]["nonconvex_fraction"] > 0.3
