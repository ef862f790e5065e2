"""Gaps: the unlearned model's PSNR/SSIM minus UT's and minus BEFORE's, per task.

Example:
    >>> u = {"dehaze": {"psnr": 12.0, "ssim": 0.5}}
    >>> b = {"dehaze": {"psnr": 28.0, "ssim": 0.9}}
    >>> gaps(u, b, None, ["dehaze"])["dehaze"]["psnr_gap_to_before"]
    -16.0
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from forgetir.checks.base import BEFORE, UNLEARNED, UT, Check, Context, figure, finite
from forgetir.render.document import fmt
from forgetir.render.figures import column

__all__ = ["GapsCheck", "gaps"]


def _role(task: str, forget: Sequence[str], retain: Sequence[str]) -> str:
    if task in forget:
        return "forget"
    if task in retain:
        return "retain"
    return "other"


def _diff(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None, key: str) -> float | None:
    if not a or not b or a.get(key) is None or b.get(key) is None:
        return None
    return finite(float(a[key]) - float(b[key]))


def gaps(
    unlearned: Mapping[str, Mapping[str, Any]],
    before: Mapping[str, Mapping[str, Any]],
    ut: Mapping[str, Mapping[str, Any]] | None = None,
    forget_tasks: Sequence[str] = (),
    retain_tasks: Sequence[str] = (),
) -> dict[str, dict[str, Any]]:
    """Per task: the unlearned model's PSNR (dB) and SSIM minus UT's and minus BEFORE's.

    Each argument is one row of a quality table (``{task: {"psnr", "ssim"}}``). On a forget
    task the ideal gap to UT is 0 (negative: worse than UT, which the seed paper calls "more
    forgetting" but is just a different model); on a retain task the ideal gap to BEFORE is 0.
    Without UT its gaps are ``None``.

    Example:
        >>> u = {"dehaze": {"psnr": 12.0, "ssim": 0.5}}
        >>> b = {"dehaze": {"psnr": 28.0, "ssim": 0.9}}
        >>> g = gaps(u, b, {"dehaze": {"psnr": 17.0, "ssim": 0.7}}, forget_tasks=["dehaze"])
        >>> g["dehaze"]["role"], g["dehaze"]["psnr_gap_to_ut"], g["dehaze"]["psnr_gap_to_before"]
        ('forget', -5.0, -16.0)
    """
    out: dict[str, dict[str, Any]] = {}
    for task, m in unlearned.items():
        b = before.get(task)
        u = ut.get(task) if ut is not None else None
        out[task] = {
            "role": _role(task, forget_tasks, retain_tasks),
            "psnr": finite(float(m["psnr"])),
            "ssim": float(m["ssim"]),
            "psnr_gap_to_ut": _diff(m, u, "psnr"),
            "ssim_gap_to_ut": _diff(m, u, "ssim"),
            "psnr_gap_to_before": _diff(m, b, "psnr"),
            "ssim_gap_to_before": _diff(m, b, "ssim"),
        }
    return out


class GapsCheck(Check):
    name = "gaps"
    title = "Gaps to UT and to BEFORE"

    def compute(self, ctx: Context) -> dict[str, Any]:
        rows = ctx.rows
        return {
            "metric": "unlearned minus reference: PSNR (dB) and SSIM",
            "protocol": ctx.protocol,
            "data": ctx.source,
            "tasks": gaps(
                rows[UNLEARNED], rows[BEFORE], rows.get(UT), ctx.forget_tasks, ctx.retain_tasks
            ),
        }

    def summary(self, result: Mapping[str, Any]) -> list[str]:
        lines = [f"quality: PSNR (dB), {result['protocol']} protocol, on {result['data']}"]
        for task, r in result["tasks"].items():
            lines.append(
                f"  {r['role']:<7} {task:<11} unlearned {fmt(r['psnr'])}: "
                f"{fmt(r['psnr_gap_to_ut'], signed=True)} vs UT, "
                f"{fmt(r['psnr_gap_to_before'], signed=True)} vs BEFORE"
            )
        return lines

    def figures(self, result: Mapping[str, Any], verify: Mapping[str, Any]) -> list[dict]:
        proto = f"{verify.get('protocol', 'promptir')} protocol (see the quality caption)"
        out = []
        for task, g in (result.get("tasks") or {}).items():
            for key in ("psnr", "psnr_gap_to_ut", "psnr_gap_to_before", "ssim_gap_to_ut"):
                unit = "dB" if key.startswith("psnr") else "SSIM"
                name = f"{task} ({g.get('role')}): unlearned {key}"
                out.append(figure(name, g.get(key), f"{unit}, {proto}", verify.get("test_set")))
        return out

    def render(self, doc: Any, result: Mapping[str, Any], verify: Mapping[str, Any]) -> None:
        rows = [
            [
                column(t),
                r.get("role"),
                fmt(r.get("psnr")),
                fmt(r.get("psnr_gap_to_ut"), signed=True),
                fmt(r.get("psnr_gap_to_before"), signed=True),
                fmt(r.get("ssim_gap_to_ut"), 3, True),
                fmt(r.get("ssim_gap_to_before"), 3, True),
            ]
            for t, r in (result.get("tasks") or {}).items()
        ]
        header = ["task", "role", "unlearned PSNR", "Δ PSNR vs UT", "Δ PSNR vs BEFORE"]
        doc.table(
            [*header, "Δ SSIM vs UT", "Δ SSIM vs BEFORE"],
            rows,
            "Unlearned minus reference. Ideal: 0 vs UT on forget tasks, 0 vs BEFORE on retain "
            "tasks (dB / SSIM).",
            left_cols=2,
        )
