"""``forgetir reproduce``: the seed paper's whole experiment grid in one command.

The grid (``--list`` prints it; every cell is a run folder ``<out>/<cell>/``):

- ``main/<t>-collapse`` and ``main/<t>-retrain-like`` for t in dehaze, derain, denoise: the paper's
  method (``accurate-forgetting``, published defaults) with both forget targets, verified
  (gaps, output gap, relearning, anamnesis index, cost): the paper's Tables 2/3;
- ``control/<t>-finetune``: continued training on the retain data for the same number of steps;
- ``ablation/<t>-no-adv``, ``-no-instance``, ``-neither``: Table 4;
- ``sweep/<t>-lr-*``, ``-batch-*``, ``-wadv-*``: Fig. 3 / Table 5 (lr 1e-4, 1.5e-4, 2e-4; batch
  12, 16, 20 with the steps scaled so that every run sees the same number of samples, as the
  paper's fixed 2 epochs do; w_adv:w_ul 0.5:1, 1:1, 1.5:1). The 2e-4 and 1:1 points are the main
  cell itself. ``sweeps.json`` (the format :mod:`forgetir.report.write` reads) goes into the main
  cell of each forget type, so ``forgetir report <out>/main/dehaze-collapse`` plots them;
- ``methods/<name>``: every other registered method on the dehaze split, same steps;
- ``instances/accurate-forgetting-16``: a deletion request of 16 training images (membership
  inference in its verification);
- ``class/*`` (cpu scale): the second seed's setting: a small inpainting BEFORE trained on three
  dead-leaves content classes, its UT trained on the retain part of the class split
  (``data.split``/``data.part``), and ``encoder-noise`` forgetting the class.

BEFORE and the UT models are the shipped ones unless ``--retrain`` (then ``train/*`` cells train
them with the scale's preset). A cell is done once its ``run.json`` exists: an interrupted run
resumes at the first unfinished cell (an unfinished unlearning folder is started afresh, an
unfinished training resumes from its checkpoint). At the end ``summary.md`` and
``summary.json`` hold the tables in the seed paper's layout, with protocol, test set, steps,
wall time and cost relative to BEFORE's training; ``--docs`` copies ``summary.md`` to
``docs/reproduce.md``.

Example:
    >>> plan = build_plan(ReproduceOptions(out="/tmp/r"))
    >>> main = [c.name for c in plan.cells if c.name.startswith("main/")]
    >>> len(main), len([n for n in main if "@seed" not in n])  # 3 seeds by default
    (18, 6)
"""

from __future__ import annotations

from forgetir.reproduce.grid import (
    FORGET_TYPES,
    Cell,
    Plan,
    ReproduceError,
    ReproduceOptions,
    SplitSpec,
    format_grid,
    select_cells,
)
from forgetir.reproduce.results import before_training_cost
from forgetir.reproduce.run import check_inputs, ensure_split, run_cell, run_plan
from forgetir.reproduce.summary import build_summary, format_summary, write_summary
from forgetir.reproduce.table import build_plan

__all__ = [
    "FORGET_TYPES",
    "Cell",
    "Plan",
    "ReproduceError",
    "ReproduceOptions",
    "SplitSpec",
    "before_training_cost",
    "build_plan",
    "build_summary",
    "check_inputs",
    "ensure_split",
    "format_grid",
    "format_summary",
    "run_cell",
    "run_plan",
    "select_cells",
    "write_summary",
]
