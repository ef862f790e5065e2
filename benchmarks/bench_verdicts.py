"""The paired verdict on the product's own path, with UT and without (UT-free), cell by cell.

Each cell is one ``forgetir unlearn`` run (:func:`forgetir.unlearn.run_unlearn`, the engine
and guard the command uses; ``--no-verify``, the method's recommended schedule) of a shipped
BEFORE, forgetting one degradation type; its per-image quality rows (the default test set:
7 photos and 48 held-out dead leaves) then give two verdicts from
:func:`forgetir.checks.verdict.decide`: paired against the shipped UT, and UT-free (paired
against the degraded input). The table says how often they agree and whether the UT-free
verdict ever says "forgotten" where UT's says "not forgotten". Cells are appended to
``--results`` as they finish and are not rerun.

Usage:
    PYTHONPATH=src python benchmarks/bench_verdicts.py [--testbeds promptir adair]
        [--types dehaze derain denoise] [--methods ...] [--seeds 1] [--threads 1]
        [--results benchmarks/results/bench_verdicts.jsonl] [--table-only]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

TESTBEDS = {"promptir": "shipped:before", "adair": "shipped:adair-before"}
TYPES = ("dehaze", "derain", "denoise")
METHODS = ("accurate-forgetting", "finetune", "proxy-retrain", "proxy-retrain-guarded")


def _per_image(row: dict[str, Any], tasks: list[str]) -> dict[str, float]:
    return {f"{t}/{k}": float(v["psnr"]) for t in tasks for k, v in row[t]["images"].items()}


def run_cell(
    testbed: str, forget: str, method: str, seed: int, work: Path, threads: int = 1
) -> dict[str, Any]:
    from forgetir.checks.verdict import decide
    from forgetir.methods.recommend import method_and_schedule
    from forgetir.unlearn import UnlearnOptions, run_unlearn

    _, schedule, _ = method_and_schedule(method, [forget])
    # threads: a run otherwise takes the cores free when it starts, and two threads on a busy
    # core run ~10x slower.
    opts = UnlearnOptions(method=method, seed=seed, verify=False, quiet=True, grids=False,
                          threads=threads, **schedule)  # fmt: skip
    out = work / f"{testbed}-{forget}-{method}-{seed}"
    t0 = time.time()
    run = run_unlearn(TESTBEDS[testbed], out, opts, forget=[forget])
    quality = json.loads((out / "quality.json").read_text())
    rows = quality["rows"]
    forget_tasks, retain_tasks = list(run["forget_tasks"]), list(run["retain_tasks"])
    unlearned = _per_image(rows["unlearned"], forget_tasks)
    retain = {
        t: (_per_image(rows["unlearned"], [t]), _per_image(rows["BEFORE"], [t]))
        for t in retain_tasks
    }
    with_ut = decide(unlearned, _per_image(rows["UT"], forget_tasks), retain=retain)
    ut_free = decide(unlearned, _per_image(rows["input"], forget_tasks), basis="input")
    return {
        "testbed": testbed,
        "forget": forget,
        "method": method,
        "seed": seed,
        "steps": opts.steps,
        "n_images": with_ut["forget"]["n"],
        "test_set": quality.get("test_set"),
        "wall_s": time.time() - t0,
        "ut": {k: with_ut["forget"][k] for k in ("mean", "lo", "hi")},
        "input": {k: ut_free["forget"][k] for k in ("mean", "lo", "hi")},
        "verdict_ut": with_ut["verdict"],
        "verdict_ut_free": ut_free["verdict"],
        "retained_damaged": with_ut["retained_damaged"],
    }


def _rederive(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The verdicts again from each cell's recorded intervals, with today's thresholds (so the
    table follows a change of margin without rerunning the cells)."""
    from forgetir.checks.verdict import THRESHOLDS as th
    from forgetir.checks.verdict import forget_decision

    out = []
    for c in cells:
        c = dict(c)
        for key, field, low in (
            ("ut", "verdict_ut", -th.forget_margin_db),
            ("input", "verdict_ut_free", -th.ut_free_band_db),
        ):
            stat = {**c[key], "sd": float("nan")}
            c[field] = forget_decision(stat, low, th.forget_margin_db, None, th)[0]
        out.append(c)
    return out


def table(cells: list[dict[str, Any]]) -> str:
    """The agreement table of the cells (verdicts re-derived with today's thresholds), and its
    summary."""
    cells = _rederive(cells)
    lines = [
        "| testbed | forget | method | vs UT (dB, 90% interval) | verdict vs UT | vs input (dB) "
        "| verdict UT-free | agree | retained damaged |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        u, i = c["ut"], c["input"]
        agree = c["verdict_ut"] == c["verdict_ut_free"]
        lines.append(
            f"| {c['testbed']} | {c['forget']} | {c['method']} | {u['mean']:+.2f} "
            f"[{u['lo']:+.2f}, {u['hi']:+.2f}] | {c['verdict_ut']} | {i['mean']:+.2f} | "
            f"{c['verdict_ut_free']} | {'yes' if agree else '**no**'} | "
            f"{', '.join(c['retained_damaged']) or 'none'} |"
        )
    n = len(cells)
    agree = sum(c["verdict_ut"] == c["verdict_ut_free"] for c in cells)
    unsafe = sum(
        c["verdict_ut_free"] == "forgotten" and c["verdict_ut"] == "not forgotten" for c in cells
    )
    images = sorted({c["n_images"] for c in cells})
    lines += [
        "",
        f"{n} cells (seed 0; {', '.join(map(str, images))} paired forget-test images per cell): "
        f"the UT-free verdict agrees with the UT verdict in {agree}/{n} "
        f'({agree / max(n, 1):.0%}); it says "forgotten" where the UT verdict says "not '
        f'forgotten" in {unsafe} cell(s).',
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--testbeds", nargs="+", default=list(TESTBEDS), choices=list(TESTBEDS))
    p.add_argument("--types", nargs="+", default=list(TYPES), choices=list(TYPES))
    p.add_argument("--methods", nargs="+", default=list(METHODS))
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--results", default="benchmarks/results/bench_verdicts.jsonl")
    p.add_argument("--table-only", action="store_true", help="print the table of --results")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    results = Path(args.results)
    done = [json.loads(line) for line in results.read_text().splitlines()] if (
        results.is_file()
    ) else []  # fmt: skip
    if not args.table_only:
        # Run as a script, this folder is on sys.path: one resumable loop for both benchmarks.
        from bench_forgetting import run_missing

        plan = [
            (testbed, forget, method, seed)
            for testbed in args.testbeds
            for forget in args.types
            for method in args.methods
            for seed in range(args.seeds)
        ]
        verdicts = lambda c: f"{c['verdict_ut']} / UT-free {c['verdict_ut_free']}"  # noqa: E731
        run_missing(plan, run_cell, results, done, args.threads, verdicts)
    print(table(done))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
