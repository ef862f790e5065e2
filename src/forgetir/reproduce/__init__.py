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
  cell itself. ``sweeps.json`` (the format :mod:`forgetir.report` reads) goes into the main
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

import argparse
import time
from collections.abc import Sequence

from forgetir.arguments import (
    CHECKPOINT_FORMS,
    add_arch,
    add_checkpoint,
    add_deprecated,
    add_int,
    add_list,
    add_out,
    add_quiet,
    max_side_or_none,
)
from forgetir.atomic import check_output_dir
from forgetir.config import check_range
from forgetir.reproduce.grid import (
    FORGET_TYPES,
    SCALES,
    UT_KINDS,
    Cell,
    Plan,
    ReproduceError,
    ReproduceOptions,
    SplitSpec,
    _hms,
    format_grid,
    select_cells,
)
from forgetir.reproduce.results import before_training_cost
from forgetir.reproduce.run import check_inputs, ensure_split, run_cell, run_plan
from forgetir.reproduce.summary import build_summary, format_summary, write_summary
from forgetir.reproduce.table import build_plan
from forgetir.unlearn import UnlearnOptions, add_options, option_name

__all__ = [
    "FORGET_TYPES",
    "Cell",
    "Plan",
    "ReproduceError",
    "ReproduceOptions",
    "SplitSpec",
    "add_reproduce_arguments",
    "before_training_cost",
    "build_plan",
    "build_summary",
    "check_inputs",
    "ensure_split",
    "format_grid",
    "format_summary",
    "reproduce_command",
    "run_cell",
    "run_plan",
    "select_cells",
    "write_summary",
]


# ------------------------------------------------------------------------------ command line


def add_reproduce_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``forgetir reproduce``."""
    add_checkpoint(
        parser,
        f"the BEFORE model: {CHECKPOINT_FORMS} (default at cpu scale: shipped:before)",
    )
    add_deprecated(parser, "--checkpoint", "the positional CHECKPOINT", dest="checkpoint_option")
    parser.add_argument(
        "--scale",
        default="cpu",
        choices=SCALES,
        help="cpu: the embedded tiny models and data, minutes to hours on a CPU; paper: the "
        "official architectures and recipe on the PromptIR data under --root (default: cpu)",
    )
    add_out(parser, "output folder, one run folder per cell", "runs/reproduce-<scale>")
    parser.add_argument("--list", action="store_true", help="print the cells and exit")
    add_list(
        parser,
        "--only",
        "PATTERN",
        "run the cells matching these globs (e.g. 'main/*'; the cells they need are added)",
    )
    parser.add_argument(
        "--retrain",
        action="store_true",
        help="train BEFORE and the UT models instead of "
        "using the shipped (cpu) or given (paper) ones",
    )
    add_arch(parser)
    for kind in UT_KINDS:
        without = "the instance cell's images" if kind == "instances" else kind
        parser.add_argument(
            f"--ut-{kind}",
            metavar="CHECKPOINT",
            dest=f"ut_{kind}",
            help=f"UT of the {kind} cells: the model retrained without {without} "
            "(default at cpu scale: the shipped one)",
        )
    add_deprecated(parser, "--ut", "--ut-KIND CHECKPOINT", dest="ut_pairs", parse=_legacy_ut)
    parser.add_argument("--root", metavar="FOLDER", help="PromptIR data folder (paper scale)")
    add_options(
        parser,
        ("steps", "batch_size", "patch_size", "test_max_side", "threads", "seed"),
        steps={"default": None, "help": "unlearning steps (default: cpu 60, paper 2 epochs)"},
        batch_size={"default": None, "help": "patches per step (default: cpu 8, paper 16)"},
        patch_size={
            "default": None,
            "help": "side of the training patches (default: cpu 64, paper 128)",
        },
        test_max_side={"default": 128, "extra": "cpu scale, where the published grid uses 128"},
    )
    add_deprecated(parser, "--test-max-side", "--max-side", dest="test_max_side", type=int)
    add_int(parser, "--seeds", 3, extra="the main/* and methods/* cells")
    parser.add_argument(
        "--docs",
        nargs="?",
        const="docs/reproduce.md",
        default=None,
        metavar="PATH",
        help="also copy summary.md here (default docs/reproduce.md)",
    )
    add_quiet(parser, "no result tables either")


def _legacy_ut(parser: argparse.ArgumentParser, namespace: argparse.Namespace, value: str) -> None:
    # The old --ut KIND=PATH, kept for old scripts: parse_ut checks it in options_from_args.
    namespace.ut_pairs = [*getattr(namespace, "ut_pairs", []), value]


def parse_ut(items: Sequence[str]) -> dict[str, str]:
    """The old ``--ut KIND=PATH`` values as ``{kind: path}``; a bad one is an error naming the
    valid kinds."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, path = item.partition("=")
        if not sep or key not in UT_KINDS or not path:
            raise ReproduceError(
                f"--ut {item!r}: expected KIND=PATH with KIND one of {', '.join(UT_KINDS)} "
                f"(prefer --ut-{'/'.join(UT_KINDS)} CHECKPOINT)"
            )
        out[key] = path
    return out


def options_from_args(args: argparse.Namespace) -> ReproduceOptions:
    # The options every cell's unlearning run takes, checked before the first cell runs.
    args.test_max_side = max_side_or_none(args.test_max_side)  # --max-side 0: full size
    for name in ("steps", "batch_size", "patch_size", "test_max_side", "threads", "seed"):
        check_range(option_name(name), getattr(args, name), UnlearnOptions.RANGES.get(name))
    if args.out:
        check_output_dir(args.out)
    given = getattr(args, "checkpoint_option", None)
    if given and args.checkpoint and given != args.checkpoint:
        raise ReproduceError(
            f"two BEFORE models: {args.checkpoint} and --checkpoint {given}; give one CHECKPOINT"
        )
    checkpoint = args.checkpoint or given
    ut = parse_ut(getattr(args, "ut_pairs", []))
    ut.update({k: getattr(args, f"ut_{k}") for k in UT_KINDS if getattr(args, f"ut_{k}")})
    return ReproduceOptions(
        scale=args.scale,
        out=args.out,
        retrain=args.retrain,
        checkpoint=checkpoint,
        arch=args.arch or ("promptir" if args.scale == "paper" and checkpoint else None),
        ut=ut,
        root=args.root,
        steps=args.steps,
        batch_size=args.batch_size,
        patch_size=args.patch_size,
        test_max_side=args.test_max_side,
        threads=args.threads,
        seed=args.seed,
        seeds=args.seeds,
    )


def reproduce_command(args: argparse.Namespace) -> int:
    """``forgetir reproduce``: list, or run the (selected) cells and write the summary."""
    plan = build_plan(options_from_args(args))
    if args.list:
        print(format_grid(plan, select_cells(plan, args.only)))
        return 0
    t0 = time.time()
    run_plan(plan, args.only)
    if args.docs:
        write_summary(plan, docs=args.docs)
        print(f"copied the summary to {args.docs}")
    print(f"forgetir reproduce finished in {_hms(time.time() - t0)}")
    return 0
