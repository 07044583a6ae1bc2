"""The two studies beyond the paper, where they were first importable from: they now live in
:mod:`minires.experiments.lesion` and :mod:`minires.experiments.landscape` (this module only
hands their names on)."""
from .experiments.common import degradation_data
from .experiments.degradation import trained_models
from .experiments.landscape import landscape_markdown, landscape_table, run_landscape
from .experiments.lesion import lesion_markdown, lesion_rows, lesion_table, run_lesion

__all__ = ["trained_models", "run_lesion", "run_landscape", "lesion_table", "lesion_markdown",
           "lesion_rows", "landscape_table", "landscape_markdown", "degradation_data"]
