"""The proof of forgetting as a registry of checks, each one figure (docs/proof.md, "The checks").

``CHECKS`` holds them in the order they run and render: gaps, output gap, relearning,
anamnesis index, membership (population attack, the baseline), the per-example calibrated
membership attack, cost. :func:`run_checks` computes every check
that applies to a run; ``forgetir verify``'s summary, the audit manifest's figures and the
report's verification section are loops over the same registry. The verdict
(:mod:`forgetir.checks.verdict`) is decided after them and shown first.

To add a check: write ``forgetir/checks/<name>.py`` with a :class:`~forgetir.checks.base.Check`
subclass and add it to ``CHECKS`` below (explicitly: no module scanning).

Example:
    >>> CHECKS.names()[:3]
    ['anamnesis', 'calibrated_membership', 'cost']
    >>> list(CHECKS)[:2]
    ['gaps', 'output_gap']
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from forgetir.checks.anamnesis import AnamnesisCheck
from forgetir.checks.base import Check, Context, figure
from forgetir.checks.calibrated_membership import CalibratedMembershipCheck
from forgetir.checks.cost import CostCheck
from forgetir.checks.gaps import GapsCheck
from forgetir.checks.membership import MembershipCheck
from forgetir.checks.output_gap import OutputGapCheck
from forgetir.checks.relearning import RelearnCheck
from forgetir.registry import Registry

__all__ = ["CHECKS", "Check", "Context", "all_figures", "run_checks", "summary_lines"]

CHECKS: Registry[Check] = Registry("check")
for _check in (
    GapsCheck(),
    OutputGapCheck(),
    RelearnCheck(),
    AnamnesisCheck(),
    MembershipCheck(),
    CalibratedMembershipCheck(),
    CostCheck(),
):
    CHECKS.add(_check.name, _check)


def run_checks(ctx: Context) -> dict[str, Any]:
    """name -> result of every registered check (None where it does not apply), in registry
    order; a check's ``needs`` are computed before it."""

    def compute(name: str) -> None:
        if name in ctx.results:
            return
        check = CHECKS.get(name)
        for dep in check.needs:
            compute(dep)
        ctx.results[name] = check.compute(ctx) if check.applies(ctx) else None

    for name in CHECKS:
        compute(name)
    return {name: ctx.results[name] for name in CHECKS}


def summary_lines(verify: Mapping[str, Any]) -> list[str]:
    """Each check's summary lines, in registry order (checks without a result are skipped)."""
    lines: list[str] = []
    for name in CHECKS:
        if verify.get(name):
            lines += CHECKS.get(name).summary(verify[name])
    return lines


def all_figures(verify: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every figure of a verification as ``{figure, value, metric, data}`` (audit manifest)."""
    out: list[dict[str, Any]] = []
    verdict = verify.get("verdict")
    if verdict:
        out.append(figure("verdict", verdict.get("verdict"), verdict.get("method"), None))
    for name in CHECKS:
        if verify.get(name):
            out += CHECKS.get(name).figures(verify[name], verify)
    return out
