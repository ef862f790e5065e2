"""The results of a grid's cells, read back from their run folders: quality, verification
figures, cost relative to BEFORE's training, and figures over seeds."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from forgetir.checkpoint import read_sidecar
from forgetir.reproduce.grid import (
    SEED_MARK,
    Cell,
    Plan,
    _resolved,
)
from forgetir.runs.seeds import aggregate_runs


def _numbers(value: Any) -> Any:
    """JSON as written by forgetir ("inf"/"nan" strings for non-finite floats) back to floats."""
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    if value in ("inf", "-inf", "nan"):
        return float(value)
    return value


def read_result(path: Path) -> Any:
    try:
        return _numbers(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def cell_quality(plan: Plan, cell: Cell) -> dict[str, Any] | None:
    return read_result(plan.cell_dir(cell) / "quality.json")


def mean_psnr(metrics: dict[str, Any] | None, tasks: Sequence[str]) -> float:
    vals = [float(metrics[t]["psnr"]) for t in tasks if metrics and t in metrics]
    return sum(vals) / len(vals) if vals else float("nan")


def worst_retain_change(rows: dict[str, Any], retain: Sequence[str]) -> float | None:
    before, after = rows.get("BEFORE"), rows.get("unlearned")
    changes = [
        float(after[t]["psnr"]) - float(before[t]["psnr"])
        for t in retain
        if before and after and t in before and t in after
    ]
    return min(changes) if changes else None


def before_training_cost(plan: Plan) -> dict[str, Any]:
    """BEFORE's training steps and wall time (its sidecar), for the cost fractions."""
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


def cell_record(plan: Plan, cell: Cell, before: dict[str, Any]) -> dict[str, Any]:
    run = read_result(plan.cell_dir(cell) / "run.json")
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
        q = cell_quality(plan, cell)
        if q is not None:
            rec.update(quality=q["rows"], protocol=q.get("protocol"), test_set=q.get("test_set"))
        v = read_result(plan.cell_dir(cell) / "verify.json")
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


def seed_entries(plan: Plan) -> dict[str, Any]:
    """Per cell run at several seeds (``<cell>@seed<k>`` copies): its figures as mean ± sd over
    the seeds whose folders are done (see :mod:`forgetir.runs.seeds`)."""
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
