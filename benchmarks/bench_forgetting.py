"""Does a method forget each degradation type? The table, on the product's own path.

Each cell (testbed, forget type, method, seed) is one ``forgetir unlearn`` run
(:func:`forgetir.unlearn.run_unlearn`: the engine, the guard and the registered checks the
command uses; the method's recommended schedule; the relearning check at 20 steps, no AIN),
of a shipped BEFORE (``promptir``: ``shipped:before``, 1500 training steps; ``adair``:
``shipped:adair-before``, 3000), judged against the shipped UT retrained without the type
(never used while unlearning). Its per-image PSNRs on the default test set (7 photos and 48
held-out dead leaves, every task synthesised) are kept, so the table can pair every figure per
image and decide over seeds:

- **forget − UT**: the unlearned model's forget PSNR minus UT's (denoise: σ15/25/50 pooled),
  mean ± sd over seeds, and the verdict of :func:`forgetir.checks.verdict.decide` on the
  per-image means over seeds (the interval widened by the spread over seeds);
- **worst retained Δ**: the retained task that lost most against BEFORE, paired per image,
  mean ± sd over seeds (the seed paper's tolerance is 0.1 dB);
- **relearning**: forget PSNR regained by 20 fine-tuning steps on 4 forget patches, minus what
  UT regains under the same attack (the relearning check), mean ± sd over seeds;
- **cost**: unlearning steps as a share of BEFORE's training steps.

Cells are appended to ``--results`` as they finish and are not rerun, so the job can stop and
resume; ``--table-only`` prints the table of what is there. ``--agreement`` prints instead how
often the UT-free verdict (paired against the degraded input, no UT) agrees with UT's, cell by
cell.

Usage:
    PYTHONPATH=src python benchmarks/bench_forgetting.py [--testbeds promptir adair]
        [--types dehaze derain denoise] [--methods ...] [--seeds 3] [--threads 1]
        [--results benchmarks/results/bench_forgetting.jsonl] [--table-only] [--agreement]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

TESTBEDS = {"promptir": "shipped:before", "adair": "shipped:adair-before"}
TYPES = ("dehaze", "derain", "denoise")
METHODS = ("accurate-forgetting", "finetune", "proxy-retrain", "proxy-retrain-guarded")
RELEARN_STEPS = 20


def _per_image(row: dict[str, Any], tasks: list[str]) -> dict[str, float]:
    return {
        f"{t}/{k}": round(float(v["psnr"]), 4) for t in tasks for k, v in row[t]["images"].items()
    }


def run_cell(
    testbed: str, forget: str, method: str, seed: int, work: Path, threads: int = 1
) -> dict[str, Any]:
    """One ``forgetir unlearn`` run and the per-image figures the table needs."""
    from forgetir.methods.recommend import method_and_schedule
    from forgetir.unlearn import UnlearnOptions, run_unlearn

    _, schedule, _ = method_and_schedule(method, [forget])
    # threads: a run otherwise takes the cores free when it starts, and two threads on a busy
    # core run ~10x slower. The relearning curve is scored at its start and end only.
    opts = UnlearnOptions(method=method, seed=seed, quiet=True, grids=False, threads=threads,
                          relearn_steps=RELEARN_STEPS, ain_max_steps=0,
                          verify_eval_every=RELEARN_STEPS, **schedule)  # fmt: skip
    out = work / f"{testbed}-{forget}-{method}-{seed}"
    t0 = time.time()
    run = run_unlearn(TESTBEDS[testbed], out, opts, forget=[forget])
    rows = json.loads((out / "quality.json").read_text())["rows"]
    verify = json.loads((out / "verify.json").read_text())
    forget_tasks, retain_tasks = list(run["forget_tasks"]), list(run["retain_tasks"])
    relearn = verify["relearn"]["runs"]
    return {
        "testbed": testbed,
        "forget": forget,
        "method": method,
        "seed": seed,
        "schedule": schedule,
        "step_fraction": verify["cost"]["step_fraction"],
        "test_set": verify["test_set"],
        "wall_s": round(time.time() - t0, 1),
        "verdict": verify["verdict"]["verdict"],
        "forget_rows": {
            label: _per_image(rows[label], forget_tasks) for label in ("unlearned", "UT", "input")
        },
        "retain_rows": {
            label: _per_image(rows[label], retain_tasks) for label in ("unlearned", "BEFORE")
        },
        "relearn_db": {k: relearn[k]["recovered_db"] for k in ("unlearned", "UT")},
    }


def run_missing(
    plan: list[tuple[str, str, str, int]],
    run: Any,
    results: Path,
    done: list[dict[str, Any]],
    threads: int,
    verdict: Any,
) -> None:
    """Run the cells of ``plan`` (testbed, forget type, method, seed) that ``done`` lacks, in
    order, with ``run(testbed, forget, method, seed, work, threads)``; append each to
    ``results`` (JSON lines) and ``done`` as it finishes, so a stopped job resumes. Shared with
    bench_verdicts.py."""
    keys = {(c["testbed"], c["forget"], c["method"], c["seed"]) for c in done}
    results.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for testbed, forget, method, seed in plan:
            if (testbed, forget, method, seed) in keys:
                continue
            cell = run(testbed, forget, method, seed, Path(tmp), threads)
            print(
                f"{testbed} {forget} {method} seed {seed}: {verdict(cell)} "
                f"({cell['wall_s']:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
            with results.open("a") as f:
                f.write(json.dumps(cell) + "\n")
            done.append(cell)


def _mean_sd(values: list[float]) -> str:
    a = np.asarray(values, float)
    return f"{a.mean():+.2f} ± {a.std(ddof=1):.2f}" if len(a) > 1 else f"{a.mean():+.2f}"


def _worst_retained(cell: dict[str, Any]) -> tuple[str, float]:
    u, b = cell["retain_rows"]["unlearned"], cell["retain_rows"]["BEFORE"]
    per_task: dict[str, list[float]] = defaultdict(list)
    for key, v in u.items():
        per_task[key.split("/")[0]].append(v - b[key])
    return min(((t, float(np.mean(d))) for t, d in per_task.items()), key=lambda x: x[1])


def summarise(cells: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures of one (testbed, type, method) over its seeds, with the paired verdict."""
    from forgetir.checks.verdict import decide

    seeds = sorted(c["seed"] for c in cells)
    ut = cells[0]["forget_rows"]["UT"]
    images = list(ut)
    per_seed = np.asarray([[c["forget_rows"]["unlearned"][k] for k in images] for c in cells])
    mean_rows = dict(zip(images, per_seed.mean(0), strict=True))
    before = cells[0]["retain_rows"]["BEFORE"]
    retained_mean = {
        k: float(np.mean([c["retain_rows"]["unlearned"][k] for c in cells])) for k in before
    }
    retain = defaultdict(lambda: ({}, {}))
    for k, v in retained_mean.items():
        retain[k.split("/")[0]][0][k] = v
        retain[k.split("/")[0]][1][k] = before[k]
    v = decide(mean_rows, ut, retain=dict(retain), seeds=list(per_seed.mean(1)))
    ut_mean = float(np.mean(list(ut.values())))
    worst = [_worst_retained(c) for c in cells]
    return {
        "seeds": seeds,
        "forget_vs_ut": _mean_sd([float(m) - ut_mean for m in per_seed.mean(1)]),
        "interval": f"[{v['forget']['lo']:+.2f}, {v['forget']['hi']:+.2f}]",
        "verdict": v["verdict"],
        "worst_retained": _mean_sd([w for _, w in worst]),
        "worst_task": Counter(t for t, _ in worst).most_common(1)[0][0],  # over the seeds
        "retained_damaged": v["retained_damaged"],
        "relearn_vs_ut": _mean_sd(
            [c["relearn_db"]["unlearned"] - c["relearn_db"]["UT"] for c in cells]
        ),
        "cost": f"{100 * cells[0]['step_fraction']:.1f}%",
        "n": len(images),
    }


