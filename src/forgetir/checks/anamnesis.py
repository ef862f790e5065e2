"""Anamnesis index AIN = steps(unlearned) / steps(UT) (docs/proof.md, "The checks"): fine-tuning
steps until the forget L1 is within ``tol`` of BEFORE's. AIN ~ 1 is ideal; AIN << 1 means the
knowledge was only hidden and comes straight back.

Example:
    >>> ain_value(3, 6, 100)[:2]
    (0.5, 'exact')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from forgetir.checks import reference
from forgetir.checks.base import (
    L1_METRIC,
    UNLEARNED,
    UT,
    Check,
    Context,
    as_pairs,
    figure,
    l1_per_image,
    mean,
    single_images,
)
from forgetir.checks.relearning import relearn
from forgetir.render.document import fmt
from forgetir.scoring.evaluate import restore

__all__ = ["AIN_HIDDEN_BELOW", "AnamnesisCheck", "ain_value", "anamnesis_index", "forget_l1"]

# AIN below this reads as "the knowledge comes back clearly faster than for UT".
AIN_HIDDEN_BELOW = 0.5


def forget_l1(model: nn.Module, eval_pairs: Any) -> float:
    """Mean per-image L1 of ``model``'s clipped outputs on ``eval_pairs``."""
    xs, ys = single_images(as_pairs(eval_pairs, "forget_l1 eval_pairs"))
    preds = [p.clamp(0, 1) for p in restore(model, xs)]
    return mean(l1_per_image(preds, ys))


def ain_value(s_u: int | None, s_ut: int | None, max_steps: int) -> tuple[float | None, str, str]:
    """(value, kind, note): kind is exact, lower_bound, upper_bound or undefined."""
    if s_u is not None and s_ut is not None:
        if s_ut == 0:
            return (
                None,
                "undefined",
                "UT is already within the tolerance of BEFORE on the forget set without any "
                "fine-tuning: there is nothing to relearn, so AIN is undefined",
            )
        return s_u / s_ut, "exact", "both models reached BEFORE's forget L1"
    if s_u is None and s_ut is not None:
        if s_ut == 0:
            return None, "undefined", "UT needs no fine-tuning; the unlearned model did not reach"
        return (
            (max_steps + 1) / s_ut,
            "lower_bound",
            f"the unlearned model did not reach BEFORE's forget L1 within {max_steps} steps: "
            "AIN is at least this value",
        )
    if s_u is not None and s_ut is None:
        return (
            s_u / (max_steps + 1),
            "upper_bound",
            f"UT did not reach BEFORE's forget L1 within {max_steps} steps: AIN is at most "
            "this value",
        )
    return (
        None,
        "undefined",
        f"neither model reached BEFORE's forget L1 within {max_steps} steps: raise max_steps",
    )


def _verdict(value: float | None, kind: str, s_u: int | None) -> str:
    if value is None:
        return "undetermined"
    if s_u == 0:
        return "the unlearned model already matches BEFORE on the forget set: nothing forgotten"
    if value < AIN_HIDDEN_BELOW and kind in ("exact", "upper_bound"):
        return (
            f"AIN < {AIN_HIDDEN_BELOW}: the forgotten skill comes back much faster than it is "
            "learnt by UT; it was hidden rather than removed"
        )
    if kind == "upper_bound":
        return "undetermined (upper bound only)"
    return (
        f"AIN >= {AIN_HIDDEN_BELOW}: relearning takes at least half as many steps as for "
        "UT; no sign of hidden knowledge"
    )


