"""README's course section names every notebook in ``notebooks/`` and counts them right."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
           "nine": 9, "ten": 10, "eleven": 11, "twelve": 12}


def readme_course_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("## The course")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def test_readme_counts_and_lists_the_notebooks_in_the_folder():
    notebooks = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
    section = readme_course_section()
    count = re.search(r"`notebooks/` holds (\w+) notebooks", section)
    assert count, "README's course section should say how many notebooks notebooks/ holds"
    assert NUMBERS.get(count.group(1), count.group(1)) == len(notebooks), \
        f"README says {count.group(1)} notebooks; notebooks/ has {len(notebooks)}"
    listed = re.findall(r"^- `(\d\d_\w+)`", section, flags=re.MULTILINE)
    assert listed == notebooks, f"README lists {listed}; notebooks/ has {notebooks}"


def test_readme_promises_the_time_budget_that_run_notebooks_enforces():
    import importlib.util
    spec = importlib.util.spec_from_file_location("run_notebooks",
                                                  ROOT / "tools" / "run_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    minutes = module.BUDGET_SECONDS / 60
    words = {n: w for w, n in NUMBERS.items()}
    section = " ".join(readme_course_section().split())
    assert minutes == int(minutes) and f"within {words[int(minutes)]} minutes" in section, \
        f"README should promise what run_notebooks enforces: {module.BUDGET_SECONDS} s"
    docs = " ".join((ROOT / "docs" / "notebooks.md").read_text(encoding="utf-8").split())
    assert f"`--budget`, {module.BUDGET_SECONDS} s by default" in docs
