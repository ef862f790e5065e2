"""Population membership attack (the baseline): a logistic attack on per-image losses of
members vs non-members, applied to the forgotten images. Forgotten images should look like
non-members, as they do for UT. Population attacks overstate forgetting (Hayes et al. 2024);
a calibrated per-example attack is a separate check. Its AUCs are
:func:`forgetir.membership.attack.roc_auc`, the one AUC of the package.

Example:
    >>> import numpy as np
    >>> bool(_fit_logistic(np.array([-1.0, 1.0]), np.array([0.0, 1.0]))[0] > 0)
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from torch import nn

from forgetir.checks.base import (
    L1_METRIC,
    Check,
    Context,
    as_pairs,
    figure,
    l1_per_image,
    single_images,
)
from forgetir.membership.attack import roc_auc
from forgetir.render.document import fmt
from forgetir.render.figures import mia_figure
from forgetir.runtime.progress import track
from forgetir.scoring.evaluate import restore

__all__ = ["MembershipCheck", "membership_inference"]

NEED = ("members", "nonmembers", "forgotten")


def _fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, iters: int = 50) -> np.ndarray:
    """Newton's method for 1-feature logistic regression (weight, bias); the small L2 penalty
    keeps it finite when the classes separate perfectly."""
    w = np.zeros(2)
    design = np.stack([x, np.ones_like(x)], axis=1)
    reg = np.diag([l2, 0.0])
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ w, -50, 50)))
        grad = design.T @ (p - y) / len(y) + reg @ w
        hess = (design.T * (p * (1 - p))) @ design / len(y) + reg + 1e-9 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return w


def _per_image_losses(model: nn.Module, data: Any, what: str) -> list[float]:
    xs, ys = single_images(as_pairs(data, what))
    preds = [p.clamp(0, 1) for p in restore(model, xs)]
    return l1_per_image(preds, ys)


def membership_inference(
    model: nn.Module,
    members: Any,
    nonmembers: Any,
    forgotten: Any,
    *,
    train_fraction: float = 0.5,
    seed: int = 0,
) -> dict[str, Any]:
    """Loss-based membership inference for instance forgetting.

    Per-image L1 losses of ``members`` (training images still retained), ``nonmembers``
    (held-out images never trained on) and ``forgotten`` (the deletion request). A logistic
    attack on the feature ``-log(loss)`` is fitted (numpy, Newton) on a balanced, seeded subset
    of members and non-members (``train_fraction`` of the smaller group from each) and scored
    on the rest, also balanced: ``attack_accuracy`` and ``attack_auc`` there. Then
    ``forgotten_member_rate`` is the fraction of forgotten images the attack calls "member":
    after good forgetting it is like the non-members' rate, as for UT.
    ``forgotten_vs_nonmembers_auc`` ~ 0.5 says the attack cannot tell them apart.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> mk = lambda n: [(torch.rand(1, 3, 8, 8, generator=g),) * 2 for _ in range(n)]
        >>> r = membership_inference(torch.nn.Identity(), mk(4), mk(4), mk(2))
        >>> r["member_loss_mean"]
        0.0
    """
    if not 0 < train_fraction < 1:
        raise ValueError(f"membership train_fraction must be in (0, 1), got {train_fraction}")
    loss_m = np.array(_per_image_losses(model, members, "membership members"))
    loss_n = np.array(_per_image_losses(model, nonmembers, "membership nonmembers"))
    loss_f = np.array(_per_image_losses(model, forgotten, "membership forgotten"))
    k = min(len(loss_m), len(loss_n))
    n_fit = int(round(k * train_fraction))
    if n_fit < 1 or k - n_fit < 1:
        raise ValueError(
            f"membership inference needs at least 2 members and 2 non-members to fit and test "
            f"an attack; got {len(loss_m)} members and {len(loss_n)} non-members"
        )
    rng = np.random.default_rng(seed)
    pm, pn = rng.permutation(len(loss_m)), rng.permutation(len(loss_n))

    def feature(losses: np.ndarray) -> np.ndarray:
        return -np.log(losses + 1e-12)  # members: low loss -> high score

    fit_x = np.concatenate([feature(loss_m[pm[:n_fit]]), feature(loss_n[pn[:n_fit]])])
    fit_y = np.concatenate([np.ones(n_fit), np.zeros(n_fit)])
    mu, sd = fit_x.mean(), fit_x.std() + 1e-12
    w = _fit_logistic((fit_x - mu) / sd, fit_y)

    def score(losses: np.ndarray) -> np.ndarray:
        return w[0] * (feature(losses) - mu) / sd + w[1]

    test_m, test_n = loss_m[pm[n_fit:k]], loss_n[pn[n_fit:k]]
    s_m, s_n, s_f = score(test_m), score(test_n), score(loss_f)
    fit_hits = (score(loss_m[pm[:n_fit]]) > 0).sum() + (score(loss_n[pn[:n_fit]]) <= 0).sum()
    return {
        "metric": f"per-image L1 loss ({L1_METRIC.split(',')[0]}); attack: logistic on -log(loss)",
        "n_members": len(loss_m),
        "n_nonmembers": len(loss_n),
        "n_forgotten": len(loss_f),
        "n_fit_per_class": n_fit,
        "n_test_per_class": k - n_fit,
        "seed": int(seed),
        "attack_fit_accuracy": float(fit_hits) / (2 * n_fit),
        "attack_accuracy": float(((s_m > 0).sum() + (s_n <= 0).sum()) / (2 * len(s_m))),
        "attack_auc": roc_auc(s_m, s_n),
        "forgotten_member_rate": float((s_f > 0).mean()) if len(s_f) else float("nan"),
        "nonmember_member_rate": float((s_n > 0).mean()),
        "member_member_rate": float((s_m > 0).mean()),
        # No forgotten images (a split without them): no AUC to report, as for the rate above.
        "forgotten_vs_nonmembers_auc": roc_auc(s_f, s_n) if len(s_f) else float("nan"),
        "member_loss_mean": float(loss_m.mean()),
        "nonmember_loss_mean": float(loss_n.mean()),
        "forgotten_loss_mean": float(loss_f.mean()) if len(loss_f) else float("nan"),
        "losses": {
            "members": loss_m.tolist(),
            "nonmembers": loss_n.tolist(),
            "forgotten": loss_f.tolist(),
        },
    }


class MembershipCheck(Check):
    name = "membership"
    title = "Membership inference"
    not_measured = "Not measured (membership inference applies to instance forgetting)."

    def applies(self, ctx: Context) -> bool:
        return ctx.membership is not None

    def compute(self, ctx: Context) -> dict[str, Any]:
        membership = ctx.membership or {}
        lacking = [k for k in NEED if k not in membership]
        if lacking:
            raise ValueError(
                f"verify_run membership lacks {', '.join(lacking)}; give {', '.join(NEED)}"
            )
        models = ctx.models()
        attack = {
            label: membership_inference(
                models[label],
                membership["members"],
                membership["nonmembers"],
                membership["forgotten"],
                seed=ctx.seed,
            )
            for label in track(models, len(models), "membership attack", ctx.quiet)
        }
        return {
            "data": ctx.membership_description
            or "members: retained training images; "
            "non-members: held-out images; forgotten: the deletion request",
            "models": attack,
        }

    def summary(self, result: Mapping[str, Any]) -> list[str]:
        return [
            f"membership attack on {label}: {r['forgotten_member_rate']:.0%} of the forgotten "
            f"images called members ({r['nonmember_member_rate']:.0%} of non-members; attack "
            f"AUC {r['attack_auc']:.2f})"
            for label, r in result["models"].items()
        ]

    def figures(self, result: Mapping[str, Any], verify: Mapping[str, Any]) -> list[dict]:
        return [
            figure(f"MIA {label}: {key}", r.get(key), r.get("metric"), result.get("data"))
            for label, r in (result.get("models") or {}).items()
            for key in ("attack_auc", "attack_accuracy", "forgotten_member_rate")
        ]

    def render(self, doc: Any, result: Mapping[str, Any], verify: Mapping[str, Any]) -> None:
        keys = ("attack_accuracy", "attack_auc", "forgotten_member_rate")
        keys += ("nonmember_member_rate", "forgotten_vs_nonmembers_auc")
        losses = ("member_loss_mean", "nonmember_loss_mean", "forgotten_loss_mean")
        rows = [
            [label, *[fmt(r.get(k), 3) for k in keys], *[fmt(r.get(k), 4) for k in losses]]
            for label, r in result["models"].items()
        ]
        doc.table(
            [
                "model",
                "attack acc.",
                "attack AUC",
                "forgotten → member",
                "non-members → member",
                "AUC forgotten vs non-members",
                "loss members",
                "loss non-members",
                "loss forgotten",
            ],
            rows,
            f"{next(iter(result['models'].values())).get('metric')}. Data: {result.get('data')}. "
            "Forgotten images should look like non-members, as they do for UT.",
        )
        png = mia_figure(verify)
        if png is not None:
            doc.image(png, "membership.png", "Per-image losses seen by the membership attack")
