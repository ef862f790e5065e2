"""The tables of a grid: ``summary.md`` / ``summary.json`` in the seed paper's layout (the cells'
results are read by :mod:`.results`, the Markdown written by :mod:`.summary_md`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from forgetir.atomic import atomic_json, atomic_write
from forgetir.reproduce.grid import (
    CLASS_TASKS,
    CONTENT_CLASSES,
    FORGET_CLASS,
    FORGET_TYPES,
    SUMMARY_JSON,
    SUMMARY_MD,
    Cell,
    Plan,
)
from forgetir.reproduce.results import (
    before_training_cost,
    cell_record,
    mean_psnr,
    seed_entries,
    worst_retain_change,
)
from forgetir.reproduce.summary_md import format_summary

TABLES: dict[str, tuple[str, str]] = {
    "main": (
        "Forgetting each degradation type (paper Tables 2/3)",
        "accurate-forgetting with its published defaults (1:1:1, Adam, lr 2e-4), with the "
        "paper's collapse target and with the retrain-like target; finetune on the retain data "
        "for the same steps is the continue-training control.",
    ),
    "ablation": ("Ablation (paper Table 4)", "accurate-forgetting without its terms."),
    "sweep-lr": ("Learning rate (paper Fig. 3a / Table 3c)", "lr 2e-4 is the main cell."),
    "sweep-batch": (
        "Batch size (paper Fig. 3b / Table 3d)",
        "steps scaled so that every run sees the same number of samples as the main cell "
        "(the paper trains a fixed 2 epochs); the batch-8 row is the main cell.",
    ),
    "sweep-ratio": (
        "Weight ratio w_adv : w_ul (paper Table 5, W_adv : W_ins)",
        "w_ul = 1; 1:1 is the main cell.",
    ),
    "methods": (
        "Every registered method on the dehaze split",
        "published defaults, collapse target, same steps and batch; accurate-forgetting is "
        "main/dehaze-collapse and finetune (the continue-training control) "
        "control/dehaze-finetune; retrain is training from scratch on the retain data cut to "
        "the same steps (what this budget buys without the BEFORE weights).",
    ),
    "instances": (
        "Deletion request: forget 16 training images",
        "columns: fixed patches of the forgotten images (forget) and of retained training "
        "images (retain); membership inference in the verification notes.",
    ),
    "class": (
        "Content-class forgetting (second seed's setting)",
        f"{', '.join(CLASS_TASKS)} on dead leaves of classes {', '.join(CONTENT_CLASSES)}; forget "
        f"{FORGET_CLASS}; columns: patches of forget-class / retained-class training images.",
    ),
}


# Tables in which the main collapse cell of each forget type is a row (the default point),
# and its label there.
_MAIN_POINT: dict[str, Callable[[Cell], str]] = {
    "ablation": lambda c: f"{c.forget_type}: full method (adv + instance-wise)",
    "sweep-lr": lambda c: f"{c.forget_type}: lr 2e-4",
    "sweep-batch": lambda c: (
        f"{c.forget_type}: batch {c.options['batch_size']}"
        + ("" if c.epochs else f" x {c.options['steps']} steps")
        + " (main cell)"
    ),
    "sweep-ratio": lambda c: f"{c.forget_type}: w_adv:w_ul 1:1",
}


def _type_order(c: Cell) -> int:
    return FORGET_TYPES.index(c.forget_type) if c.forget_type in FORGET_TYPES else -1


def _table_rows(plan: Plan, table: str, recs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``{row label: {task: metrics}}`` of one summary table, and the cells it used."""
    members = [c for c in plan.cells if c.table == table]
    label = {c.name: c.label for c in members}
    if table in _MAIN_POINT:
        mains = [
            c for c in plan.cells if c.name.startswith("main/") and c.name.endswith("-collapse")
        ]
        label.update({c.name: _MAIN_POINT[table](c) for c in mains})
        members = mains + members
    if table == "methods":
        first = [plan.cell("main/dehaze-collapse"), plan.cell("control/dehaze-finetune")]
        label.update(
            {c.name: f"{c.options['method']} (collapse, published defaults)" for c in first}
        )
        label[first[1].name] = "finetune (continue-training control)"
        members = first + members
    members = [c for c in members if recs[c.name].get("quality")]
    if table != "methods":
        members.sort(key=lambda c: (_type_order(c), plan.cells.index(c)))
    rows: dict[str, Any] = {}
    if members:
        q = recs[members[0].name]["quality"]
        rows["degraded input"], rows["BEFORE"] = q.get("input"), q.get("BEFORE")
    for c in members:
        ut = recs[c.name]["quality"].get("UT")
        what = c.forget_type or {"class": FORGET_CLASS, "instances": "forget images"}.get(table)
        if ut and what and f"UT (no {what})" not in rows:
            rows[f"UT (no {what})"] = ut
    for c in members:
        rows[label[c.name]] = recs[c.name]["quality"].get("unlearned")
    return {"rows": {k: v for k, v in rows.items() if v}, "cells": [c.name for c in members]}


