"""``forgetir train``: train BEFORE, or UT without some tasks (:mod:`forgetir.train`).

Example:
    $ forgetir train --config cpu train.steps=2 --out runs/t --threads 1
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from forgetir.cli.arguments import add_list, add_out, add_quiet, add_threads
from forgetir.config import load_config
from forgetir.data.pipeline import resolve_tasks
from forgetir.runtime.process import distributed_env
from forgetir.train import run_train

HELP = "train (or retrain without some tasks: --exclude) a restoration model"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``forgetir train``."""
    parser.add_argument(
        "--config", default="cpu", help="preset (cpu, paper) or a .yaml file (default: cpu)"
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="config overrides, e.g. train.steps=500 optim.lr=1e-3",
    )
    add_list(
        parser,
        "--exclude",
        "TASK",
        "leave tasks out (the UT model); 'denoise' drops all three sigmas",
        spill=True,
    )
    add_out(parser, "run folder", "runs/train-<model>[-no-<tasks>]")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    add_threads(parser)
    add_quiet(parser, "no result table either")


def _command_line(args: argparse.Namespace, out: Path) -> str:
    parts = ["forgetir", "train", "--config", str(args.config)]
    for task in args.exclude or []:
        parts += ["--exclude", task]
    if args.threads is not None:
        parts += ["--threads", str(args.threads)]
    parts += ["--out", str(out)]
    if args.resume:
        parts.append("--resume")
    parts += list(args.overrides)
    prefix = ""
    if (world := distributed_env()[0]) > 1:
        prefix = f"torchrun (world size {world}): "
    return prefix + shlex.join(parts)


def run(args: argparse.Namespace) -> int:
    """Load the config, apply overrides and ``--exclude``, run."""
    distributed_env()  # WORLD_SIZE without RANK...: refused before any work
    cfg = load_config(args.config, args.overrides)
    if args.threads is not None:  # the same setting as train.threads=N
        cfg.train.threads = args.threads
    if args.exclude:
        cfg.data.exclude = resolve_tasks([*cfg.data.exclude, *args.exclude], "--exclude")
    if args.out:
        out = Path(args.out)
    else:
        suffix = "-no-" + "-".join(args.exclude) if args.exclude else ""
        out = Path("runs") / f"train-{cfg.model.name}{suffix}"
    run_train(cfg, out, resume=args.resume, command=_command_line(args, out), quiet=args.quiet)
    return 0