def table(cells: list[dict[str, Any]]) -> str:
    """One row per (testbed, forget type, method): mean ± sd over seeds and the verdict."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for c in cells:
        groups[(c["testbed"], c["forget"], c["method"])].append(c)
    lines = [
        "| testbed | forget | method | seeds | forget − UT (dB) | 90% interval | verdict "
        "| worst retained Δ (dB) | retained damaged | relearning − UT's (dB) | cost |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    order = {t: i for i, t in enumerate(TESTBEDS)} | {t: i for i, t in enumerate(TYPES)}
    for key in sorted(groups, key=lambda k: (order.get(k[0], 9), order.get(k[1], 9), k[2])):
        s = summarise(groups[key])
        lines.append(
            f"| {key[0]} | {key[1]} | {key[2]} | {len(s['seeds'])} | {s['forget_vs_ut']} | "
            f"{s['interval']} | {s['verdict']} | {s['worst_retained']} ({s['worst_task']}) | "
            f"{', '.join(s['retained_damaged']) or 'none'} | {s['relearn_vs_ut']} | {s['cost']} |"
        )
    n = sorted({summarise(g)["n"] for g in groups.values()}) if groups else []
    lines += [
        "",
        f"Paired per image over {', '.join(map(str, n))} forget-test images; mean ± sd over "
        "seeds; the verdict is decided on the per-image means over seeds with the interval "
        "widened by the spread over seeds (margin ±0.5 dB; retained: non-inferiority at 0.1 dB).",
    ]
    return "\n".join(lines)


def glance(cells: list[dict[str, Any]]) -> str:
    """README's summary: one row per (forget type, method), a verdict per testbed."""
    groups: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for c in cells:
        groups[(c["forget"], c["method"])][c["testbed"]].append(c)
    beds = [b for b in TESTBEDS if any(b in g for g in groups.values())]
    lines = [
        "| forget | method | " + " | ".join(f"{b}-tiny" for b in beds) + " |",
        "|---|---|" + "---|" * len(beds),
    ]
    rank = {t: i for i, t in enumerate(TYPES)}
    for forget, method in sorted(groups, key=lambda k: (rank.get(k[0], 9), k[1])):
        row = []
        for b in beds:
            if b not in groups[(forget, method)]:
                row.append("–")
                continue
            s = summarise(groups[(forget, method)][b])
            damaged = f", damaged: {', '.join(s['retained_damaged'])}" if (
                s["retained_damaged"]
            ) else ""  # fmt: skip
            row.append(f"{s['verdict']} ({s['forget_vs_ut']} dB{damaged})")
        lines.append(f"| {forget} | `{method}` | " + " | ".join(row) + " |")
    return "\n".join(lines)


