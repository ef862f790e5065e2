"""``summary.md``: the summary's tables as Markdown (captions, notes, verification, seeds)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from forgetir.reproduce.grid import _hms
from forgetir.runs.seeds import format_difference, format_mean_sd
from forgetir.scoring.evaluate import format_table


def fmt(x: Any, digits: int = 2, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if isinstance(x, str):
        return x
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def pct(x: Any) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


_SEED_FIGURES = ("forget vs UT", "worst retained vs BEFORE", "output gap / BEFORE's", "AIN")


def _seeds_table(entries: dict[str, Any]) -> list[str]:
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
            f"{b.get('batch_size')}, {fmt(b.get('wall_time_s'), 0)} s wall time "
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
            f"{fmt(v['forget_psnr'])} (retained {fmt(v['worst_retain_change_db'], 2, True)})"
            for n, v in h.items()
            if isinstance(v, dict)
        ]
        lines.append(
            f"- forget {h['forget']}: BEFORE {fmt(h.get('BEFORE'))}, UT {fmt(h.get('UT'))}, "
            f"degraded input {fmt(h.get('input'))}; " + "; ".join(cells)
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
            f"| {n} | {r.get('steps')} x {r.get('batch_size')} | {fmt(r.get('wall_time_s'), 1)} "
            f"| {fmt(r.get('cell_seconds'), 0)} | {pct(r.get('step_fraction'))} | "
            f"{pct(r.get('sample_fraction'))} | {pct(r.get('time_fraction'))} | "
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
        gap = f"{fmt(v.get('output_gap'), 4)} ({fmt(v.get('output_gap_before'), 4)})"
        rel = (
            f"{fmt(v.get('relearn_recovered_db_unlearned'), 2, True)} / "
            f"{fmt(v.get('relearn_recovered_db_UT'), 2, True)}"
        )
        ain = f"{fmt(v.get('ain'), 2)} ({v.get('ain_verdict') or '–'})"
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
                        f"| {name} | {label} | {pct(m.get('forgotten_member_rate'))} | "
                        f"{pct(m.get('nonmember_member_rate'))} | "
                        f"{fmt(m.get('forgotten_vs_nonmembers_auc'), 3)} |"
                    )
    return "\n".join(lines)