def _headline_rows(recs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per forget type: forget PSNR of input / BEFORE / UT / each main and control cell, and
    the worst retained-task change of each."""
    out = []
    for t in FORGET_TYPES:
        names = [f"main/{t}-collapse", f"main/{t}-retrain-like", f"control/{t}-finetune"]
        done = [recs[n] for n in names if n in recs and recs[n].get("quality")]
        if not done:
            continue
        rows, forget = done[0]["quality"], done[0]["forget_tasks"]
        entry: dict[str, Any] = {"forget": t, "tasks": forget}
        for key in ("input", "BEFORE", "UT"):
            if rows.get(key):
                entry[key] = mean_psnr(rows[key], forget)
        for r in done:
            entry[r["name"]] = {
                "forget_psnr": mean_psnr(r["quality"]["unlearned"], forget),
                "worst_retain_change_db": worst_retain_change(
                    r["quality"], r.get("retain_tasks") or []
                ),
            }
        out.append(entry)
    return out


def build_summary(plan: Plan) -> dict[str, Any]:
    """Every finished cell's numbers gathered into the seed paper's tables (a JSON dict)."""
    before = before_training_cost(plan)
    recs = {c.name: cell_record(plan, c, before) for c in plan.cells}
    tables: dict[str, Any] = {}
    for key, (title, text) in TABLES.items():
        t = _table_rows(plan, key, recs)
        if not t["rows"]:
            continue
        q = recs[t["cells"][0]] if t["cells"] else {}
        sources = {recs[n].get("test_set") for n in t["cells"]}
        tables[key] = {
            "title": title,
            "text": text,
            "protocol": q.get("protocol"),
            "test_set": q.get("test_set"),
            "mixed_test_sets": len(sources) > 1,
            "rows": t["rows"],
            "cells": t["cells"],
        }
    return {
        "format": "forgetir-reproduce",
        "version": 1,
        "scale": plan.scale,
        "out": str(plan.out),
        "before_training": before,
        "notes": plan.notes,
        "tables": tables,
        "cells": recs,
        "sweeps": sweep_entries(plan, recs),
        "seeds": seed_entries(plan),
        "headline": _headline_rows(recs),
        "relearn_steps": plan.options.relearn_steps,
        "done": sum(1 for r in recs.values() if r["done"]),
        "total_cells": len(recs),
        "cell_seconds_total": round(
            sum(float(r.get("cell_seconds") or 0) for r in recs.values()), 1
        ),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def sweep_entries(plan: Plan, recs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """sweeps.json entries ``{param, value, forget, psnr: {task: dB}, ssim, cell}`` of every
    finished sweep cell, with the main cell as the default point of each parameter."""
    out: list[dict[str, Any]] = []
    for c in plan.cells:
        q = recs[c.name].get("quality")
        if not q or not q.get("unlearned"):
            continue
        points: list[tuple[str, float]] = []
        if c.sweep:
            points.append(c.sweep)
        elif c.name.startswith("main/") and c.name.endswith("-collapse"):
            o = c.options
            points += [("lr", 2e-4), ("batch_size", o["batch_size"]), ("w_adv (w_ul = 1)", 1.0)]
        for param, value in points:
            u = q["unlearned"]
            out.append(
                {
                    "param": param,
                    "value": value,
                    "forget": c.forget_type,
                    "psnr": {t: m["psnr"] for t, m in u.items()},
                    "ssim": {t: m["ssim"] for t, m in u.items()},
                    "cell": c.name,
                }
            )
    return out


def _write_sweeps(plan: Plan, entries: list[dict[str, Any]]) -> None:
    atomic_json(plan.out / "sweeps.json", entries)
    for t in FORGET_TYPES:
        main = plan.cell_dir(f"main/{t}-collapse")
        mine = [e for e in entries if e["forget"] == t]
        if (main / "run.json").is_file() and len(mine) > 3:
            atomic_json(main / "sweeps.json", mine)


def write_summary(plan: Plan, docs: str | Path | None = None) -> dict[str, Any]:
    """Write ``summary.json``, ``summary.md`` and ``sweeps.json`` (and copy the Markdown to
    ``docs``); return the summary."""
    summary = build_summary(plan)
    _write_sweeps(plan, summary["sweeps"])
    atomic_json(plan.out / SUMMARY_JSON, summary, default=str)
    text = format_summary(summary)
    atomic_write(plan.out / SUMMARY_MD, text)
    if docs:
        atomic_write(Path(docs), text)
    return summary
