"""Forgetting a split of images on the product's own path: the deletion request and the
content class, methods x scenarios x seeds.

Each cell is one ``forgetir unlearn`` run (:func:`forgetir.unlearn.run_unlearn`: the engine,
the guard and the checks the command uses; the method's recommended schedule unless
``--steps``) of a shipped scenario BEFORE with its shipped split:

- ``deletion``: ``shipped:mem-before`` forgets the 16 deleted images of ``mem-ut.split.json``;
  the figures are the run's own ``calibrated_membership`` check (``verify.json``; reference
  ``shipped:inpaint-before``, which saw no candidate; relearning and AIN skipped): per-image
  PSNR of the deleted, kept and held-out non-member images, the deleted − non-member gap and
  the calibrated attack's AUC, for the unlearned model and for UT (``shipped:mem-ut``);
- ``class``: ``shipped:class-before`` forgets the ``motif`` class of
  ``class-ut-motif.split.json`` (``--no-verify``); the figures are
  :func:`forgetir.membership.scenarios.class_skill` on the run's saved model: denoise σ25 and
  inpaint_4 on 32 held-out 64x64 images per class, paired per-image difference to BEFORE (the
  table in docs/results.md's content-class section uses the same function).

Cells are appended to ``--results`` as JSON lines as they finish and are not rerun.

Usage:
    PYTHONPATH=src python benchmarks/bench_splits.py [--scenarios deletion class]
        [--methods orbit-consistency finetune accurate-forgetting] [--seeds 0 1 2]
        [--steps N] [--patch-size 32] [--threads 1]
        [--results benchmarks/results/bench_splits.jsonl]
        [--table-only]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SCENARIOS = {
    "deletion": ("shipped:mem-before", "mem-ut", "shipped:mem-ut"),
    "class": ("shipped:class-before", "class-ut-motif", "shipped:class-ut-motif"),
}
METHODS = ("orbit-consistency", "finetune", "accurate-forgetting")
CLASSES = ("motif", "disks", "squares", "stripes")
CLASS_TASKS = ("denoise_25", "inpaint_4")
MIA_REFERENCE = "shipped:inpaint-before"  # the scenario models' parent: saw no candidate
BEFORE_STEPS = {"deletion": 600, "class": 400}  # the sidecars' training steps (cost)


def _deletion_figures(out: Path) -> dict[str, Any]:
    verify = json.loads((out / "verify.json").read_text())
    check = verify.get("checks", verify)["calibrated_membership"]
    figures = {}
    for label in ("BEFORE", "unlearned", "UT"):
        m = check["models"][label]
        figures[label] = {
            "psnr": m["psnr"],
            "gap_db": m["advantage_db"]["forgotten"],
            "auc": m["attack"]["forgotten"]["auc"],
        }
    return figures


def _class_figures(out: Path) -> dict[str, Any]:
    from forgetir.checkpoint import load_model
    from forgetir.checkpoint.shipped import resolve_checkpoint
    from forgetir.membership.scenarios import class_skill

    models = {
        "BEFORE": load_model(resolve_checkpoint(SCENARIOS["class"][0])).eval(),
        "unlearned": load_model(out / "model.safetensors").eval(),
    }
    skill = class_skill(models, CLASSES, CLASS_TASKS, n=32, size=64)
    return {
        c: {t: skill["unlearned"][c][t]["minus_first_db"]["mean"] for t in CLASS_TASKS}
        for c in CLASSES
    }


def cell_label(method: str, hparams: dict[str, Any] | None) -> str:
    """The method and its hyperparameters as the results name them."""
    return " ".join([method, *(f"{k}={v}" for k, v in (hparams or {}).items())])


def run_cell(
    scenario: str,
    method: str,
    seed: int,
    work: Path,
    given: dict[str, int | None],
    threads: int,
    hparams: dict[str, Any] | None = None,
) -> dict[str, Any]:
    from forgetir.checkpoint.shipped import shipped_split
    from forgetir.methods.recommend import method_and_schedule
    from forgetir.unlearn import UnlearnOptions, run_unlearn

    before, split_of, ut = SCENARIOS[scenario]
    # the cost goal: 5% of BEFORE's training steps, unless --steps says otherwise
    given = {**given, "steps": given.get("steps") or BEFORE_STEPS[scenario] * 5 // 100}
    _, schedule, _ = method_and_schedule(method, None, given)
    deletion = scenario == "deletion"
    opts = UnlearnOptions(
        method=method, hparams=dict(hparams or {}), seed=seed, verify=deletion, quiet=True,
        grids=False, threads=threads,
        relearn_steps=0, ain_max_steps=0, mia_reference=MIA_REFERENCE if deletion else None,
        **schedule,
    )  # fmt: skip
    label = cell_label(method, hparams)
    out = work / f"{scenario}-{label.replace(' ', '_')}-{seed}"
    t0 = time.time()
    run_unlearn(before, out, opts, split=str(shipped_split(split_of)), ut=ut)
    wall = time.time() - t0
    figures = _deletion_figures(out) if deletion else _class_figures(out)
    return {
        "scenario": scenario,
        "method": label,
        "seed": seed,
        **schedule,
        "cost_steps_pct": 100.0 * schedule["steps"] / BEFORE_STEPS[scenario],
        "wall_s": round(wall, 1),
        "figures": figures,
    }


def _ms(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:+.2f} (1 seed)"
    return f"{statistics.mean(values):+.2f} ± {statistics.stdev(values):.2f}"


def _ms_plain(values: list[float], fmt: str = ".3f") -> str:
    if len(values) == 1:
        return f"{values[0]:{fmt}} (1 seed)"
    return f"{statistics.mean(values):{fmt}} ± {statistics.stdev(values):{fmt}}"


def _cost(row: dict[str, Any]) -> str:
    return f"{row['steps']} × {row['batch_size']} ({row['cost_steps_pct']:.0f}%)"


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown tables (mean ± sd over seeds) of the deletion and the class cells."""
    out = []
    dele = [r for r in rows if r["scenario"] == "deletion"]
    if dele:
        ut = dele[0]["figures"]["UT"]
        before = dele[0]["figures"]["BEFORE"]
        out += [
            "Deletion request (`shipped:mem-before`, 16 deleted images): calibrated attack AUC "
            f"(deleted vs non-members; UT {ut['auc']:.3f}, BEFORE {before['auc']:.3f}), "
            f"deleted − non-member PSNR gap (UT {ut['gap_db']:+.2f} dB), and the kept "
            "training images' and the non-members' PSNR change vs BEFORE (dB).",
            "",
            "| method | steps × batch (% of BEFORE's steps) | seeds | AUC | AUC − UT | gap (dB) "
            "| gap − UT | kept − BEFORE | non-members − BEFORE |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for method in dict.fromkeys(r["method"] for r in dele):
            rs = [r for r in dele if r["method"] == method]
            f = [r["figures"]["unlearned"] for r in rs]
            auc = [x["auc"] for x in f]
            gap = [x["gap_db"] for x in f]
            kept = [x["psnr"]["kept"] - before["psnr"]["kept"] for x in f]
            non = [x["psnr"]["nonmembers"] - before["psnr"]["nonmembers"] for x in f]
            out.append(
                f"| {method} | {_cost(rs[0])} | {len(rs)} "
                f"| {_ms_plain(auc)} | {_ms([a - ut['auc'] for a in auc])} | {_ms(gap)} "
                f"| {_ms([g - ut['gap_db'] for g in gap])} | {_ms(kept)} | {_ms(non)} |"
            )
        out.append("")
    cls = [r for r in rows if r["scenario"] == "class"]
    if cls:
        out += [
            "Content class (`shipped:class-before` forgets `motif`): paired per-image PSNR "
            "change vs BEFORE (dB) on 32 held-out 64x64 images per class; UT "
            "(`class-ut-motif`) loses 1.80 dB on motif denoise σ25 (content-class section).",
            "",
            "| method | steps × batch (% of BEFORE's steps) | seeds | "
            + " | ".join(f"{c} {t}" for c in CLASSES for t in CLASS_TASKS)
            + " |",
            "|---|---|---|" + "---|" * (len(CLASSES) * len(CLASS_TASKS)),
        ]
        for method in dict.fromkeys(r["method"] for r in cls):
            rs = [r for r in cls if r["method"] == method]
            cells = [_ms([r["figures"][c][t] for r in rs]) for c in CLASSES for t in CLASS_TASKS]
            out.append(f"| {method} | {_cost(rs[0])} | {len(rs)} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenarios", nargs="+", choices=list(SCENARIOS), default=list(SCENARIOS))
    p.add_argument("--methods", nargs="+", default=list(METHODS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=None, help="default: 5%% of BEFORE's steps")
    # the scenario images are 32x32: a larger patch is not the images BEFORE was trained on
    p.add_argument("--patch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--hparams",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="method hyperparameters (one method at a time); named in the row",
    )
    p.add_argument("--results", type=Path, default=Path("benchmarks/results/bench_splits.jsonl"))
    p.add_argument("--table-only", action="store_true", help="print the table; run nothing")
    args = p.parse_args(argv)
    rows = []
    if args.results.is_file():
        rows = [json.loads(line) for line in args.results.read_text().splitlines() if line]
    if not args.table_only:
        import torch

        torch.set_num_threads(args.threads)
        from forgetir.config import parse_override

        hparams = dict(parse_override(h) for h in args.hparams)
        done = {(r["scenario"], r["method"], r["seed"]) for r in rows}
        args.results.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            for scenario in args.scenarios:
                for method in args.methods:
                    for seed in args.seeds:
                        if (scenario, cell_label(method, hparams), seed) in done:
                            continue
                        given = {"steps": args.steps, "patch_size": args.patch_size}
                        row = run_cell(
                            scenario, method, seed, Path(tmp), given, args.threads, hparams
                        )
                        rows.append(row)
                        with args.results.open("a") as f:
                            f.write(json.dumps(row) + "\n")
                        print(json.dumps(row), flush=True)
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
