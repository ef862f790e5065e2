"""``forgetir demo``: the main job on the embedded default, in a few minutes on 2 CPU cores.

It takes the shipped tiny all-in-one model (``shipped:before``), forgets one degradation type
(dehaze by default) with the seed paper's method, evaluates BEFORE / unlearned / UT (the shipped
model retrained without that task) on the shipped photos, runs the verification (gaps, output
gap, relearning, anamnesis index, cost) and writes the report. Nothing is downloaded.

Example:
    $ forgetir demo --forget derain --out runs/demo-derain
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from forgetir.arguments import add_out
from forgetir.unlearn import add_options, options_from_args, run_unlearn

DEMO_FORGET = ("dehaze", "derain", "denoise")


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--forget",
        default="dehaze",
        choices=DEMO_FORGET,
        metavar="TASK",
        help=f"the degradation type to forget: {', '.join(DEMO_FORGET)} (default: dehaze)",
    )
    add_options(
        parser,
        ("method", "target", "steps", "relearn_steps", "ain_max_steps", "test_max_side"),
        steps={
            "default": None,
            "help": "unlearning steps (default: the method's recommended steps, else 60)",
        },
        test_max_side={"extra": "smaller is faster"},
    )
    add_out(parser, "run folder", "runs/demo, runs/demo-2, ...")
    add_options(parser, ("threads", "quiet"))


def _fresh(base: Path) -> Path:
    if not base.exists():
        return base
    i = 2
    while Path(f"{base}-{i}").exists():
        i += 1
    return Path(f"{base}-{i}")


def demo_command(args: argparse.Namespace) -> int:
    import torch

    from forgetir.report import write_report

    out = Path(args.out) if args.out else _fresh(Path("runs") / "demo")
    t0 = time.time()
    print(
        f"forgetir demo: forgetting {args.forget} from the shipped promptir-tiny with "
        f"{args.method} (target: {args.target}); writing {out} "
        f"(torch threads: {torch.get_num_threads()})"
    )
    from forgetir.methods import get_method

    # A method's own recommended budget (e.g. proxy-retrain: 30 steps at 32x32) unless given.
    plan = get_method(args.method).recommended_schedule
    steps = args.steps if args.steps is not None else int(plan.get("steps", 60))
    patch = int(plan.get("patch_size", 64)) if "steps" in plan else 64
    opts = options_from_args(args, steps=steps, patch_size=patch)
    run_unlearn(
        "shipped:before",
        out,
        opts,
        forget=[args.forget],
        command=f"forgetir demo --forget {args.forget} --method {args.method} "
        f"--target {args.target} --steps {steps} --max-side {args.test_max_side} "
        f"--relearn-steps {args.relearn_steps} --ain-max-steps {args.ain_max_steps}",
    )
    paths = write_report(out)
    print(f"done in {time.time() - t0:.0f} s. Report: {Path(paths['html']).resolve()}")
    print(f"  also {paths['md']} and {paths['json']}")
    return 0