def anamnesis_index(
    unlearned: nn.Module,
    ut: nn.Module,
    before: nn.Module,
    forget_train_samples: Any,
    forget_eval: Any,
    max_steps: int = 100,
    tol: float = 0.05,
    lr: float = 2e-4,
    *,
    protocol: str = "promptir",
    eval_every: int = 1,
    quiet: bool = True,
    ut_run: Any = None,
    runs_out: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Anamnesis index AIN = steps(unlearned) / steps(UT).

    Each count is the number of :func:`~forgetir.checks.relearning.relearn` steps (same
    samples, lr and optimizer) until the forget L1 on ``forget_eval`` is within ``tol`` of
    BEFORE's, i.e. at most ``(1 + tol) * L1(BEFORE)``; counts are multiples of ``eval_every``.
    A model that does not get there within ``max_steps`` is reported as not reached, and AIN
    becomes a bound: ``ain_kind`` says ``lower_bound`` (AIN >= value) or ``upper_bound``
    (AIN <= value), or ``undefined``. None of the three models is modified. ``ut_run``: a
    callable ``(target_l1, compute) -> UT's relearn run`` (a reference log) instead of
    fine-tuning UT. ``runs_out``: a dict that receives both relearning runs (by label).

    Example:
        >>> import torch
        >>> pairs = [(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))]
        >>> r = anamnesis_index(torch.nn.Conv2d(3, 3, 1), torch.nn.Conv2d(3, 3, 1),
        ...                     torch.nn.Identity(), pairs, pairs, max_steps=2)
        >>> r["ain_kind"] in ("exact", "lower_bound", "upper_bound", "undefined")
        True
    """
    if not tol >= 0:
        raise ValueError(f"anamnesis tol must be >= 0, got {tol}")
    if int(max_steps) < 1:
        raise ValueError(f"anamnesis max_steps must be >= 1, got {max_steps}")
    eval_pairs = as_pairs(forget_eval, "anamnesis forget_eval")
    before_l1 = forget_l1(before, eval_pairs)
    target = (1.0 + tol) * before_l1

    def run(model: nn.Module, name: str) -> dict[str, Any]:
        return relearn(
            model,
            forget_train_samples,
            steps=max_steps,
            lr=lr,
            eval_set=eval_pairs,
            protocol=protocol,
            eval_every=eval_every,
            stop_l1=target,
            quiet=quiet,
            label=f"anamnesis {name}",
        )

    runs = {UNLEARNED: run(unlearned, UNLEARNED)}
    runs[UT] = ut_run(target, lambda: run(ut, UT)) if ut_run is not None else run(ut, UT)
    if runs_out is not None:
        runs_out.update(runs)
    s_u, s_ut = runs[UNLEARNED]["reached_step"], runs[UT]["reached_step"]
    value, kind, note = ain_value(s_u, s_ut, int(max_steps))
    return {
        "ain": value,
        "ain_kind": kind,
        "note": note,
        "verdict": _verdict(value, kind, s_u),
        "steps_unlearned": s_u,
        "steps_ut": s_ut,
        "reached_unlearned": s_u is not None,
        "reached_ut": s_ut is not None,
        "max_steps": int(max_steps),
        "tol": float(tol),
        "before_l1": before_l1,
        "target_l1": target,
        "lr": float(lr),
        "eval_every": int(eval_every),
        "metric": f"optimizer steps until forget L1 ({L1_METRIC}) <= (1 + tol) x BEFORE's",
        "curves": {name: r["curve"] for name, r in runs.items()},
        "curve_columns": ["step", "psnr", "l1"],
        "protocol": protocol,
    }


class AnamnesisCheck(Check):
    name = "anamnesis"
    title = "Anamnesis index (AIN)"
    not_measured = "Not measured (needs UT and relearning samples)."

    def applies(self, ctx: Context) -> bool:
        return ctx.ut is not None and ctx.relearn_samples is not None and ctx.ain_max_steps > 0

    def compute(self, ctx: Context) -> dict[str, Any]:
        def cached(target: float, compute: Any) -> dict[str, Any]:
            run = reference.ut_run(ctx, "anamnesis", compute)
            # The reference was made with BEFORE's target; recompute if it is not this one.
            return run if reference.same_target(run.get("stop_l1"), target) else compute()

        ain = anamnesis_index(
            ctx.unlearned,
            ctx.ut,
            ctx.before,
            ctx.relearn_samples,
            ctx.forget_pairs,
            ctx.ain_max_steps,
            ctx.ain_tol,
            ctx.relearn_lr,
            protocol=ctx.protocol,
            eval_every=ctx.eval_every,
            quiet=ctx.quiet,
            ut_run=cached if ctx.reference is not None else None,
            runs_out=ctx.cache.setdefault("ain_runs", {}),
        )
        ain.update(train_data=ctx.train_data, eval_data=ctx.forget_data)
        return ain

    def summary(self, result: Mapping[str, Any]) -> list[str]:
        bound = {"lower_bound": ">= ", "upper_bound": "<= "}.get(result.get("ain_kind"), "")
        return [f"anamnesis index AIN: {bound}{fmt(result.get('ain'))} ({result.get('verdict')})"]

    def figures(self, result: Mapping[str, Any], verify: Mapping[str, Any]) -> list[dict]:
        ain = result
        out = [
            figure(
                f"AIN ({ain.get('ain_kind')})",
                ain.get("ain"),
                ain.get("metric"),
                ain.get("eval_data"),
            )
        ]
        data = f"{ain.get('train_data')} -> {ain.get('eval_data')}; tol {ain.get('tol')}"
        for label in ("unlearned", "ut"):
            steps = ain.get(f"steps_{label}")
            if steps is None:
                steps = f"not reached within {ain.get('max_steps')}"
            out.append(
                figure(f"AIN steps {label.replace('ut', 'UT')}", steps, ain.get("metric"), data)
            )
        return out

    def render(self, doc: Any, result: Mapping[str, Any], verify: Mapping[str, Any]) -> None:
        ain = result
        kind = ain.get("ain_kind")
        sym = {"exact": "=", "lower_bound": "≥", "upper_bound": "≤"}.get(kind, "")
        value = f"AIN {sym} {fmt(ain.get('ain'), 3)}" if sym else "AIN undefined"

        def steps(s: Any) -> str:
            return str(s) if s is not None else f"not reached within {ain.get('max_steps')}"

        doc.table(
            ["AIN", "kind", "steps unlearned", "steps UT", "BEFORE L1", "target L1", "tol", "lr"],
            [
                [
                    value,
                    kind,
                    steps(ain.get("steps_unlearned")),
                    steps(ain.get("steps_ut")),
                    fmt(ain.get("before_l1"), 4),
                    fmt(ain.get("target_l1"), 4),
                    ain.get("tol"),
                    ain.get("lr"),
                ]
            ],
            f"{ain.get('metric')}. {ain.get('note')}.",
        )
        doc.para(f"Verdict: {ain.get('verdict')}. AIN ≈ 1 is ideal; AIN ≪ 1 means hidden.")
