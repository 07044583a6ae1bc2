"""Sphinx configuration of the minires documentation.

Build (offline, strict), from the project root::

    python tools/run_notebooks.py                      # executes notebooks/ -> docs/notebooks/
    sphinx-build -W --keep-going -b html docs docs/_build/html

Notebooks are never executed by Sphinx (``nb_execution_mode = "off"``): the docs render the copies
that ``tools/run_notebooks.py`` executed once. Without them the notebooks page says how to make
them and the build still passes.

No page loads anything from the network: MathJax comes with the docs (the
``sphinx-mathjax-offline`` package of the dev extra), and ``tools/check_docs_offline.py`` (run by
CI after the build) fails on any script or stylesheet with a remote address.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))          # the package from this checkout, even when not installed
os.environ.setdefault("MPLBACKEND", "Agg")   # importing minires.diagnostics.plots opens no window

import minires  # noqa: E402

project = "minires"
author = "the minires authors"
copyright = "the minires authors, MIT licence"
release = minires.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # ships MathJax 3 in _static/mathjax: formulas render offline
    "myst_nb",                 # Markdown (MyST) pages and the executed notebooks
]

root_doc = "index"
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "**.ipynb_checkpoints", "Thumbs.db", ".DS_Store"]
templates_path: list[str] = []
html_static_path = ["_static"]
html_css_files = ["minires.css"]

# --- HTML ------------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"minires {release}"
html_short_title = "minires"
html_show_sourcelink = False
html_theme_options = {"navigation_with_keys": True}
pygments_style = "friendly"
pygments_dark_style = "monokai"

# --- MyST and notebooks ----------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist", "attrs_inline"]
myst_heading_anchors = 3
nb_execution_mode = "off"              # executed once by tools/run_notebooks.py, never here
nb_merge_streams = True

# --- autodoc ---------------------------------------------------------------------------------
autodoc_default_options = {
    "members": True,
    "undoc-members": True,
    "show-inheritance": True,
    "member-order": "bysource",
}
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autoclass_content = "both"
napoleon_google_docstring = True
napoleon_numpy_docstring = True
napoleon_use_rtype = False

# --- the notebooks page: a toctree of the executed notebooks that are present -----------------
NOTEBOOKS_MARKER = "<!-- executed-notebooks -->"


def executed_notebooks() -> list[str]:
    """Docnames of the executed notebooks in docs/notebooks/, sorted (01_..., 02_...)."""
    folder = DOCS / "notebooks"
    if not folder.is_dir():
        return []
    return sorted(f"notebooks/{p.stem}" for p in folder.glob("*.ipynb")
                  if not p.name.startswith("."))


def _notebooks_toctree(app, docname, source):
    """Replace the marker in notebooks.md by a toctree of the notebooks that exist (or a note)."""
    if docname != "notebooks" or NOTEBOOKS_MARKER not in source[0]:
        return
    names = executed_notebooks()
    if names:
        block = "```{toctree}\n:maxdepth: 1\n\n" + "\n".join(names) + "\n```\n"
    else:
        block = (":::{note}\nThe executed notebooks are not in this build: run "
                 "`python tools/run_notebooks.py` from the project root (it writes "
                 "`docs/notebooks/`), then build the docs again.\n:::\n")
    source[0] = source[0].replace(NOTEBOOKS_MARKER, block)


def _drop_object_base(app, name, obj, options, bases):
    """No "Bases: object" line under every plain class."""
    if list(bases) == [object]:
        bases.clear()


def setup(app):
    app.connect("source-read", _notebooks_toctree)
    app.connect("autodoc-process-bases", _drop_object_base)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
