"""Per-example membership inference made for restoration models.

The population attack of :func:`forgetir.checks.verify.membership_inference` thresholds one loss for
every image. On restoration models that mostly measures how *hard* an image is (a flat image
restores well whether or not it was trained on), so it has little power and overstates
forgetting (Hayes et al. 2024). Here every candidate image is judged against itself:

- **Difficulty-calibrated score** (Shafran, Peleg & Hoshen, ICCV 2021, "Membership inference
  attacks are easier on difficult problems"): the target model's reconstruction error on the
  candidate minus the error of a *reference* model that never saw it. In the log domain, so
  the score is a gain in dB: ``score = psnr_target - psnr_reference`` (:func:`calibrated_scores`).
- **LiRA** (Carlini et al., S&P 2022, "Membership inference attacks from first principles"):
  shadow models trained with (IN) and without (OUT) each candidate give, per candidate, a
  Gaussian of the per-image PSNR; the score is the likelihood ratio of the target's PSNR
  (:func:`lira_online_scores`), or in the *offline* variant with OUT shadows only, how far
  above the OUT Gaussian it lies (:func:`lira_offline_scores`). With few shadows the variance is
  pooled over candidates ("fixed variance", as the paper recommends below ~64 shadows).

Per-image PSNR (``-10 log10 MSE`` of the clipped output) is the statistic: it is the log of the
loss, which makes shadow-model spreads close to Gaussian, as LiRA's logit scaling does for
classifiers. Higher scores mean "more likely a member" in every function.

Metrics are exact and need no sklearn: :func:`roc_auc` (Mann-Whitney, ties count 1/2),
:func:`roc_curve` (every distinct threshold) and :func:`tpr_at_fpr` (the best TPR among
thresholds whose FPR does not exceed the target; with ``n`` negatives, FPRs below ``1/n`` can
only be met at FPR 0, which :func:`attack_metrics` reports as ``fpr_resolution``).

Example:
    >>> import numpy as np
    >>> target = np.array([30.0, 31.0, 25.0, 24.0])  # per-image PSNR of the target model
    >>> reference = np.array([26.0, 27.0, 25.0, 24.5])  # a model that never saw any of them
    >>> s = calibrated_scores(target, reference)
    >>> attack_metrics(s[:2], s[2:])["auc"]
    1.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from forgetir.errors import InvalidInputError
from forgetir.scoring.evaluate import restore
from forgetir.scoring.inference import precision_scope, tiling_scope

__all__ = [
    "attack_metrics",
    "calibrated_scores",
    "lira_offline_scores",
    "lira_online_scores",
    "per_image_psnr",
    "psnr_from_mse",
    "roc_auc",
    "roc_curve",
    "tpr_at_fpr",
]

Pair = tuple[torch.Tensor, torch.Tensor]
# Floor on per-image MSE before the log: an exact reconstruction would give +inf dB.
MSE_FLOOR = 1e-10
# Floor on a shadow-model standard deviation (dB): two identical shadows give sd 0.
SD_FLOOR = 1e-3


# ------------------------------------------------------------------------------ losses


def psnr_from_mse(mse: np.ndarray | Sequence[float]) -> np.ndarray:
    """Per-image PSNR in dB (data range 1) from per-image MSE.

    Example:
        >>> psnr_from_mse([0.01, 0.001]).round(6).tolist()
        [20.0, 30.0]
    """
    m = np.asarray(mse, dtype=np.float64)
    return -10.0 * np.log10(np.maximum(m, MSE_FLOOR))


def _as_batch(t: torch.Tensor) -> torch.Tensor:
    return t if t.ndim == 4 else t.unsqueeze(0)


@torch.no_grad()
def per_image_mse(model: nn.Module, pairs: Sequence[Pair], batch_size: int = 16) -> np.ndarray:
    """Per-image MSE of the model's clipped output against the clean image, one per pair.

    ``pairs`` are (degraded, clean) tensors, each (C,H,W) or (1,C,H,W); pairs of one shape are
    batched together (``batch_size`` at a time) and the order of ``pairs`` is kept.

    Example:
        >>> x = torch.full((3, 8, 8), 0.5)
        >>> per_image_mse(torch.nn.Identity(), [(x, x), (x, x + 0.1)]).round(4).tolist()
        [0.0, 0.01]
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    items = [(_as_batch(x), _as_batch(y)) for x, y in pairs]
    for i, (x, y) in enumerate(items):
        if x.shape != y.shape or x.shape[0] != 1:
            raise ValueError(
                f"pair {i}: degraded {tuple(x.shape)} and clean {tuple(y.shape)} must be one "
                "image each, of equal shape"
            )
    params = next(iter(model.parameters()), None)
    device = params.device if params is not None else torch.device("cpu")
    # The attack's statistic is fixed: whole images in fp32, whatever the enclosing scopes say.
    with tiling_scope(None), precision_scope("fp32"):
        preds = restore(model, [x.float() for x, _ in items], device, batch_size)
    out = np.empty(len(items))
    for i, (pred, (_, y)) in enumerate(zip(preds, items, strict=True)):
        out[i] = float(((pred.clamp(0, 1) - y.float()) ** 2).mean(dim=(1, 2, 3)).double())
    return out


