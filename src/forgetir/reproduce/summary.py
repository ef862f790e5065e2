"""The tables of a grid: ``summary.md`` / ``summary.json`` in the seed paper's layout."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
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
    _hms,
    _resolved,
)

# ------------------------------------------------------------------------------ results


def _numbers(value: Any) -> Any:
    """JSON as written by forgetir ("inf"/"nan" strings for non-finite floats) back to floats."""
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    if value in ("inf", "-inf", "nan"):
        return float(value)
    return value


def _read(path: Path) -> Any:
    try:
        return _numbers(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def _quality(plan: Plan, cell: Cell) -> dict[str, Any] | None:
    return _read(plan.cell_dir(cell) / "quality.json")


def _mean_psnr(metrics: dict[str, Any] | None, tasks: Sequence[str]) -> float:
    vals = [float(metrics[t]["psnr"]) for t in tasks if metrics and t in metrics]
    return sum(vals) / len(vals) if vals else float("nan")


def _worst_retain_change(rows: dict[str, Any], retain: Sequence[str]) -> float | None:
    before, after = rows.get("BEFORE"), rows.get("unlearned")
    changes = [
        float(after[t]["psnr"]) - float(before[t]["psnr"])
        for t in retain
        if before and after and t in before and t in after
    ]
    return min(changes) if changes else None


def before_training_cost(plan: Plan) -> dict[str, Any]:
    """BEFORE's training steps and wall time (its sidecar), for the cost fractions."""
    from forgetir.checkpoint import read_sidecar

    try:
        path = _resolved(plan, "before")
        meta = read_sidecar(path)
    except Exception as e:  # a published .ckpt has no sidecar: the cost stays unknown
        return {"note": f"BEFORE's training cost is unknown ({type(e).__name__}: {e})"}
    train = ((meta.get("config") or {}).get("train") or {}).get("batch_size")
    return {
        "path": str(path),
        "steps": meta.get("step"),
        "wall_time_s": meta.get("wall_time"),
        "batch_size": train,
        "command": meta.get("command"),
    }


def _frac(a: Any, b: Any) -> float | None:
    try:
        return float(a) / float(b) if a is not None and b else None
    except (TypeError, ValueError):
        return None


def _cell_record(plan: Plan, cell: Cell, before: dict[str, Any]) -> dict[str, Any]:
    run = _read(plan.cell_dir(cell) / "run.json")
    rec: dict[str, Any] = {
        "name": cell.name,
        "table": cell.table,
        "label": cell.label,
        "what": cell.describe(),
        "folder": str(plan.cell_dir(cell)),
        "done": run is not None,
    }
    if run is None:
        return rec
    rec.update(
        steps=run.get("steps"),
        wall_time_s=run.get("wall_time_s"),
        cell_seconds=run.get("cell_seconds"),
        stopped_early=run.get("stopped_early"),
    )
    if cell.kind == "unlearn":
        batch = (run.get("options") or {}).get("batch_size")
        rec.update(
            batch_size=batch,
            step_fraction=_frac(run.get("steps"), before.get("steps")),
            time_fraction=_frac(run.get("wall_time_s"), before.get("wall_time_s")),
            sample_fraction=_frac(
                (run.get("steps") or 0) * (batch or 0),
                (before.get("steps") or 0) * (before.get("batch_size") or 0),
            ),
            forget_tasks=run.get("forget_tasks"),
            retain_tasks=run.get("retain_tasks"),
        )
        q = _quality(plan, cell)
        if q is not None:
            rec.update(quality=q["rows"], protocol=q.get("protocol"), test_set=q.get("test_set"))
        v = _read(plan.cell_dir(cell) / "verify.json")
        if v is not None:
            rec["verify"] = _verify_figures(v)
    return rec


def _verify_figures(v: dict[str, Any]) -> dict[str, Any]:
    """The key verification numbers of a cell (the full record stays in its verify.json)."""
    out: dict[str, Any] = {}
    og = v.get("output_gap") or {}
    out["output_gap"], out["output_gap_before"] = og.get("value"), og.get("before_value")
    rel = v.get("relearn") or {}
    for label, r in (rel.get("runs") or {}).items():
        out[f"relearn_recovered_db_{label}"] = r.get("recovered_db")
    ain = v.get("anamnesis") or {}
    out["ain"], out["ain_verdict"] = ain.get("ain"), ain.get("verdict")
    mia = (v.get("membership") or {}).get("models") or {}
    for label, m in mia.items():
        keys = ("forgotten_member_rate", "nonmember_member_rate", "forgotten_vs_nonmembers_auc")
        out[f"mia_{label}"] = {k: m.get(k) for k in ("attack_auc", *keys)}
    return out


