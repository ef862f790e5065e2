"""forgetir.membership.attack: exact ROC metrics against brute force, scores against hand
computations."""

import itertools
import math

import numpy as np
import pytest
import torch

from forgetir.membership.attack import (
    attack_metrics,
    calibrated_scores,
    lira_offline_scores,
    lira_online_scores,
    per_image_mse,
    per_image_psnr,
    psnr_from_mse,
    roc_auc,
    roc_curve,
    tpr_at_fpr,
)


def _brute_auc(pos, neg):
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def _brute_tpr_at_fpr(pos, neg, target):
    best = 0.0
    for t in [math.inf, *pos, *neg]:
        fpr = sum(n >= t for n in neg) / len(neg)
        tpr = sum(p >= t for p in pos) / len(pos)
        if fpr <= target + 1e-12:
            best = max(best, tpr)
    return best


@pytest.mark.parametrize("seed", range(6))
def test_auc_and_tpr_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    # integer scores force many ties, which the rank formula must count as one half
    pos = rng.integers(0, 6, size=rng.integers(1, 15)).astype(float) + (seed % 2)
    neg = rng.integers(0, 6, size=rng.integers(1, 40)).astype(float)
    assert roc_auc(pos, neg) == pytest.approx(_brute_auc(pos, neg), abs=1e-12)
    for f in (0.0, 0.01, 0.05, 0.2, 0.5, 1.0):
        assert tpr_at_fpr(pos, neg, f) == pytest.approx(_brute_tpr_at_fpr(pos, neg, f))


def test_roc_curve_endpoints_and_monotone():
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(1, 1, 30), rng.normal(0, 1, 50)
    fpr, tpr, thr = roc_curve(pos, neg)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0) and np.all(np.diff(thr) < 0)
    # trapezoid area under the exact curve is the Mann-Whitney AUC
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc(pos, neg), abs=1e-12)


def test_attack_metrics_keys_and_resolution():
    r = attack_metrics([3.0, 2.0, 9.0], [1.0, 2.5, 0.0, -1.0])
    assert r["auc"] == pytest.approx(_brute_auc([3, 2, 9], [1, 2.5, 0, -1]))
    assert r["tpr_at_1pct_fpr"] == pytest.approx(2 / 3)  # FPR 0: threshold above 2.5
    assert r["tpr_at_5pct_fpr"] == pytest.approx(2 / 3)
    assert r["fpr_resolution"] == 0.25 and (r["n_pos"], r["n_neg"]) == (3, 4)
    with pytest.raises(ValueError, match="both classes"):
        roc_auc([], [1.0])


def test_calibrated_is_log_mse_ratio():
    mse_t, mse_r = np.array([1e-3, 4e-3]), np.array([4e-3, 4e-3])
    s = calibrated_scores(psnr_from_mse(mse_t), psnr_from_mse(mse_r))
    assert s == pytest.approx(10 * np.log10(mse_r / mse_t))
    with pytest.raises(ValueError, match="does not match"):
        calibrated_scores([1.0, 2.0], [1.0])


def test_lira_offline_by_hand():
    target = np.array([30.0, 20.0, 25.0])
    out = np.array([[26.0, 21.0, 25.0], [28.0, 19.0, 23.0]])
    # per-candidate sd (ddof 1): sqrt(2), sqrt(2), sqrt(2)
    z = lira_offline_scores(target, out, fixed_variance=False)
    assert z == pytest.approx(np.array([3.0, 0.0, 1.0]) / math.sqrt(2))
    # pooled: residuals +-1 in every column -> sum 6 over 6 - 3 degrees of freedom
    z = lira_offline_scores(target, out)
    assert z == pytest.approx(np.array([3.0, 0.0, 1.0]) / math.sqrt(2))
    with pytest.raises(ValueError, match=">= 2 shadows"):
        lira_offline_scores(target, out[:1], fixed_variance=False)


def test_lira_online_by_hand():
    t, i, o = np.array([29.0]), np.array([[30.0], [32.0]]), np.array([[26.0], [28.0]])
    got = lira_online_scores(t, i, o, fixed_variance=False)
    sd = math.sqrt(2.0)
    expect = -0.5 * ((29 - 31) / sd) ** 2 + 0.5 * ((29 - 27) / sd) ** 2
    assert got == pytest.approx([expect])


def test_per_image_mse_clips_keeps_order_and_mixed_shapes():
    g = torch.Generator().manual_seed(0)
    pairs = [
        (torch.rand(3, 8, 8, generator=g) * 1.4, torch.rand(3, 8, 8, generator=g)),
        (torch.rand(1, 3, 4, 6, generator=g), torch.rand(1, 3, 4, 6, generator=g)),
        (torch.rand(3, 8, 8, generator=g) - 0.2, torch.rand(3, 8, 8, generator=g)),
    ]
    got = per_image_mse(torch.nn.Identity(), pairs, batch_size=1)
    expect = [float(((x.clamp(0, 1) - y) ** 2).mean()) for x, y in pairs]
    assert got == pytest.approx(expect, rel=1e-6)
    assert per_image_psnr(torch.nn.Identity(), pairs) == pytest.approx(
        -10 * np.log10(expect), rel=1e-6
    )
    with pytest.raises(ValueError, match="one image each"):
        per_image_mse(torch.nn.Identity(), [(torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4))])
