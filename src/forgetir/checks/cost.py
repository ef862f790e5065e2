"""Cost: unlearning's optimizer steps, wall time and samples relative to training from scratch.

Example:
    >>> cost(100, 5.0, 2000, 200.0)["time_fraction"]
    0.025
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from forgetir.checks.base import Check, Context, figure
from forgetir.render.document import fmt

__all__ = ["CostCheck", "cost"]

KEYS = ("step_fraction", "time_fraction", "sample_fraction")


def cost(
    unlearn_steps: int,
    unlearn_seconds: float,
    train_steps: int | None = None,
    train_seconds: float | None = None,
    unlearn_batch: int | None = None,
    train_batch: int | None = None,
) -> dict[str, Any]:
    """Unlearning cost as fractions of training from scratch (``None`` where unknown).

    ``sample_fraction`` (steps x batch) is given when both batch sizes are: the paper's
    "5% of training" compares epochs, not steps.

    Example:
        >>> cost(100, 5.0, 2000, 200.0)["step_fraction"]
        0.05
    """

    def frac(a: float | None, b: float | None) -> float | None:
        return float(a) / float(b) if a is not None and b else None

    out: dict[str, Any] = {
        "metric": "unlearning / training from scratch: optimizer steps, wall seconds, samples",
        "unlearn_steps": int(unlearn_steps),
        "unlearn_seconds": float(unlearn_seconds),
        "train_steps": None if train_steps is None else int(train_steps),
        "train_seconds": None if train_seconds is None else float(train_seconds),
        "step_fraction": frac(unlearn_steps, train_steps),
        "time_fraction": frac(unlearn_seconds, train_seconds),
        "sample_fraction": None,
    }
    if unlearn_batch and train_batch and train_steps:
        out["sample_fraction"] = (unlearn_steps * unlearn_batch) / (train_steps * train_batch)
    return out


class CostCheck(Check):
    name = "cost"
    title = "Cost"
    not_measured = "Not recorded."

    def applies(self, ctx: Context) -> bool:
        return bool(ctx.cost_info)

    def compute(self, ctx: Context) -> dict[str, Any]:
        return cost(**(ctx.cost_info or {}))

    def summary(self, result: Mapping[str, Any]) -> list[str]:
        return [
            "cost (unlearning / training from scratch): "
            f"{fmt(result.get('step_fraction'), 1, pct=True)} of the optimizer steps, "
            f"{fmt(result.get('time_fraction'), 1, pct=True)} of the wall time"
        ]

    def figures(self, result: Mapping[str, Any], verify: Mapping[str, Any]) -> list[dict]:
        metric = "unlearning / training from scratch"
        return [figure(f"cost {k}", result.get(k), metric, None) for k in KEYS if k in result]

    def render(self, doc: Any, result: Mapping[str, Any], verify: Mapping[str, Any]) -> None:
        c = result
        doc.table(
            [
                "unlearn steps",
                "unlearn s",
                "train steps",
                "train s",
                *[k.replace("_", " ") for k in KEYS],
            ],
            [
                [
                    c.get("unlearn_steps"),
                    fmt(c.get("unlearn_seconds"), 1),
                    c.get("train_steps"),
                    fmt(c.get("train_seconds"), 1),
                    *[fmt(c.get(k), 4) for k in KEYS],
                ]
            ],
            "Unlearning relative to training from scratch (fractions).",
        )