def agreement(cells: list[dict[str, Any]]) -> str:
    """Cell by cell: the verdict with UT and the UT-free verdict (paired against the input)."""
    from forgetir.checks.verdict import decide

    lines = [
        "| testbed | forget | method | seed | verdict vs UT | verdict UT-free | agree |",
        "|---|---|---|---|---|---|---|",
    ]
    agree = unsafe = 0
    for c in cells:
        rows = c["forget_rows"]
        with_ut = decide(rows["unlearned"], rows["UT"])["verdict"]
        free = decide(rows["unlearned"], rows["input"], basis="input")["verdict"]
        agree += with_ut == free
        unsafe += free == "forgotten" and with_ut == "not forgotten"
        lines.append(
            f"| {c['testbed']} | {c['forget']} | {c['method']} | {c['seed']} | {with_ut} | "
            f"{free} | {'yes' if with_ut == free else '**no**'} |"
        )
    lines += [
        "",
        f"The UT-free verdict agrees with UT's in {agree}/{len(cells)} cells; it says "
        f'"forgotten" where UT\'s says "not forgotten" in {unsafe}.',
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--testbeds", nargs="+", default=list(TESTBEDS), choices=list(TESTBEDS))
    p.add_argument("--types", nargs="+", default=list(TYPES), choices=list(TYPES))
    p.add_argument("--methods", nargs="+", default=list(METHODS))
    p.add_argument("--seeds", type=int, default=3, help="seeds 0 .. N-1 of every cell")
    p.add_argument("--first-seed", type=int, default=0, help="skip the seeds below this one")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--results", default="benchmarks/results/bench_forgetting.jsonl")
    p.add_argument("--table-only", action="store_true", help="print the table of --results")
    view = p.add_mutually_exclusive_group()
    view.add_argument("--agreement", action="store_true", help="print the UT-free agreement")
    view.add_argument("--glance", action="store_true", help="print README's summary table")
    args = p.parse_args(argv)
    results = Path(args.results)
    done = [json.loads(line) for line in results.read_text().splitlines()] if (
        results.is_file()
    ) else []  # fmt: skip
    if not args.table_only:
        import torch

        torch.set_num_threads(args.threads)
        plan = [
            (testbed, forget, method, seed)
            for seed in range(args.first_seed, args.seeds)
            for testbed in args.testbeds
            for forget in args.types
            for method in args.methods
        ]
        run_missing(plan, run_cell, results, done, args.threads, lambda c: c["verdict"])
    print(agreement(done) if args.agreement else glance(done) if args.glance else table(done))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
