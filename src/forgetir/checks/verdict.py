"""One verdict per run, from named thresholds kept here (:class:`Thresholds`).

- *forgotten*: the unlearned model's forget-test PSNR lies within UT's interval (widened by
  ``forget_tolerance_db``) and relearning gives no sign of hidden knowledge;
- *hidden*: forget PSNR at or below UT's interval, but the anamnesis index says the skill comes
  back much faster than UT learns it (AIN < ``hidden_ain_below``);
- *over-forgotten*: forget PSNR further below UT's interval than ``forget_tolerance_db``
  (the model destroys what UT would merely not restore);
- *not forgotten*: forget PSNR above UT's interval;
- plus *retained damaged* when a retained task's PSNR falls below BEFORE's interval by more than
  ``retain_tolerance_db``.

Intervals are percentile bootstraps over the test images (seeded), at ``confidence``; where a
run has several seeds the unlearned value is their mean and its interval is over the seeds.

Example:
    >>> v = decide([20.0, 21.0, 22.0], [20.5, 21.0, 21.5], ain=None)
    >>> v["verdict"]
    'forgotten'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from forgetir.checks.anamnesis import AIN_HIDDEN_BELOW
from forgetir.checks.base import BEFORE, UNLEARNED, UT, Context
from forgetir.document import fmt
from forgetir.evaluate import evaluate_model

__all__ = ["THRESHOLDS", "Thresholds", "bootstrap_interval", "decide", "verdict_for"]

VERDICTS = ("forgotten", "hidden", "over-forgotten", "not forgotten", "undetermined")


@dataclass(frozen=True)
class Thresholds:
    """Every threshold a verdict uses, in dB of PSNR (the run's protocol) unless said."""

    confidence: float = 0.95  # two-sided level of the bootstrap intervals
    n_bootstrap: int = 2000  # resamples of the test images
    seed: int = 0  # of the bootstrap resampling
    forget_tolerance_db: float = 0.5  # UT's interval is widened by this on both sides
    hidden_ain_below: float = AIN_HIDDEN_BELOW  # AIN under this (exact or upper bound): hidden
    retain_tolerance_db: float = 0.1  # a retained task may fall this far below BEFORE's interval


THRESHOLDS = Thresholds()


def bootstrap_interval(
    values: Sequence[float], th: Thresholds = THRESHOLDS
) -> tuple[float, float, float]:
    """(mean, low, high): percentile bootstrap interval of the mean of ``values``.

    Example:
        >>> m, lo, hi = bootstrap_interval([1.0, 2.0, 3.0, 4.0])
        >>> m, lo <= m <= hi
        (2.5, True)
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(th.seed)
    means = x[rng.integers(0, x.size, size=(th.n_bootstrap, x.size))].mean(axis=1)
    a = (1 - th.confidence) / 2
    return float(x.mean()), float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def _hidden(ain: Mapping[str, Any] | None, th: Thresholds) -> bool:
    if not ain or ain.get("ain") is None:
        return False
    value = float(ain["ain"])
    return value < th.hidden_ain_below and ain.get("ain_kind") in ("exact", "upper_bound")


def decide(
    unlearned: Sequence[float],
    ut: Sequence[float] | None,
    *,
    ain: Mapping[str, Any] | None = None,
    retain: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None,
    seeds: Sequence[float] | None = None,
    th: Thresholds = THRESHOLDS,
) -> dict[str, Any]:
    """The verdict from per-image forget-test PSNRs of the unlearned model and of UT.

    ``retain``: task -> (unlearned, BEFORE) per-image PSNRs. ``seeds``: the unlearned forget
    PSNR of each seed where a run has several (its interval is then over the seeds).

    Example:
        >>> decide([10.0, 11.0], [17.0, 18.0])["verdict"]
        'over-forgotten'
    """
    u_mean, u_lo, u_hi = bootstrap_interval(unlearned, th)
    if seeds is not None and len(seeds) > 1:
        u_mean, u_lo, u_hi = bootstrap_interval(seeds, th)
    out: dict[str, Any] = {"forget": {"unlearned": [u_mean, u_lo, u_hi]}}
    if ut is None:
        verdict = "undetermined"
    else:
        ut_mean, ut_lo, ut_hi = bootstrap_interval(ut, th)
        out["forget"]["UT"] = [ut_mean, ut_lo, ut_hi]
        low, high = ut_lo - th.forget_tolerance_db, ut_hi + th.forget_tolerance_db
        if u_lo > high:
            verdict = "not forgotten"
        elif _hidden(ain, th):
            verdict = "hidden"
        elif u_hi < low:
            verdict = "over-forgotten"
        else:
            verdict = "forgotten"
    damaged = {}
    for task, (u_vals, b_vals) in (retain or {}).items():
        b_mean, b_lo, b_hi = bootstrap_interval(b_vals, th)
        u_task = float(np.mean(u_vals)) if len(u_vals) else float("nan")
        out.setdefault("retain", {})[task] = {"unlearned": u_task, "BEFORE": [b_mean, b_lo, b_hi]}
        if u_task < b_lo - th.retain_tolerance_db:
            damaged[task] = u_task - b_mean
    if ain and ain.get("ain") is not None:
        out["ain"] = {"value": float(ain["ain"]), "kind": ain.get("ain_kind")}
    out.update(verdict=verdict, retained_damaged=sorted(damaged), thresholds=asdict(th))
    return out


def _per_image(ctx: Context, label: str, model: Any, task: str) -> list[float]:
    """Per-image PSNRs of ``label`` on ``task``: from the quality rows, else measured now."""
    cell = (ctx.rows.get(label) or {}).get(task) or {}
    if isinstance(cell.get("images"), Mapping):
        return [float(v["psnr"]) for v in cell["images"].values()]
    got = evaluate_model(model, {task: ctx.test_sets[task]}, ctx.protocol, per_image=True)
    return [float(v["psnr"]) for v in got[task]["images"].values()]


def verdict_for(ctx: Context, th: Thresholds = THRESHOLDS) -> dict[str, Any]:
    """The verdict of the run in ``ctx`` (after the checks ran: it reads AIN from
    ``ctx.results``), with its one-line statement under ``line``."""

    def forget(label: str, model: Any) -> list[float]:
        return [v for t in ctx.forget_tasks for v in _per_image(ctx, label, model, t)]

    retain = {
        t: (_per_image(ctx, UNLEARNED, ctx.unlearned, t), _per_image(ctx, BEFORE, ctx.before, t))
        for t in ctx.retain_tasks
    }
    ut = forget(UT, ctx.ut) if ctx.ut is not None else None
    out = decide(
        forget(UNLEARNED, ctx.unlearned),
        ut,
        ain=ctx.results.get("anamnesis"),
        retain=retain,
        seeds=ctx.seed_forget_psnr,
        th=th,
    )
    n = len(forget(UNLEARNED, ctx.unlearned))
    out["protocol"] = ctx.protocol
    out["data"] = ctx.forget_data
    out["method"] = (
        f"{th.confidence:.0%} percentile bootstrap of the mean over {n} forget-test images "
        f"({th.n_bootstrap} resamples, seed {th.seed}); PSNR (dB), {ctx.protocol} protocol"
    )
    out["line"] = verdict_line(out)
    return out


def verdict_line(v: Mapping[str, Any]) -> str:
    """The verdict in one line, with the figures and intervals it rests on.

    Example:
        >>> verdict_line(decide([10.0, 11.0], [17.0, 18.0])).split(":")[0]
        'VERDICT over-forgotten'
    """
    f = v.get("forget") or {}
    u = f.get("unlearned") or [None] * 3
    text = f"VERDICT {v['verdict']}"
    if v.get("retained_damaged"):
        text += f"; retained damaged ({', '.join(v['retained_damaged'])})"
    text += f": forget PSNR {fmt(u[0])} dB"
    if f.get("UT"):
        ut = f["UT"]
        text += f" vs UT {fmt(ut[0])} dB [{fmt(ut[1])}, {fmt(ut[2])}]"
    if v.get("ain"):
        sym = {"lower_bound": ">= ", "upper_bound": "<= "}.get(v["ain"].get("kind"), "")
        text += f"; anamnesis index AIN {sym}{fmt(v['ain']['value'])}"
    damaged = len(v.get("retained_damaged") or [])
    total = len(v.get("retain") or {})
    text += f"; {total - damaged}/{total} retained tasks within BEFORE's interval"
    if v.get("method"):
        text += f" ({v['method']})"
    return text
