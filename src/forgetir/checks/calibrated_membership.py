"""Per-example membership attack on a deletion request (issue 12, item 2), beside the population
baseline of :mod:`forgetir.checks.membership`.

For an instance split whose candidates are whole images (the forgotten images, the kept
training images and held-out non-members of the same kind; :func:`forgetir.membership.scenarios.
candidate_pairs`), each model's per-image PSNR is calibrated by the PSNR of a *reference* model
that never saw any candidate (Shafran et al., ICCV 2021): ``score = psnr_model - psnr_reference``
(:func:`forgetir.membership.scenarios.attack_from_psnr`). A run records its reference with
``forgetir unlearn --mia-reference CHECKPOINT``; without one the check falls back to the plain
per-image loss attack (threshold on PSNR) and says so, since that attack flags merely easy images
as members. Reported for BEFORE, UT and the unlearned model side by side: AUC and TPR at 1% and
5% FPR of forgotten vs non-members (and kept vs non-members), and the member advantage (mean PSNR
of the forgotten minus that of the non-members). After good forgetting the unlearned model's row
matches UT's.

Example:
    >>> import numpy as np
    >>> psnr = {"forgotten": np.array([30.0, 29.0]), "kept": np.array([31.0, 30.0]),
    ...         "nonmembers": np.array([25.0, 24.0, 26.0])}
    >>> r = attack_table({"BEFORE": psnr}, None)
    >>> r["calibrated"], r["models"]["BEFORE"]["attack"]["forgotten"]["auc"]
    (False, 1.0)
    >>> r = attack_table({"BEFORE": psnr}, psnr, "parent")  # as easy for the reference
    >>> r["calibrated"], r["models"]["BEFORE"]["attack"]["forgotten"]["auc"]
    (True, 0.5)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from forgetir.checks.base import Check, Context, figure
from forgetir.membership.attack import per_image_psnr
from forgetir.membership.scenarios import GROUPS, attack_from_psnr
from forgetir.render.document import fmt
from forgetir.runtime.progress import track

__all__ = ["CalibratedMembershipCheck", "attack_table"]

STATISTIC = "per-image PSNR (dB, clipped output, data range 1, whole candidate image)"
CALIBRATED = (
    "difficulty-calibrated attack (Shafran et al. 2021): score = PSNR of the model minus PSNR "
    "of the reference model {ref}, which saw no candidate; member if score ≥ threshold"
)
UNCALIBRATED = (
    "UNCALIBRATED per-image loss attack (no reference model recorded: run `forgetir unlearn "
    "--mia-reference CHECKPOINT`): member if PSNR ≥ threshold; it flags easy images as members"
)
KEYS = ("auc", "tpr_at_1pct_fpr", "tpr_at_5pct_fpr")


def attack_table(
    psnr: Mapping[str, Mapping[str, Any]],
    reference: Mapping[str, Any] | None,
    reference_name: str | None = None,
) -> dict[str, Any]:
    """The side-by-side attack from per-image PSNRs (the pure core of the check).

    ``psnr[label][group]``: per-image PSNR of each model on each group of :data:`GROUPS`;
    ``reference[group]``: the reference model's, or None for the uncalibrated attack. Per model:
    ``psnr`` (group means), ``advantage_db`` (forgotten/kept minus non-members),
    ``attack`` (forgotten and kept vs non-members:
    :func:`forgetir.membership.attack.attack_metrics`) and ``uncalibrated`` (the plain loss
    attack, for comparison).
    """
    models: dict[str, Any] = {}
    for label, target in psnr.items():
        ref = reference if reference is not None else {g: target[g] for g in GROUPS}
        r = attack_from_psnr(target, {g: np.asarray(ref[g], float)[None] for g in GROUPS})
        models[label] = {
            "psnr": r["psnr"],
            "psnr_sd": r["psnr_sd"],
            "advantage_db": r["advantage_db"],
            "attack": r["calibrated"] if reference is not None else r["uncalibrated"],
            "uncalibrated": r["uncalibrated"],
            "n": r["n"],
        }
    calibrated = reference is not None
    return {
        "statistic": STATISTIC,
        "calibrated": calibrated,
        "reference": reference_name if calibrated else None,
        "attack": CALIBRATED.format(ref=reference_name or "") if calibrated else UNCALIBRATED,
        "reference_psnr": {g: float(np.mean(reference[g])) for g in GROUPS} if calibrated else None,
        "models": models,
    }


class CalibratedMembershipCheck(Check):
    name = "calibrated_membership"
    title = "Per-example membership attack (calibrated)"
    not_measured = (
        "Not measured (applies to instance splits of dead-leaves images with held-out "
        "non-members: `forgetir split --by instances`)."
    )

    def applies(self, ctx: Context) -> bool:
        return ctx.instance_candidates is not None

    def compute(self, ctx: Context) -> dict[str, Any]:
        cands = ctx.instance_candidates or {}
        missing = [g for g in GROUPS if not cands.get(g)]
        if missing:
            raise ValueError(f"instance_candidates lacks images in {', '.join(missing)}")
        models = ctx.models()

        def psnr_of(model: Any) -> dict[str, np.ndarray]:
            return {g: per_image_psnr(model, list(cands[g])) for g in GROUPS}

        psnr = {
            label: psnr_of(models[label])
            for label in track(models, len(models), "per-example attack", ctx.quiet)
        }
        ref = psnr_of(ctx.mia_reference) if ctx.mia_reference is not None else None
        result = attack_table(psnr, ref, ctx.mia_reference_name)
        n = {g: len(cands[g]) for g in GROUPS}
        result["data"] = ctx.instance_description or (
            f"{n['forgotten']} forgotten (deleted) images, {n['kept']} kept training images, "
            f"{n['nonmembers']} held-out non-members of the same kind"
        )
        return result

    def summary(self, result: Mapping[str, Any]) -> list[str]:
        kind = "calibrated by " + str(result["reference"]) if result["calibrated"] else (
            "UNCALIBRATED: no --mia-reference recorded"
        )  # fmt: skip
        lines = []
        for label, r in result["models"].items():
            a = r["attack"]["forgotten"]
            lines.append(
                f"per-example attack ({kind}) on {label}: deleted vs non-members AUC "
                f"{a['auc']:.3f}, TPR {a['tpr_at_1pct_fpr']:.2f} at 1% / "
                f"{a['tpr_at_5pct_fpr']:.2f} at 5% FPR; deleted − non-member PSNR "
                f"{r['advantage_db']['forgotten']:+.2f} dB ({STATISTIC}; {result.get('data')})"
            )
        return lines

    def figures(self, result: Mapping[str, Any], verify: Mapping[str, Any]) -> list[dict]:
        out = []
        for label, r in (result.get("models") or {}).items():
            out += [
                figure(
                    f"per-example MIA {label}: {k}",
                    r["attack"]["forgotten"].get(k),
                    result.get("attack"),
                    result.get("data"),
                )  # fmt: skip
                for k in KEYS
            ]
            out.append(
                figure(
                    f"per-example MIA {label}: deleted − non-member PSNR (dB)",
                    r["advantage_db"]["forgotten"],
                    result.get("statistic"),
                    result.get("data"),
                )  # fmt: skip
            )
        return out

    def render(self, doc: Any, result: Mapping[str, Any], verify: Mapping[str, Any]) -> None:
        rows = []
        for label, r in result["models"].items():
            f, k, u = r["attack"]["forgotten"], r["attack"]["kept"], r["uncalibrated"]["forgotten"]
            rows.append(
                [
                    label,
                    *[fmt(r["psnr"][g], 2) for g in GROUPS],
                    f"{r['advantage_db']['forgotten']:+.2f}",
                    *[fmt(f[key], 3 if key == "auc" else 2) for key in KEYS],
                    fmt(k["auc"], 3),
                    fmt(u["auc"], 3),
                ]
            )
        n_neg = next(iter(result["models"].values()))["attack"]["forgotten"]["n_neg"]
        doc.table(
            [
                "model",
                "PSNR deleted",
                "PSNR kept",
                "PSNR non-members",
                "deleted − non-members (dB)",
                "AUC deleted",
                "TPR @1% FPR",
                "TPR @5% FPR",
                "AUC kept",
                "uncalibrated AUC deleted",
            ],
            rows,
            f"{result['attack']}. Statistic: {result['statistic']}, mean per group. Data: "
            f"{result.get('data')}. AUC/TPR: deleted (or kept) vs non-members; with {n_neg} "
            f"non-members an FPR below {1 / n_neg:.1%} means FPR 0. After good forgetting the "
            "unlearned row matches UT's (AUC near 0.5, gap near 0) and the kept images stay "
            "like BEFORE's.",
        )
