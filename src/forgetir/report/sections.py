"""The sections of a run's report (quality, verdict, verification, audit, expert usage, the
run's own figures), each rendered into a :class:`~forgetir.render.document.Doc`;
:mod:`forgetir.report.write` reads the run folder and assembles them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from forgetir.checks import CHECKS
from forgetir.degradations import TASKS
from forgetir.metrics import describe_protocol
from forgetir.render.document import Doc, fmt
from forgetir.render.figures import (
    ROW_NAMES,
    column,
    loss_figure,
    quality_figure,
    sweep_figure,
    sweep_points,
)

ROW_ORDER = ("input", "BEFORE", "unlearned", "UT")
MAX_LISTED_ENTRIES = 200  # forgotten images listed in HTML/MD; report.json has all


def order_tasks(rows: Mapping[str, Mapping[str, Any]]) -> list[str]:
    seen: list[str] = []
    for m in rows.values():
        seen += [t for t in m if t not in seen]
    return [t for t in TASKS if t in seen] + [t for t in seen if t not in TASKS]


def order_rows(rows: Mapping[str, Any]) -> list[str]:
    return [r for r in ROW_ORDER if r in rows] + [r for r in rows if r not in ROW_ORDER]


def quality_section(doc: Doc, quality: Mapping[str, Any], forget: set) -> list[str]:
    rows = quality["rows"]
    tasks = order_tasks(rows)
    protocol = quality.get("protocol", "promptir")
    try:
        proto_text = quality.get("protocol_description") or describe_protocol(protocol)
    except (KeyError, ValueError):
        proto_text = str(protocol)
    source = quality.get("test_set") or quality.get("test_source") or "not recorded"
    header = ["model"] + [column(t) + (" (forget)" if t in forget else "") for t in tasks]
    body = []
    for label in order_rows(rows):
        cells = []
        for t in tasks:
            m = rows[label].get(t) or {}
            cells.append(f"{fmt(m.get('psnr'))}/{fmt(m.get('ssim'), 3)}" if m else "–")
        body.append([ROW_NAMES.get(label, label), *cells])
    forget_cols = [j + 1 for j, t in enumerate(tasks) if t in forget]
    caption = f"PSNR (dB) / SSIM per task. Protocol: {proto_text}. Test set: {source}."
    doc.table(header, body, caption, forget_cols)
    doc.image(quality_figure(rows, tasks, forget), "quality.png", "PSNR per task and model")
    return tasks


def verdict_section(doc: Doc, v: Mapping[str, Any]) -> None:
    verdict = v.get("verdict")
    doc.heading(2, "Verdict", "verdict")
    if not verdict:
        doc.para("No verdict: verify.json predates verdicts; run `forgetir verify` again.")
        return
    ok = verdict.get("verdict") == "forgotten" and not verdict.get("retained_damaged")
    doc.para(str(verdict.get("line")), "ok" if ok else "bad")
    th = verdict.get("thresholds") or {}
    doc.para(
        "Thresholds (forgetir.checks.verdict.Thresholds): "
        + ", ".join(f"{k} = {val}" for k, val in th.items())
        + ". Paired per-image PSNR differences, two one-sided tests: forgotten: the interval "
        "of (unlearned - reference) lies inside the margin; not forgotten: above it; "
        "over-forgotten: below it; hidden: inside or under it but relearns much faster than UT "
        "(AIN); undetermined: too little evidence to decide. The reference is UT, or without "
        "UT the degraded input. Retained: non-inferiority of (unlearned - BEFORE) per task."
    )


def verification_section(doc: Doc, v: Mapping[str, Any]) -> None:
    doc.heading(2, "Verification (relative to UT, the model retrained without the data)", "verify")
    doc.para(
        f"Protocol: {v.get('protocol_description') or v.get('protocol')}. "
        f"Test set: {v.get('test_set')}. Forget tasks: {', '.join(v.get('forget_tasks') or [])}; "
        f"retain tasks: {', '.join(v.get('retain_tasks') or []) or 'none'}."
    )
    for name in CHECKS:  # each result rendered once, by its own check
        check = CHECKS.get(name)
        doc.heading(3, check.title)
        if v.get(name):
            check.render(doc, v[name], v)
        else:
            doc.para(check.not_measured)


def audit_section(doc: Doc, audit: Mapping[str, Any], key: list[dict[str, Any]]) -> None:
    doc.heading(2, "Audit manifest", "audit")
    f = audit["forgotten"]

    def hashed(rec: Any) -> list[list[Any]]:
        if not rec:
            return [["path", "not recorded"]]
        return [
            ["path", rec.get("path")],
            ["sha256", rec.get("sha256")],
            ["check", rec.get("check")],
        ]

    def j(v: Any) -> str:
        if v is None:
            return "not recorded"
        return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)

    rows = [
        ["split kind", f.get("split_kind")],
        ["forgotten", j(f.get("forget"))],
        ["retained", j(f.get("retain"))],
        ["forget tasks", j(f.get("forget_tasks"))],
        ["retain tasks", j(f.get("retain_tasks"))],
        *[[f"split manifest {k}", v] for k, v in hashed(f.get("manifest"))],
        *[[f"parent (BEFORE) {k}", v] for k, v in hashed(audit.get("parent_checkpoint"))],
        *[[f"UT checkpoint {k}", v] for k, v in hashed(audit.get("ut_checkpoint"))],
        *[[f"unlearned {k}", v] for k, v in hashed(audit.get("unlearned_checkpoint"))],
        ["model conditioning", (audit.get("unlearned_checkpoint") or {}).get("conditioning")],
        ["method", audit["method"].get("name")],
        ["target", audit["method"].get("target")],
        ["hyperparameters", j(audit["method"].get("hyperparameters"))],
        *[[f"run {k}", j(v)] for k, v in audit["run"].items()],
        ["software (run)", j(audit["software"].get("run") or "not recorded in run.json")],
        ["software (report)", j(audit["software"].get("report"))],
        ["note", f.get("note")],
    ]
    doc.table(["field", "value"], rows, left_cols=2, cls="kv")
    entries = f.get("forget_entries")
    if entries:
        cols = list(dict.fromkeys(k for e in entries for k in e))
        shown = entries[:MAX_LISTED_ENTRIES]
        more = len(entries) - len(shown)
        summary = f"{len(entries)} forgotten training images (ids/paths and SHA-256)"
        summary += f"; first {len(shown)} listed, all in report.json" if more else ""
        doc.details(summary, cols, [[e.get(c) for c in cols] for e in shown])
    doc.heading(3, "Every verification figure")
    doc.table(
        ["figure", "value", "metric", "data"],
        [
            [
                k["figure"],
                fmt(k["value"], 4) if isinstance(k["value"], float) else k["value"],
                k["metric"],
                k["data"],
            ]
            for k in key
        ],
        left_cols=1,
        cls="wrap",
    )


def expert_usage_section(doc: Doc, usage: Mapping[str, Any], forget: set) -> None:
    """Mixture-of-experts routing: which experts each task's images go to, per model row."""
    doc.heading(2, "Expert usage (mixture-of-experts routing)", "experts")
    rows = []
    for model, per_set in usage.items():
        for name, levels in per_set.items():
            shares = [
                " ".join(f"e{i}:{100 * f:.0f}%" for i, f in enumerate(level) if f > 0)
                for level in levels
            ]
            rows.append([model, name + (" (forget)" if name in forget else ""), *shares])
    width = max(len(r) for r in rows) - 2
    doc.table(
        ["model", "test set", *[f"decoder level {i + 1}" for i in range(width)]],
        rows,
        "Share of routing choices (image x block x top-k slot) per expert, decoder levels "
        "from the bottleneck up; e0 is the cheapest expert.",
        left_cols=2,
    )


