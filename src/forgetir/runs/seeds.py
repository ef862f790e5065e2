"""Figures over seeds: mean ± sd, and "no difference" when a difference is under 2 sd.

A figure from one seed is an anecdote. :func:`mean_sd` summarises a list of per-seed values,
:func:`format_difference` prints a difference as ``+1.23 ± 0.10`` or, when its magnitude is under
twice its sd, as ``no difference (+0.05 ± 0.10)``. :func:`aggregate_runs` reads the seed
sub-folders that ``forgetir unlearn --seeds N`` writes (each an ordinary run folder) and
:func:`write_seed_summary` saves ``seeds.json`` and ``seeds.md`` beside them.

Example:
    >>> mean_sd([1.0, 2.0, 3.0])
    (2.0, 1.0)
    >>> format_difference([0.1, -0.1, 0.05])
    'no difference (+0.02 ± 0.10)'
    >>> format_difference([1.0, 1.1, 0.9])
    '+1.00 ± 0.10'
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from forgetir.atomic import atomic_json

SEED_DIR = "seed-{seed}"
SUMMARY_JSON, SUMMARY_MD = "seeds.json", "seeds.md"


def mean_sd(values: Sequence[float | None]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1) of the finite values; sd is 0 for one value
    and both are nan for none."""
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not xs:
        return float("nan"), float("nan")
    m = sum(xs) / len(xs)
    if len(xs) == 1:
        return m, 0.0
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def format_mean_sd(values: Sequence[float | None], fmt: str = "{:.2f}") -> str:
    """``mean ± sd`` of ``values`` (``–`` when there is none)."""
    m, s = mean_sd(values)
    if math.isnan(m):
        return "–"
    return f"{fmt.format(m)} ± {fmt.format(s)}"


def no_difference(values: Sequence[float | None]) -> bool:
    """Whether per-seed differences are indistinguishable from 0: ``|mean| < 2 sd``. One seed
    (sd 0) never counts as "no difference" unless its value is exactly 0."""
    m, s = mean_sd(values)
    return not math.isnan(m) and (abs(m) < 2 * s or m == 0.0)


def format_difference(values: Sequence[float | None], fmt: str = "{:+.2f}") -> str:
    """A per-seed difference as ``mean ± sd``, or ``no difference (mean ± sd)`` under 2 sd."""
    m, s = mean_sd(values)
    if math.isnan(m):
        return "–"
    text = f"{fmt.format(m)} ± {fmt.format(s).lstrip('+')}"
    return f"no difference ({text})" if no_difference(values) else text


def _mean_psnr(row: dict[str, Any], tasks: Sequence[str]) -> float:
    return sum(float(row[t]["psnr"]) for t in tasks) / len(tasks)


def run_figures(folder: str | Path) -> dict[str, float | None]:
    """The figures of one run folder (``run.json``, ``quality.json``, optional ``verify.json``)
    that a seed summary aggregates. Differences are unlearned minus the reference, in dB."""
    folder = Path(folder)
    run = json.loads((folder / "run.json").read_text())
    rows = json.loads((folder / "quality.json").read_text())["rows"]
    forget, retain = run["forget_tasks"], run["retain_tasks"]
    after, before = rows["unlearned"], rows["BEFORE"]
    out: dict[str, float | None] = {
        "forget PSNR": _mean_psnr(after, forget),
        "forget vs BEFORE": _mean_psnr(after, forget) - _mean_psnr(before, forget),
    }
    if "UT" in rows:
        out["forget vs UT"] = _mean_psnr(after, forget) - _mean_psnr(rows["UT"], forget)
    for t in retain:
        out[f"{t} vs BEFORE"] = float(after[t]["psnr"]) - float(before[t]["psnr"])
        if "UT" in rows:
            out[f"{t} vs UT"] = float(after[t]["psnr"]) - float(rows["UT"][t]["psnr"])
    if retain:
        out["worst retained vs BEFORE"] = min(out[f"{t} vs BEFORE"] for t in retain)  # type: ignore[type-var]
    verify_path = folder / "verify.json"
    if verify_path.exists():
        v = json.loads(verify_path.read_text())
        gap = v.get("output_gap") or {}
        if gap.get("value") is not None and gap.get("before_value"):
            out["output gap / BEFORE's"] = gap["value"] / gap["before_value"]
        ain = v.get("anamnesis") or {}
        out["AIN"] = ain.get("ain")
    out["steps"] = float(run["steps"])
    out["wall time (s)"] = float(run["wall_time_s"])
    return out


# Rows that are differences: printed with "no difference" when under 2 sd.
_DIFFERENCE = (" vs ", "worst retained")


def aggregate_runs(folders: Sequence[str | Path]) -> dict[str, Any]:
    """Per figure: the per-seed values, mean, sd and (for differences) whether it is "no
    difference"; from the run folders of one configuration at several seeds."""
    per_run = [run_figures(f) for f in folders]
    names = list(dict.fromkeys(k for r in per_run for k in r))
    table: dict[str, Any] = {}
    for name in names:
        values = [r.get(name) for r in per_run]
        m, s = mean_sd(values)
        entry: dict[str, Any] = {"values": values, "mean": m, "sd": s}
        if any(tag in name for tag in _DIFFERENCE):
            entry["no_difference"] = no_difference(values)
        table[name] = entry
    return {"runs": [str(f) for f in folders], "n": len(per_run), "figures": table}


def format_summary(summary: dict[str, Any]) -> str:
    """The seed summary as a markdown table: figure | mean ± sd | per seed."""
    lines = [
        f"Over {summary['n']} seeds (mean ± sample sd; a difference under 2 sd reads "
        '"no difference"):',
        "",
        "| figure | mean ± sd | per seed |",
        "|---|---|---|",
    ]
    for name, e in summary["figures"].items():
        vals = e["values"]
        cell = format_difference(vals) if "no_difference" in e else format_mean_sd(vals)
        per = ", ".join("–" if v is None else f"{v:.2f}" for v in vals)
        lines.append(f"| {name} | {cell} | {per} |")
    return "\n".join(lines)


def write_seed_summary(out_dir: str | Path, folders: Sequence[str | Path]) -> dict[str, Any]:
    """Aggregate ``folders`` and write ``seeds.json`` and ``seeds.md`` in ``out_dir``."""
    out = Path(out_dir)
    summary = aggregate_runs(folders)
    atomic_json(out / SUMMARY_JSON, summary)
    (out / SUMMARY_MD).write_text(format_summary(summary) + "\n")
    return summary
