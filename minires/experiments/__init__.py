"""The experiments that the ``minires`` command runs, usable from code too; one module each:

* :mod:`.degradation`: plain and residual nets at several depths (the paper's Figure 6, Table 2);
* :mod:`.gradflow`: gradient flow at initialisation or after K steps;
* :mod:`.responses`: the paper's Figure 7 on the nets a degradation run trained;
* :mod:`.lesion`, :mod:`.landscape`: two studies beyond the paper on those nets;
* :mod:`.train`: one model (``minires train``);
* :mod:`.common`: what they share (the data, a run's trained nets, the process group's ranks).

Each writes its results as strict JSON through :mod:`minires.jsonio` and its figures as PNG.
Every name is importable from here too (``from minires.experiments import run_degradation``).
"""
from .common import (PROBE_BATCH_SIZE, PROBE_SEED_OFFSET, degradation_data, load_data,
                     load_trained_model, trained_model_path)
from .degradation import DegradationConfig, degradation_table, run_degradation, trained_models
from .gradflow import (GRADFLOW_MAX_WARMUP_STEPS, GRADFLOW_POOL_IMAGES,
                       GRADFLOW_RESPONSES_TITLE, GRADFLOW_TEST_IMAGES, gradflow_table,
                       run_gradflow)
from .landscape import landscape_markdown, landscape_table, run_landscape
from .lesion import lesion_markdown, lesion_rows, lesion_table, run_lesion
from .responses import RESPONSES_BATCH_SIZE, run_responses
from .train import run_train