def run_sections(doc: Doc, data: Mapping[str, Any], forget: set) -> None:
    """The image grids, the training curves and the sweeps (if any) of a run."""
    doc.heading(2, "Image grids", "grids")
    if data["grids"]:
        for g in data["grids"]:
            doc.image(g.read_bytes(), f"grid:{g.name}", f"{g.stem}", existing=g)
    else:
        doc.para("No grids/ in the run directory.")

    doc.heading(2, "Training curves", "curves")
    loss_png = loss_figure(data["log"])
    if loss_png is not None:
        doc.image(loss_png, "loss.png", "log.csv: loss terms and logged values per step")
    else:
        doc.para("log.csv has no logged values.")

    if data["sweeps"] is not None:
        doc.heading(2, "Sweeps", "sweeps")
        points = sweep_points(data["sweeps"])
        if points:
            doc.image(sweep_figure(points, forget), "sweeps.png", "PSNR per swept value")
            for param, pts in points.items():
                tasks = list(dict.fromkeys(t for _, s in pts for t in s))
                doc.table(
                    [param, *[column(t) + (" (forget)" if t in forget else "") for t in tasks]],
                    [[v, *[fmt(s.get(t)) for t in tasks]] for v, s in pts],
                    f"Sweep of {param}: PSNR (dB) per task.",
                )
