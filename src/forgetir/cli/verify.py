"""``forgetir verify RUN_DIR``: re-check a run folder's files and recompute its proof.

Example:
    $ forgetir verify runs/demo --threads 1
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from forgetir.checks.verify import summarize, verify_folder
from forgetir.cli.arguments import (
    add_arch,
    add_int,
    add_precision_argument,
    add_quiet,
    add_threads,
    add_tiling_arguments,
    add_ut,
)
from forgetir.runs.folder import VERIFY_JSON

HELP = "(re)compute the proof of forgetting of a run: gaps to UT, relearning, AIN, MIA, cost"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``forgetir verify``."""
    parser.add_argument(
        "run_dir", metavar="RUN_DIR", help="an unlearning run folder (forgetir unlearn / demo)"
    )
    add_ut(
        parser,
        "the run's own, if any; 'none': the UT-free verdict, paired against the degraded input",
    )
    add_arch(parser)
    add_int(parser, "--relearn-steps", None, default_text="the run's")
    add_int(parser, "--ain-max-steps", None, default_text="the run's")
    parser.add_argument(
        "--recompute-ut",
        action="store_true",
        help="fine-tune UT's copy again instead of reading its reference log",
    )
    add_tiling_arguments(parser, default="the run's own")
    add_precision_argument(parser, None, "the run's own")
    add_threads(parser)
    add_quiet(parser)


def run(args: argparse.Namespace) -> int:
    """The verdict first, then every figure.

    Under torchrun rank 0 verifies alone (its checks fine-tune copies of the models step by
    step, which does not split between processes); the other ranks return at once."""
    quiet = bool(getattr(args, "quiet", False))
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        if int(os.environ.get("RANK", "0")) != 0:
            return 0
        print("forgetir verify: under torchrun rank 0 verifies alone", flush=True)
    result = verify_folder(
        args.run_dir,
        ut=args.ut,
        arch=args.arch,
        relearn_steps=args.relearn_steps,
        ain_max_steps=args.ain_max_steps,
        log=(lambda m: None) if quiet else (lambda m: print(f"forgetir verify: {m}", flush=True)),
        quiet=quiet,
        recompute_ut=bool(getattr(args, "recompute_ut", False)),
        tile=getattr(args, "tile", None),
        tile_overlap=getattr(args, "tile_overlap", None),
        precision=getattr(args, "precision", None),
    )
    print(summarize(result))
    print(f"wrote {Path(args.run_dir) / VERIFY_JSON}; `forgetir report {args.run_dir}` renders it")
    return 0
