"""``forgetir reproduce``: the seed paper's experiment grid (:mod:`forgetir.reproduce`).

Example:
    $ forgetir reproduce --list
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from forgetir.atomic import check_output_dir
from forgetir.cli.arguments import (
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
from forgetir.cli.unlearn import add_options
from forgetir.config import check_range, split_key_value
from forgetir.options import UnlearnOptions, option_name
from forgetir.reproduce import (
    ReproduceError,
    ReproduceOptions,
    build_plan,
    format_grid,
    run_plan,
    select_cells,
    write_summary,
)
from forgetir.reproduce.grid import SCALES, UT_KINDS, _hms

HELP = "the seed paper's experiment grid on the embedded default (--scale cpu) or real data"


def add_arguments(parser: argparse.ArgumentParser) -> None:
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
        key, path = split_key_value(item) or ("", "")
        if key not in UT_KINDS or not path:
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


def run(args: argparse.Namespace) -> int:
    """List, or run the (selected) cells and write the summary."""
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