def _fmt(x: Any, digits: int = 2, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if isinstance(x, str):
        return x
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def _pct(x: Any) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


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
                entry[key] = _mean_psnr(rows[key], forget)
        for r in done:
            entry[r["name"]] = {
                "forget_psnr": _mean_psnr(r["quality"]["unlearned"], forget),
                "worst_retain_change_db": _worst_retain_change(
                    r["quality"], r.get("retain_tasks") or []
                ),
            }
        out.append(entry)
    return out


def build_summary(plan: Plan) -> dict[str, Any]:
    """Every finished cell's numbers gathered into the seed paper's tables (a JSON dict)."""
    before = before_training_cost(plan)
    recs = {c.name: _cell_record(plan, c, before) for c in plan.cells}
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


def seed_entries(plan: Plan) -> dict[str, Any]:
    """Per cell run at several seeds (``<cell>@seed<k>`` copies): its figures as mean ± sd over
    the seeds whose folders are done (see :mod:`forgetir.seeds`)."""
    from forgetir.reproduce.grid import SEED_MARK
    from forgetir.seeds import aggregate_runs

    out: dict[str, Any] = {}
    for cell in plan.cells:
        if SEED_MARK in cell.name or cell.kind != "unlearn":
            continue
        names = [cell.name] + [
            c.name for c in plan.cells if c.name.startswith(cell.name + SEED_MARK)
        ]
        done = [plan.cell_dir(n) for n in names if (plan.cell_dir(n) / "run.json").exists()]
        if len(names) > 1 and len(done) > 1:
            out[cell.name] = aggregate_runs(done)
    return out


_SEED_FIGURES = ("forget vs UT", "worst retained vs BEFORE", "output gap / BEFORE's", "AIN")


def _seeds_table(entries: dict[str, Any]) -> list[str]:
    from forgetir.seeds import format_difference, format_mean_sd

    head = "| cell | seeds | " + " | ".join(_SEED_FIGURES) + " |"
    lines = ["", "## Over seeds (mean ± sd)", "", head, "|---|---|" + "---|" * len(_SEED_FIGURES)]
    for name, agg in entries.items():
        cells = []
        for f in _SEED_FIGURES:
            e = agg["figures"].get(f)
            vals = e["values"] if e else []
            cells.append(
                format_difference(vals) if e and "no_difference" in e else format_mean_sd(vals)
            )
        lines.append(f"| {name} | {agg['n']} | " + " | ".join(cells) + " |")
    return lines


def format_summary(summary: dict[str, Any]) -> str:
    """``summary.md``: the tables (format_table, with their captions) and per-table notes."""
    from forgetir.evaluate import format_table

    b = summary["before_training"]
    lines = [
        f"# forgetir reproduce --scale {summary['scale']}",
        "",
        f"{summary['done']} of {summary['total_cells']} cells done; cell time in total "
        f"{_hms(summary['cell_seconds_total'])} (sum of each cell's wall time, evaluation and "
        "verification included). Every cell is a run folder under "
        f"`{summary['out']}/<cell>/`; `forgetir report <folder>` writes its full report.",
        "",
    ]
    if b.get("steps"):
        lines.append(
            f"Cost fractions are relative to BEFORE's training: {b['steps']} steps at batch "
            f"{b.get('batch_size')}, {_fmt(b.get('wall_time_s'), 0)} s wall time "
            f"(`{b.get('command')}`). Wall times depend on the machine and its load."
        )
    else:
        lines.append(b.get("note", "BEFORE's training cost is unknown."))
    lines += [f"Note: {n}" for n in summary["notes"]]
    if summary["headline"]:
        lines += ["", "## Headline", ""]
        lines.append(
            "Forget-task PSNR (dB; denoise: mean of σ15/25/50) and the worst change of a "
            "retained task against BEFORE, from the tables below:"
        )
        lines.append("")
    for h in summary["headline"]:
        cells = [
            f"{n.split('/')[1].removeprefix(h['forget'] + '-')} "
            f"{_fmt(v['forget_psnr'])} (retained {_fmt(v['worst_retain_change_db'], 2, True)})"
            for n, v in h.items()
            if isinstance(v, dict)
        ]
        lines.append(
            f"- forget {h['forget']}: BEFORE {_fmt(h.get('BEFORE'))}, UT {_fmt(h.get('UT'))}, "
            f"degraded input {_fmt(h.get('input'))}; " + "; ".join(cells)
        )
    for key, t in summary["tables"].items():
        lines += ["", f"## {t['title']}", "", t["text"], ""]
        lines.append(format_table(t["rows"], t["protocol"] or "promptir", t["test_set"] or ""))
        if t["mixed_test_sets"]:
            lines.append(
                "\nWarning: the cells of this table were evaluated on different test sets."
            )
        lines += ["", _notes_table(summary, t["cells"])]
        if key in ("main", "instances", "class"):
            v = _verify_table(summary, t["cells"], summary["relearn_steps"])
            if v:
                lines += ["", v]
    if summary.get("seeds"):
        lines += _seeds_table(summary["seeds"])
    lines += ["", "## Cells", "", "| cell | what | status |", "|---|---|---|"]
    for r in summary["cells"].values():
        lines.append(f"| {r['name']} | {r['what']} | {'done' if r['done'] else 'not run'} |")
    return "\n".join(lines) + "\n"


def _notes_table(summary: dict[str, Any], names: Sequence[str]) -> str:
    lines = [
        "| cell | steps x batch | unlearning wall (s) | cell total (s) | steps / BEFORE's | "
        "samples / BEFORE's (per data stream) | wall / BEFORE's | stopped early |",
        "|---|---|---|---|---|---|---|---|",
    ]
    total = 0.0
    for n in names:
        r = summary["cells"][n]
        total += float(r.get("cell_seconds") or 0)
        lines.append(
            f"| {n} | {r.get('steps')} x {r.get('batch_size')} | {_fmt(r.get('wall_time_s'), 1)} "
            f"| {_fmt(r.get('cell_seconds'), 0)} | {_pct(r.get('step_fraction'))} | "
            f"{_pct(r.get('sample_fraction'))} | {_pct(r.get('time_fraction'))} | "
            f"{r.get('stopped_early') or ''} |"
        )
    return "\n".join(lines) + f"\n\nWall time of this table's cells: {_hms(total)}."


def _verify_table(summary: dict[str, Any], names: Sequence[str], relearn_steps: int) -> str:
    recs = [summary["cells"][n] for n in names if summary["cells"][n].get("verify")]
    if not recs:
        return ""
    lines = [
        f"Verification (full records in each cell's verify.json): output gap = mean per-image "
        f"L1 between the model's and UT's outputs on forget-test; relearning = forget PSNR "
        f"gained by {relearn_steps} fine-tuning steps on 4 forget patches; AIN = anamnesis "
        "index (about 1 is ideal, much below 1 means the knowledge comes straight back).",
        "",
        "| cell | output gap to UT (BEFORE's) | relearned dB unlearned / UT | AIN |",
        "|---|---|---|---|",
    ]
    for r in recs:
        v = r["verify"]
        gap = f"{_fmt(v.get('output_gap'), 4)} ({_fmt(v.get('output_gap_before'), 4)})"
        rel = (
            f"{_fmt(v.get('relearn_recovered_db_unlearned'), 2, True)} / "
            f"{_fmt(v.get('relearn_recovered_db_UT'), 2, True)}"
        )
        ain = f"{_fmt(v.get('ain'), 2)} ({v.get('ain_verdict') or '–'})"
        lines.append(f"| {r['name']} | {gap} | {rel} | {ain} |")
    mia = [(r["name"], r["verify"]) for r in recs if r["verify"].get("mia_unlearned")]
    if mia:
        lines += [
            "",
            "Membership inference (loss-based attack fitted on members = retained training "
            "images vs non-members = held-out images): the share of forgotten images the attack "
            "calls members (non-members' share for reference), and the AUC separating forgotten "
            "images from non-members (0.5 = indistinguishable, the goal).",
            "",
            "| cell | model | forgotten called members | non-members called members | "
            "AUC forgotten vs non-members |",
            "|---|---|---|---|---|",
        ]
        for name, v in mia:
            for label in ("unlearned", "UT", "BEFORE"):
                m = v.get(f"mia_{label}")
                if m:
                    lines.append(
                        f"| {name} | {label} | {_pct(m.get('forgotten_member_rate'))} | "
                        f"{_pct(m.get('nonmember_member_rate'))} | "
                        f"{_fmt(m.get('forgotten_vs_nonmembers_auc'), 3)} |"
                    )
    return "\n".join(lines)


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
