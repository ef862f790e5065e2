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

from forgetir.unlearn import UnlearnOptions, run_unlearn

DEMO_FORGET = ("dehaze", "derain", "denoise")


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--forget", default="dehaze", choices=DEMO_FORGET)
    parser.add_argument("--method", default="accurate-forgetting", help="see `forgetir methods`")
    parser.add_argument("--target", default="collapse", choices=("collapse", "retrain-like"))
    parser.add_argument(
        "--steps",
        type=int,
        help="unlearning steps, batch 8 (default: the method's recommended steps, else 60)",
    )
    parser.add_argument("--out", help="run folder (default: runs/demo, runs/demo-2, ...)")
    parser.add_argument(
        "--threads", type=int, help="torch CPU threads (default: the cores free right now)"
    )
    parser.add_argument("--quiet", action="store_true")


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
    opts = UnlearnOptions(
        method=args.method,
        target=args.target,
        steps=steps,
        patch_size=int(plan.get("patch_size", 64)) if "steps" in plan else 64,
        threads=args.threads,
        quiet=args.quiet,
    )
    run_unlearn(
        "shipped:before",
        out,
        opts,
        forget=[args.forget],
        command=f"forgetir demo --forget {args.forget} --method {args.method} "
        f"--target {args.target} --steps {steps}",
    )
    paths = write_report(out)
    print(f"done in {time.time() - t0:.0f} s. Report: {Path(paths['html']).resolve()}")
    print(f"  also {paths['md']} and {paths['json']}")
    return 0
