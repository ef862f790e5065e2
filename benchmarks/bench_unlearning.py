"""Unlearning quality and cost on the shipped models (cpu scale): issue 5's table.

For forgetting each of dehaze / derain / denoise from ``shipped:before``:

- accurate-forgetting with the paper's defaults (collapse target),
- accurate-forgetting with the retrain-like target,
- finetune on the retain data for the same number of steps (the continue-training control),

it prints one markdown row per run: the forget-task PSNR (denoise: mean of σ15/25/50) and its
difference to BEFORE and to UT (the shipped model retrained without the task), each retained
task's PSNR change against BEFORE, and the unlearning steps and wall time as fractions of
BEFORE's training (its sidecar's ``step`` and ``wall_time``).

The runs are the ``main/*`` and ``control/*`` cells of ``forgetir reproduce --scale cpu``, in the
same folder (default ``runs/reproduce-cpu``): whichever of the two runs first, the other reuses
its cells. A ``CHECKPOINT`` argument / ``--ut-dehaze PATH`` (``--ut-derain``, ``--ut-denoise``)
replace the shipped models (e.g. stand-ins), with ``forgetir reproduce``'s spelling.

Run: PYTHONPATH=src python benchmarks/bench_unlearning.py [--out runs/reproduce-cpu]
     [--steps 60] [--max-side 128] [--threads 2]

Wall times depend on the machine and its load; the step fractions do not.

Issue 11's table (mean ± sd over seeds, with proxy-retrain, the data-free mode and the
relearning attack) is ``benchmarks/bench_forgetting.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from forgetir.cli.arguments import add_checkpoint, add_max_side, add_threads
from forgetir.reproduce import (
    FORGET_TYPES,
    ReproduceOptions,
    before_training_cost,
    build_plan,
    run_plan,
)

COLUMNS = {"denoise_15": "σ15", "denoise_25": "σ25", "denoise_50": "σ50"}


def _cells(t: str) -> list[tuple[str, str]]:
    return [
        (f"main/{t}-collapse", "accurate-forgetting (paper defaults, collapse)"),
        (f"main/{t}-retrain-like", "accurate-forgetting (retrain-like target)"),
        (f"control/{t}-finetune", "finetune, same steps (control)"),
    ]


def _mean(rows: dict[str, Any], tasks: list[str]) -> float:
    return sum(float(rows[t]["psnr"]) for t in tasks) / len(tasks)


def _row(label: str, t: str, run: dict[str, Any], q: dict[str, Any], before: dict) -> str:
    rows = q["rows"]
    forget, retain = run["forget_tasks"], run["retain_tasks"]
    f_after = _mean(rows["unlearned"], forget)
    f_before = _mean(rows["BEFORE"], forget)
    f_ut = _mean(rows["UT"], forget) if "UT" in rows else float("nan")
    f_input = _mean(rows["input"], forget)
    after, bef = rows["unlearned"], rows["BEFORE"]
    delta = {r: float(after[r]["psnr"]) - float(bef[r]["psnr"]) for r in retain}
    changes = ", ".join(f"{COLUMNS.get(r, r)} {d:+.2f}" for r, d in delta.items())
    steps, wall = run["steps"], run["wall_time_s"]
    step_frac = steps / before["steps"] if before.get("steps") else float("nan")
    wall_frac = wall / before["wall_time_s"] if before.get("wall_time_s") else float("nan")
    stopped = " (stopped early)" if run.get("stopped_early") else ""
    return (
        f"| {t} | {label} | {f_after:.2f} | {f_after - f_before:+.2f} | {f_after - f_ut:+.2f} | "
        f"{f_input:.2f} | {changes} | {steps}{stopped} | {100 * step_frac:.1f}% | {wall:.1f} | "
        f"{100 * wall_frac:.1f}% |"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # The options forgetir reproduce has, with its spelling (forgetir.cli.arguments).
    add_checkpoint(p, "the BEFORE model (default: shipped:before)")
    p.add_argument("--out", default="runs/reproduce-cpu", help="the reproduce folder")
    p.add_argument("--steps", type=int, default=None, help="unlearning steps (default 60)")
    add_max_side(p, 128, dest="test_max_side")
    add_threads(p)
    for t in FORGET_TYPES:
        p.add_argument(f"--ut-{t}", metavar="CHECKPOINT", help=f"UT retrained without {t}")
    args = p.parse_args(argv)
    uts = {t: getattr(args, f"ut_{t}") for t in FORGET_TYPES if getattr(args, f"ut_{t}")}
    plan = build_plan(
        ReproduceOptions(
            out=args.out,
            steps=args.steps,
            test_max_side=args.test_max_side or None,
            threads=args.threads,
            checkpoint=args.checkpoint,
            ut=uts,
        )
    )
    names = [name for t in FORGET_TYPES for name, _ in _cells(t)]
    run_plan(plan, names)
    before = before_training_cost(plan)
    print()
    print(
        f"Unlearning on the cpu scale: BEFORE = {plan.model_path('before')} "
        f"({before.get('steps')} training steps at batch {before.get('batch_size')}, "
        f"{before.get('wall_time_s')} s). Forget PSNR: denoise is the mean of σ15/25/50."
    )
    q0 = json.loads((plan.cell_dir(names[0]) / "quality.json").read_text())
    print(f"Protocol: {q0['protocol_description']}. Test set: {q0['test_set']}.")
    print()
    print(
        "| forget | method | forget PSNR | vs BEFORE | vs UT | degraded input | "
        "retained tasks: PSNR change vs BEFORE (dB) | steps | steps / BEFORE's | wall (s) | "
        "wall / BEFORE's |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for t in FORGET_TYPES:
        for name, label in _cells(t):
            folder = plan.cell_dir(name)
            run = json.loads((folder / "run.json").read_text())
            q = json.loads((folder / "quality.json").read_text())
            print(_row(label, t, run, q, before))
    print()
    print(f"Run folders: {Path(args.out)}/<cell>/ (forgetir report <folder> for the full report).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
