"""Does a relearning defence hold against attacks other than the one it was screened on?

``bench_forgetting.py`` scores relearning with one attack: 20 Adam steps (lr 2e-4) on 4 forget
patches. ``proxy-retrain``'s relearning guard was screened against that attack, so this script
attacks the same unlearned models (and UT, the reference pace) in four ways:

- the benchmark's attack (20 steps, lr 2e-4, the same 4 patches);
- longer (100 steps), and a 5x learning rate (20 steps, lr 1e-3), on those patches;
- more and other data (50 steps, lr 2e-4, on 16 other forget patches).

It prints, per forget type, mean ± sd over seeds of the forget PSNR each attack regains on the
held-out dead-leaves test set, next to what it regains on UT. Cells (method, type, seed) are
appended to ``--results`` as they finish and are not rerun.

Run: PYTHONPATH=src python benchmarks/bench_relearning_attacks.py --threads 1 [--testbed adair]
     [--seeds 3] [--types dehaze] [--results runs/bench-relearning/cells.jsonl]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch
from bench_forgetting import (
    METHODS,
    TESTBEDS,
    add_set_argument,
    parse_set,
    read_cells,
    testbed_options,
    variant_label,
)

from forgetir.cells import (
    FORGET_TYPES,
    CellOptions,
    attack_pairs,
    cell_model,
    relearn_samples,
    replace_opts,
    unlearn_copy,
)
from forgetir.checks.verify import relearn
from forgetir.runs.seeds import format_mean_sd

GUARDED_LABEL = "proxy-retrain + relearning guard"
LABELS = ("proxy-retrain (ours)", GUARDED_LABEL)
# name -> (steps, lr, first patch, number of patches) of the forget set (BEFORE's own data)
ATTACKS: dict[str, tuple[int, float, int, int]] = {
    "20 steps, lr 2e-4, 4 patches (the benchmark's)": (20, 2e-4, 0, 4),
    "100 steps, lr 2e-4, same 4 patches": (100, 2e-4, 0, 4),
    "20 steps, lr 1e-3, same 4 patches": (20, 1e-3, 0, 4),
    "50 steps, lr 2e-4, 16 other patches": (50, 2e-4, 4, 16),
}


def attack_all(model: torch.nn.Module, forget_type: str, opts: CellOptions) -> dict[str, float]:
    """Forget PSNR (dB) each attack of ATTACKS regains on the dead-leaves test set."""
    evalset = attack_pairs(forget_type, opts)
    out = {}
    for name, (steps, lr, first, n) in ATTACKS.items():
        pairs = relearn_samples(forget_type, opts, first, n)
        run = relearn(model, pairs, steps=steps, lr=lr, eval_set=evalset, eval_every=steps)
        out[name] = float(run["recovered_db"])
    return out


def run_all(args: argparse.Namespace, opts: CellOptions) -> list[dict[str, Any]]:
    path = Path(args.results)
    path.parent.mkdir(parents=True, exist_ok=True)
    done = read_cells(path)
    have = {(c["label"], c["forget_type"], c["seed"]) for c in done}
    extra = parse_set(args.set)
    variant = variant_label(GUARDED_LABEL, extra)
    labels = [variant] if extra else list(LABELS)
    todo = [("UT", t, 0) for t in args.types]
    todo += [(lab, t, s) for s in range(args.seeds) for t in args.types for lab in labels]
    for label, t, seed in todo:
        if (label, t, seed) in have:
            continue
        if label == "UT":  # deterministic: one run stands for every seed
            model = cell_model(opts.ut[t])
        else:
            method, target, hp, clean = METHODS[label if label in METHODS else GUARDED_LABEL]
            hp = {**hp, **(extra if label == variant else {})}
            o = replace_opts(opts, target=target, hparams=hp, clean_source=clean)
            model, _ = unlearn_copy(method, t, seed, o)
        cell = {
            "label": label,
            "forget_type": t,
            "seed": seed,
            "gain_db": attack_all(model, t, opts),
        }
        with path.open("a") as f:
            f.write(json.dumps(cell) + "\n")
        done.append(cell)
        print(f"done {label} / {t} / seed {seed}", flush=True)
    return done


def table(cells: list[dict[str, Any]], types: list[str]) -> str:
    # Our two methods first, then any screened variants, then UT.
    labels = list(dict.fromkeys([*LABELS, *(c["label"] for c in cells if c["label"] != "UT")]))
    lines = [
        "| forget | attack | " + " | ".join(labels) + " | UT |",
        "|---|---|" + "---|" * (len(labels) + 1),
    ]
    for t in types:
        ut = [c for c in cells if c["label"] == "UT" and c["forget_type"] == t]
        for name in ATTACKS:
            row = []
            for label in labels:
                mine = [c for c in cells if c["label"] == label and c["forget_type"] == t]
                row.append(format_mean_sd([c["gain_db"][name] for c in mine]) if mine else "–")
            u = f"{ut[0]['gain_db'][name]:.2f}" if ut else "–"
            lines.append(f"| {t} | {name} | " + " | ".join(row) + f" | {u} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--types", nargs="+", default=["dehaze"], choices=list(FORGET_TYPES))
    p.add_argument("--testbed", default="promptir", choices=list(TESTBEDS))
    p.add_argument("--results", default="runs/bench-relearning/cells.jsonl")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--table-only", action="store_true", help="print the table of --results")
    add_set_argument(
        p, "attack a variant of the guarded method instead (e.g. guard_depth=4 guard_step=1e-3)"
    )
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    opts = testbed_options(args.testbed, None)
    path = Path(args.results)
    if args.table_only:
        cells = read_cells(path)
    else:
        cells = run_all(args, opts)
    print(
        f"\nshipped testbed: {TESTBEDS[args.testbed][2]}; unlearned for {opts.steps} steps; "
        "forget PSNR (dB, promptir protocol) each relearning attack (Adam, full batch, L1) "
        "regains on the 8 held-out dead-leaves test images; mean ± sd over seeds (UT: one "
        "deterministic run).\n"
    )
    print(table(cells, args.types))
    return 0


if __name__ == "__main__":
    sys.exit(main())
