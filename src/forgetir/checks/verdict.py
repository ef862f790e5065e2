"""One verdict per run, from paired statistics and named thresholds (:class:`Thresholds`).

Every model is scored on the same test images, so the verdict tests *per-image differences*,
never two unpaired intervals (which mostly measure how different the photos are):

- forget: d_i = PSNR_unlearned(i) - PSNR_reference(i) over the forget-test images. The
  reference is UT (retrained without the forget data) when the run has one; without it
  (``--ut none``) it is the degraded input itself, which a model that never learned the
  degradation does not improve on (see :data:`UT_FREE_BAND`). Two one-sided tests (TOST)
  at level ``alpha`` decide with the (1 - 2 alpha) t-interval [lo, hi] of mean(d):

  - *not forgotten*: lo > +margin, whatever relearning says (the skill is measurably there);
  - *forgotten*: the interval lies inside [-margin, +margin] (equivalent to the reference);
  - *over-forgotten*: hi < -margin (the model destroys what the reference merely leaves);
  - *hidden*: hi <= +margin (inside or under) and the anamnesis index says the skill comes
    back much faster than the reference learns it (AIN < ``hidden_ain_below``);
  - *undetermined: too little evidence*: any other interval; the result says how many images
    would decide at the observed spread (never "forgotten" by default).

- retained: d_i = PSNR_unlearned(i) - PSNR_BEFORE(i) per retained task, non-inferiority with
  margin ``retain_margin_db``: *kept* when the one-sided lower bound is >= -margin, *damaged*
  when the mean difference is below -margin, *unproven* otherwise.

Where a run has several seeds, the forget interval is also taken over the seeds' mean PSNRs
(minus the reference's mean) and the wider of the two intervals decides.

Example:
    >>> ut = [17.0, 18.2, 16.1, 19.5, 17.7, 18.9, 16.6, 18.0]
    >>> decide([u + 0.1 for u in ut], ut)["verdict"]
    'forgotten'
    >>> decide([u + 3.0 for u in ut], ut)["verdict"]
    'not forgotten'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

from forgetir.checks.anamnesis import AIN_HIDDEN_BELOW
from forgetir.checks.base import BEFORE, UNLEARNED, UT, Context
from forgetir.render.document import fmt
from forgetir.scoring.evaluate import INPUT_ROW, evaluate_model

__all__ = [
    "THRESHOLDS",
    "UT_FREE_BAND",
    "Thresholds",
    "decide",
    "forget_decision",
    "images_needed",
    "paired_interval",
    "verdict_for",
]

VERDICTS = ("forgotten", "hidden", "over-forgotten", "not forgotten", "undetermined")
# Without UT, the reference is the degraded input. A model that never learned a degradation is
# not an identity on it: on the default test set (7 photos and 48 held-out dead leaves) the six
# shipped UTs land at +0.05 / -0.02 dB (haze; promptir-tiny / adair-tiny), -0.28 / -0.25 dB
# (noise, the three levels) and -2.27 / -1.30 dB (rain) from the input
# (benchmarks/results/bench_verdicts.jsonl: input minus UT of each cell). So the UT-free band is
# asymmetric: up to +margin above the input (no restoration left) and down to -UT_FREE_BAND
# below it (twice the worst UT seen) before "over-forgotten".
UT_FREE_BAND = 4.5


@dataclass(frozen=True)
class Thresholds:
    """Every threshold a verdict uses, in dB of PSNR (the run's protocol) unless said."""

    alpha: float = 0.05  # level of each one-sided test (TOST: a 90% two-sided interval)
    forget_margin_db: float = 0.5  # equivalence margin of the forget difference
    retain_margin_db: float = 0.1  # non-inferiority margin of a retained task (seed paper)
    hidden_ain_below: float = AIN_HIDDEN_BELOW  # AIN under this (exact or upper bound): hidden
    ut_free_band_db: float = UT_FREE_BAND  # without UT: how far below the input is still "none"


THRESHOLDS = Thresholds()


def paired_interval(diffs: Sequence[float], alpha: float = 0.05) -> dict[str, float]:
    """Mean, sd, n and the (1 - 2 alpha) t-interval [lo, hi] of the mean of ``diffs``.

    Example:
        >>> r = paired_interval([0.1, 0.2, 0.3, 0.2])
        >>> round(r["mean"], 2), r["n"], r["lo"] < r["mean"] < r["hi"]
        (0.2, 4, True)
    """
    d = np.asarray(diffs, dtype=float)
    n = int(d.size)
    if n == 0:
        nan = float("nan")
        return {"mean": nan, "sd": nan, "n": 0, "lo": nan, "hi": nan}
    mean = float(d.mean())
    sd = float(d.std(ddof=1)) if n > 1 else float("inf")
    half = float(stats.t.ppf(1 - alpha, n - 1)) * sd / math.sqrt(n) if n > 1 else float("inf")
    return {"mean": mean, "sd": sd, "n": n, "lo": mean - half, "hi": mean + half}


def images_needed(mean: float, sd: float, distance: float, alpha: float = 0.05) -> int | None:
    """Images for a one-sided interval of the mean to clear ``distance`` dB at spread ``sd``
    (normal approximation; None when the mean sits on the boundary).

    Example:
        >>> images_needed(0.2, 1.0, 0.3)
        31
    """
    if not (math.isfinite(sd) and distance > 0):
        return None
    z = float(stats.norm.ppf(1 - alpha))
    return max(2, math.ceil((z * sd / distance) ** 2))


def _aligned(a: Mapping[str, float] | Sequence[float], b: Mapping[str, float] | Sequence[float]):
    """Per-image pairs: by image name for mappings (refusing mismatched sets), else by order."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        if set(a) != set(b):
            raise ValueError(
                f"paired test on different images: {sorted(set(a) ^ set(b))[:5]} not in both"
            )
        keys = list(a)
        return np.array([a[k] for k in keys], float), np.array([b[k] for k in keys], float)
    x, y = np.asarray(list(a), float), np.asarray(list(b), float)
    if x.shape != y.shape:
        raise ValueError(f"paired test on {x.size} and {y.size} images: give the same images")
    return x, y


def _hidden(ain: Mapping[str, Any] | None, th: Thresholds) -> bool:
    if not ain or ain.get("ain") is None:
        return False
    return float(ain["ain"]) < th.hidden_ain_below and ain.get("ain_kind") in (
        "exact",
        "upper_bound",
    )


def forget_decision(
    stat: Mapping[str, float], low: float, high: float, ain: Any, th: Thresholds
) -> tuple[str, int | None]:
    """(verdict, images that would decide) for the interval ``stat`` against [low, high]."""
    lo, hi, mean, sd = stat["lo"], stat["hi"], stat["mean"], stat["sd"]
    if lo > high:
        return "not forgotten", None
    if hi <= high and _hidden(ain, th):
        return "hidden", None
    if hi < low:
        return "over-forgotten", None
    if low <= lo and hi <= high:
        return "forgotten", None
    # Undecided: the distance the interval's half-width must shrink to, from the mean.
    if mean > high:
        distance = mean - high
    elif mean < low:
        distance = low - mean
    else:
        distance = min(mean - low, high - mean)
    return "undetermined", images_needed(mean, sd, distance, th.alpha)


def decide(
    unlearned: Mapping[str, float] | Sequence[float],
    reference: Mapping[str, float] | Sequence[float] | None,
    *,
    basis: str = UT,
    ain: Mapping[str, Any] | None = None,
    retain: Mapping[str, tuple[Any, Any]] | None = None,
    seeds: Sequence[float] | None = None,
    th: Thresholds = THRESHOLDS,
) -> dict[str, Any]:
    """The verdict from per-image forget-test PSNRs of the unlearned model and the reference.

    ``reference``: UT's per-image PSNRs (``basis="UT"``) or the degraded input's
    (``basis="input"``, the UT-free verdict); None: "undetermined". Mappings are paired by
    image name, sequences by order. ``retain``: task -> (unlearned, BEFORE) per-image PSNRs.
    ``seeds``: the unlearned mean forget PSNR of each seed where a run has several.

    Example:
        >>> decide([10.0, 11.0, 10.5], [17.0, 18.0, 17.4])["verdict"]
        'over-forgotten'
    """
    if basis not in (UT, INPUT_ROW):
        raise ValueError(f"basis must be {UT!r} or {INPUT_ROW!r}, got {basis!r}")
    m = th.forget_margin_db
    low = -m if basis == UT else -th.ut_free_band_db
    out: dict[str, Any] = {"basis": basis, "margin_db": [low, m]}
    if reference is None:
        out.update(verdict="undetermined", reason="no reference (no UT and no input baseline)")
        u = np.asarray(list(unlearned.values() if isinstance(unlearned, Mapping) else unlearned))
        out["forget"] = {"unlearned_mean": float(u.mean()) if u.size else float("nan")}
    else:
        u, r = _aligned(unlearned, reference)
        stat = paired_interval(u - r, th.alpha)
        stat.update(unlearned_mean=float(u.mean()), reference_mean=float(r.mean()))
        if seeds is not None and len(seeds) > 1:
            over_seeds = paired_interval(np.asarray(seeds, float) - float(r.mean()), th.alpha)
            stat["seeds"] = over_seeds
            stat["lo"] = min(stat["lo"], over_seeds["lo"])
            stat["hi"] = max(stat["hi"], over_seeds["hi"])
        verdict, needed = forget_decision(stat, low, m, ain, th)
        out["forget"] = stat
        out["verdict"] = verdict
        if verdict == "undetermined":
            out["reason"] = "too little evidence"
            out["images_needed"] = needed
    retained: dict[str, Any] = {}
    for task, (u_vals, b_vals) in (retain or {}).items():
        x, y = _aligned(u_vals, b_vals)
        s = paired_interval(x - y, th.alpha)
        if s["lo"] >= -th.retain_margin_db:
            s["status"] = "kept"
        elif s["mean"] < -th.retain_margin_db:
            s["status"] = "damaged"
        else:
            s["status"] = "unproven"
            s["images_needed"] = images_needed(
                s["mean"], s["sd"], s["mean"] + th.retain_margin_db, th.alpha
            )
        retained[task] = s
    out["retain"] = retained
    out["retained_damaged"] = sorted(t for t, s in retained.items() if s["status"] == "damaged")
    out["retained_unproven"] = sorted(t for t, s in retained.items() if s["status"] == "unproven")
    if ain and ain.get("ain") is not None:
        out["ain"] = {"value": float(ain["ain"]), "kind": ain.get("ain_kind")}
    out["thresholds"] = asdict(th)
    return out


def _per_image(ctx: Context, label: str, model: Any, task: str) -> dict[str, float]:
    """Per-image PSNRs of ``label`` on ``task`` by image name: from the quality rows, else
    measured now."""
    cell = (ctx.rows.get(label) or {}).get(task) or {}
    if not isinstance(cell.get("images"), Mapping):
        if model is None:
            return {}
        cell = evaluate_model(model, {task: ctx.test_sets[task]}, ctx.protocol, per_image=True)
        cell = cell[task]
    return {f"{task}/{k}": float(v["psnr"]) for k, v in cell["images"].items()}


def verdict_for(ctx: Context, th: Thresholds = THRESHOLDS) -> dict[str, Any]:
    """The verdict of the run in ``ctx`` (after the checks ran: it reads AIN from
    ``ctx.results``), with its one-line statement under ``line``. Without UT it rests on the
    degraded input (degradation forgetting) and says so; a split of images without UT is
    "undetermined" here (its membership checks carry the UT-free evidence)."""

    def forget(label: str, model: Any) -> dict[str, float]:
        out: dict[str, float] = {}
        for t in ctx.forget_tasks:
            out.update(_per_image(ctx, label, model, t))
        return out

    retain = {
        t: (_per_image(ctx, UNLEARNED, ctx.unlearned, t), _per_image(ctx, BEFORE, ctx.before, t))
        for t in ctx.retain_tasks
    }
    unlearned = forget(UNLEARNED, ctx.unlearned)
    if ctx.ut is not None or UT in ctx.rows:
        basis, reference = UT, forget(UT, ctx.ut)
    else:
        basis, reference = INPUT_ROW, forget(INPUT_ROW, None) or None
        if reference is not None and not _degradation_tasks(ctx):
            reference = None
    out = decide(
        unlearned,
        reference,
        basis=basis,
        ain=ctx.results.get("anamnesis"),
        retain=retain,
        seeds=ctx.seed_forget_psnr,
        th=th,
    )
    out["protocol"] = ctx.protocol
    out["data"] = ctx.forget_data
    n = len(unlearned)
    ref = "UT" if basis == UT else "the degraded input (UT-free)"
    out["method"] = (
        f"paired per-image PSNR differences vs {ref} over {n} forget-test images; TOST at "
        f"{th.alpha:g} per side ({1 - 2 * th.alpha:.0%} t-interval); PSNR (dB), "
        f"{ctx.protocol} protocol"
    )
    out["line"] = verdict_line(out)
    return out


def _degradation_tasks(ctx: Context) -> bool:
    """Whether the forget-test sets are degradations of clean images the model restores (so
    the degraded input is a meaningful UT-free reference), not a split's own images."""
    return all(":" not in t and t not in ("forget", "retain") for t in ctx.forget_tasks)


def verdict_line(v: Mapping[str, Any]) -> str:
    """The verdict in one line: its basis and margin, the paired difference and its interval.

    Example:
        >>> verdict_line(decide([10.0, 11.0, 10.4], [17.0, 18.0, 17.5])).split(":")[0]
        'VERDICT over-forgotten'
    """
    f = v.get("forget") or {}
    text = f"VERDICT {v['verdict']}"
    if v.get("reason"):
        text += f" ({v['reason']}"
        if v.get("images_needed"):
            text += f"; about {v['images_needed']} images would decide at this spread"
        text += ")"
    if v.get("retained_damaged"):
        text += f"; retained damaged ({', '.join(v['retained_damaged'])})"
    low, high = v.get("margin_db") or (None, None)
    if "lo" in f:
        ref = "UT" if v.get("basis") == UT else "degraded input"
        text += (
            f": forget PSNR {fmt(f['unlearned_mean'])} dB, {fmt(f['mean'], signed=True)} dB vs "
            f"{ref} (paired over {f['n']} images, interval [{fmt(f['lo'], signed=True)}, "
            f"{fmt(f['hi'], signed=True)}], margin [{fmt(low, signed=True)}, "
            f"{fmt(high, signed=True)}])"
        )
    if v.get("ain"):
        sym = {"lower_bound": ">= ", "upper_bound": "<= "}.get(v["ain"].get("kind"), "")
        text += f"; anamnesis index AIN {sym}{fmt(v['ain']['value'])}"
    retain = v.get("retain") or {}
    kept = sum(1 for s in retain.values() if s.get("status") == "kept")
    text += f"; {kept}/{len(retain)} retained tasks shown within -{fmt(_retain_margin(v))} dB"
    text += " of BEFORE"
    if v.get("retained_unproven"):
        text += f" (unproven: {', '.join(v['retained_unproven'])})"
    basis = "paired vs UT" if v.get("basis") == UT else "UT-free: paired vs the degraded input"
    text += f" [{basis}]"
    return text


def _retain_margin(v: Mapping[str, Any]) -> float:
    return float((v.get("thresholds") or {}).get("retain_margin_db", THRESHOLDS.retain_margin_db))
