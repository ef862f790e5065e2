"""``forgetir demo``: the main job on the embedded default (:mod:`forgetir.demo`).

Example:
    $ forgetir demo --forget derain --out runs/demo-derain --threads 1
"""

from __future__ import annotations

import argparse

from forgetir.cli.arguments import add_list, add_out
from forgetir.cli.unlearn import add_options, options_from_args
from forgetir.demo import DEMO_FORGET, run_demo

HELP = "the main job: forget dehaze from the shipped tiny model, verify, write the report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``forgetir demo``."""
    parser.add_argument(
        "--forget",
        default="dehaze",
        choices=DEMO_FORGET,
        metavar="TASK",
        help=f"the degradation type to forget: {', '.join(DEMO_FORGET)} (default: dehaze)",
    )
    add_list(
        parser,
        "--method",
        "NAME",
        "unlearning methods to run side by side, see `forgetir methods`",
        dest="methods",
        default_text="the seed paper's accurate-forgetting and the method recommended for --forget",
    )
    add_options(
        parser,
        ("target", "steps", "relearn_steps", "ain_max_steps", "test_max_side"),
        steps={
            "default": None,
            "help": "unlearning steps (default: each method's recommended steps, else 60)",
        },
        test_max_side={"extra": "smaller is faster"},
    )
    add_out(parser, "folder of the runs", "runs/demo, runs/demo-2, ...")
    add_options(parser, ("threads", "quiet"))


def run(args: argparse.Namespace) -> int:
    """Run the demo with the options given (the rest: :class:`~forgetir.options.UnlearnOptions`'
    defaults)."""
    run_demo(args.forget, options_from_args(args), out=args.out, methods=args.methods)
    return 0
