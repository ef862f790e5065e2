"""``forgetir unlearn``: run an unlearning method on a checkpoint and a split, then evaluate.

The run folder follows the layout :mod:`forgetir.report.write` reads (``run.json``, ``model.*``,
``log.csv``, ``quality.json``, ``verify.json``, ``split.json``, ``grids/``).

The forget and retain training data come from the parent checkpoint's own training
configuration (its sidecar), so a degradation-type split of ``shipped:before`` forgets haze on
exactly the dead-leaves pool it was trained on. Guards, checked every ``guard_every`` steps on a
small held-out dead-leaves set (never the test photos): a retain budget (stop, and roll back to
the last state within budget, once a retained task drops more than ``retain_budget`` dB below
BEFORE) and a forget floor (stop once the forget PSNR reaches ``forget_floor`` dB, or, for the
``retrain-like`` target, once it is within 0.1 dB of the degraded input's).

The pieces: :mod:`.inputs` (options and folder checks, split, data, models), :mod:`.guard`,
:mod:`.steps` (train, score, record, verify), :mod:`.run` (the folder made whole or not at
all; several seeds); the command line is :mod:`forgetir.cli.unlearn`.

Example:
    >>> opts = UnlearnOptions(steps=2, batch_size=2, patch_size=32, verify=False)
    >>> opts.method
    'accurate-forgetting'
"""

from __future__ import annotations

from forgetir.options import UnlearnOptions, option_name
from forgetir.runs.testbed import load_eval_model
from forgetir.unlearn.guard import Guard
from forgetir.unlearn.inputs import check_options, check_run_folder, clean_source_images
from forgetir.unlearn.run import run_unlearn, run_unlearn_seeds

__all__ = [
    "Guard",
    "UnlearnOptions",
    "check_options",
    "check_run_folder",
    "clean_source_images",
    "load_eval_model",
    "option_name",
    "run_unlearn",
    "run_unlearn_seeds",
]