def per_image_psnr(model: nn.Module, pairs: Sequence[Pair], batch_size: int = 16) -> np.ndarray:
    """Per-image PSNR (dB, clipped output, data range 1): the statistic every score uses.

    Example:
        >>> x = torch.full((3, 8, 8), 0.5)
        >>> per_image_psnr(torch.nn.Identity(), [(x, x + 0.1)]).round(3).tolist()
        [20.0]
    """
    return psnr_from_mse(per_image_mse(model, pairs, batch_size))


# ------------------------------------------------------------------------------ scores


def _vec(x: Any, what: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{what} must be one value per candidate (1-D), got shape {a.shape}")
    return a


def calibrated_scores(target_psnr: Any, reference_psnr: Any) -> np.ndarray:
    """Difficulty-calibrated membership score (Shafran et al. 2021) per candidate, in dB.

    ``target_psnr - reference_psnr`` equals ``10 log10(mse_reference / mse_target)``: the
    target's reconstruction error minus the reference's, on the log scale. The reference never
    saw the candidates, so an image that is merely easy scores 0, a memorised one scores high.
    ``reference_psnr`` may be (K, N) for K reference models; their mean is used.

    Example:
        >>> calibrated_scores([30.0, 20.0], [[26.0, 21.0], [28.0, 19.0]]).tolist()
        [3.0, 0.0]
    """
    t = _vec(target_psnr, "target_psnr")
    r = np.asarray(reference_psnr, dtype=np.float64)
    r = r.mean(axis=0) if r.ndim == 2 else r
    if r.shape != t.shape:
        raise ValueError(f"reference_psnr {r.shape} does not match target_psnr {t.shape}")
    return t - r


def _shadow_stats(shadow_psnr: Any, n: int, fixed_variance: bool, what: str) -> tuple[Any, Any]:
    s = np.asarray(shadow_psnr, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] != n:
        raise ValueError(f"{what} must be (K shadows, {n} candidates), got shape {s.shape}")
    if s.shape[0] < 1 or (s.shape[0] < 2 and not fixed_variance):
        raise ValueError(f"{what}: per-candidate variances need >= 2 shadows, got {s.shape[0]}")
    mu = s.mean(axis=0)
    if fixed_variance:
        # One sd pooled over every candidate's deviations from its own mean (LiRA's "fixed
        # variance"); with a single shadow there is nothing to pool, so sd 1 (a plain
        # difference, i.e. the calibrated score).
        dev = s - mu
        dof = s.size - n
        sd = math.sqrt(float((dev**2).sum()) / dof) if dof > 0 else 1.0
        return mu, np.full(n, max(sd, SD_FLOOR))
    return mu, np.maximum(s.std(axis=0, ddof=1), SD_FLOOR)


def lira_offline_scores(target_psnr: Any, out_psnr: Any, fixed_variance: bool = True) -> np.ndarray:
    """Offline LiRA: ``(psnr_target - mu_out) / sd_out`` per candidate.

    ``out_psnr`` (K, N): per-image PSNR of K shadow models none of which saw candidate n.
    The score orders candidates exactly as the one-sided p-value ``1 - Phi(z)`` of Carlini et
    al. (2022, Sec. VI-C) does, reversed, so "higher = more likely member".

    Example:
        >>> lira_offline_scores([30.0, 20.0], [[26.0, 21.0], [28.0, 19.0]]).round(3).tolist()
        [2.121, 0.0]
    """
    t = _vec(target_psnr, "target_psnr")
    mu, sd = _shadow_stats(out_psnr, len(t), fixed_variance, "out_psnr")
    return (t - mu) / sd


def _log_normal_pdf(x: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    return -0.5 * ((x - mu) / sd) ** 2 - np.log(sd) - 0.5 * math.log(2 * math.pi)


def lira_online_scores(
    target_psnr: Any, in_psnr: Any, out_psnr: Any, fixed_variance: bool = True
) -> np.ndarray:
    """Online LiRA: ``log N(psnr; mu_in, sd_in) - log N(psnr; mu_out, sd_out)`` per candidate.

    ``in_psnr`` (K_in, N) and ``out_psnr`` (K_out, N): shadow PSNRs with and without each
    candidate. A candidate's columns must all hold shadows of the right kind; callers with
    random-half shadows gather them per candidate first.

    Example:
        >>> lira_online_scores([30.0], [[30.0], [31.0]], [[26.0], [27.0]]).round(3).tolist()
        [12.0]
    """
    t = _vec(target_psnr, "target_psnr")
    mu_in, sd_in = _shadow_stats(in_psnr, len(t), fixed_variance, "in_psnr")
    mu_out, sd_out = _shadow_stats(out_psnr, len(t), fixed_variance, "out_psnr")
    return _log_normal_pdf(t, mu_in, sd_in) - _log_normal_pdf(t, mu_out, sd_out)


# ------------------------------------------------------------------------------ ROC


def roc_auc(pos_scores: Any, neg_scores: Any) -> float:
    """ROC AUC = P(pos > neg) + P(pos = neg)/2 (Mann-Whitney U / (n_pos n_neg)), by ranks.

    Example:
        >>> roc_auc([3, 2], [1, 2])
        0.875
    """
    pos, neg = _vec(pos_scores, "pos_scores"), _vec(neg_scores, "neg_scores")
    if len(pos) == 0 or len(neg) == 0:
        raise InvalidInputError(
            f"AUC needs both classes; got {len(pos)} positives, {len(neg)} negatives"
        )
    both = np.concatenate([pos, neg])
    order = np.argsort(both, kind="mergesort")
    ranks = np.empty(len(both))
    sorted_vals = both[order]
    # average ranks over ties, so a tie counts one half
    start = 0
    while start < len(both):
        stop = start
        while stop + 1 < len(both) and sorted_vals[stop + 1] == sorted_vals[start]:
            stop += 1
        ranks[order[start : stop + 1]] = 0.5 * (start + stop) + 1.0
        start = stop + 1
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2
    return float(u / (len(pos) * len(neg)))


def roc_curve(pos_scores: Any, neg_scores: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact ROC: (fpr, tpr, thresholds) for "member if score >= threshold", from the
    strictest threshold (+inf: nothing flagged, (0, 0)) to the loosest (everything flagged).

    Example:
        >>> fpr, tpr, thr = roc_curve([3, 2], [1, 2])
        >>> fpr.tolist(), tpr.tolist()
        ([0.0, 0.0, 0.5, 1.0], [0.0, 0.5, 1.0, 1.0])
    """
    pos, neg = _vec(pos_scores, "pos_scores"), _vec(neg_scores, "neg_scores")
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError(f"ROC needs both classes; got {len(pos)} positives, {len(neg)} negatives")
    thr = np.unique(np.concatenate([pos, neg]))[::-1]
    pos_sorted, neg_sorted = np.sort(pos), np.sort(neg)
    # count of scores >= t is n - (number strictly below t)
    tp = len(pos) - np.searchsorted(pos_sorted, thr, side="left")
    fp = len(neg) - np.searchsorted(neg_sorted, thr, side="left")
    fpr = np.concatenate([[0.0], fp / len(neg)])
    tpr = np.concatenate([[0.0], tp / len(pos)])
    return fpr, tpr, np.concatenate([[np.inf], thr])


def tpr_at_fpr(pos_scores: Any, neg_scores: Any, fpr: float) -> float:
    """Largest TPR over thresholds whose FPR is at most ``fpr`` (0 if none flags anything).

    Example:
        >>> tpr_at_fpr([5, 4, 1], [3, 2, 0], 0.0)
        0.6666666666666666
    """
    if not 0 <= fpr <= 1:
        raise ValueError(f"fpr must lie in [0, 1], got {fpr}")
    f, t, _ = roc_curve(pos_scores, neg_scores)
    return float(t[f <= fpr + 1e-12].max())


def attack_metrics(
    pos_scores: Any, neg_scores: Any, fprs: Sequence[float] = (0.01, 0.05)
) -> dict[str, Any]:
    """AUC and TPR at each FPR of ``fprs`` (keys ``tpr_at_1pct_fpr``, ``tpr_at_5pct_fpr``),
    with the counts and ``fpr_resolution`` = 1/n_neg (a smaller target FPR means FPR 0).

    Example:
        >>> r = attack_metrics([5, 4, 1], [3, 2, 0])
        >>> r["auc"], r["tpr_at_1pct_fpr"], r["n_pos"]
        (0.7777777777777778, 0.6666666666666666, 3)
    """
    pos, neg = _vec(pos_scores, "pos_scores"), _vec(neg_scores, "neg_scores")
    out: dict[str, Any] = {
        "auc": roc_auc(pos, neg),
        "n_pos": int(len(pos)),
        "n_neg": int(len(neg)),
        "fpr_resolution": 1.0 / len(neg),
    }
    for f in fprs:
        pct = f"{100 * f:g}".replace(".", "p")
        out[f"tpr_at_{pct}pct_fpr"] = tpr_at_fpr(pos, neg, f)
    return out
