"""Each verdict reached by a constructed result, and by constructed models through verify_run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from forgetir.checks.verdict import (
    THRESHOLDS,
    Thresholds,
    decide,
    images_needed,
    paired_interval,
    verdict_line,
)
from forgetir.checks.verify import verify_run
from forgetir.data.testsets import TestSet

# 40 forget-test images whose PSNRs spread over 8 dB (as photos do), and per-image model noise
# of 0.3 dB: the pairing removes the spread between images, not the noise.
_RNG = np.random.default_rng(0)
UT_PSNR = list(16.0 + 8.0 * _RNG.random(40))
_E = 0.3 * _RNG.standard_normal(40)
NOISE = list(_E - _E.mean())  # centred: a shift of delta is a mean difference of delta
HIDDEN_AIN = {"ain": 0.2, "ain_kind": "exact"}
GENUINE_AIN = {"ain": 1.1, "ain_kind": "exact"}


def _shift(values, delta, noise=NOISE):
    return [v + delta + e for v, e in zip(values, noise, strict=True)]


@pytest.mark.parametrize(
    ("delta", "ain", "expected"),
    [
        (0.0, GENUINE_AIN, "forgotten"),
        (0.1, None, "forgotten"),
        (0.0, HIDDEN_AIN, "hidden"),
        (-7.0, None, "over-forgotten"),
        (-7.0, HIDDEN_AIN, "hidden"),  # low, but comes straight back
        (3.0, HIDDEN_AIN, "not forgotten"),  # above the margin: relearning cannot excuse it
        (1.0, None, "not forgotten"),
        (0.5, None, "undetermined"),  # on the margin: no amount of images decides
    ],
)
def test_each_forget_verdict(delta, ain, expected):
    assert decide(_shift(UT_PSNR, delta), UT_PSNR, ain=ain)["verdict"] == expected


def test_unpaired_spread_does_not_pass_a_model_that_kept_the_skill():
    # The old unpaired test passed BEFORE (+3 dB on every image) inside UT's wide interval.
    photos = [13.0, 15.5, 17.1, 19.4, 21.0, 14.2, 18.8]
    assert decide([p + 3.0 for p in photos], photos)["verdict"] == "not forgotten"


def test_too_little_evidence_says_how_many_images_would_decide():
    v = decide(_shift(UT_PSNR[:6], 0.1, [2 * e for e in NOISE[:6]]), UT_PSNR[:6])
    assert v["verdict"] == "undetermined" and v["reason"] == "too little evidence"
    assert v["images_needed"] > 6
    assert "images would decide" in verdict_line(v)


def test_pairs_by_image_name_and_refuses_other_images():
    ut = {"a": 17.0, "b": 20.0, "c": 15.0}
    unlearned = {"c": 15.1, "a": 17.1, "b": 20.1}  # same images, another order
    assert decide(unlearned, ut)["forget"]["mean"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="different images"):
        decide({"a": 1.0, "z": 2.0, "c": 3.0}, ut)


def test_retained_tasks_kept_damaged_or_unproven():
    before = UT_PSNR
    retain = {
        "derain": (_shift(before, -0.5), before),
        "denoise_25": (_shift(before, 0.0, [0.0] * 40), before),
        "denoise_50": (_shift(before[:4], -0.05, [1.5 * e for e in NOISE[:4]]), before[:4]),
    }
    v = decide(UT_PSNR, UT_PSNR, ain=GENUINE_AIN, retain=retain)
    assert v["verdict"] == "forgotten"
    assert v["retained_damaged"] == ["derain"]
    assert v["retain"]["denoise_25"]["status"] == "kept"
    assert v["retained_unproven"] == ["denoise_50"]


def test_an_ain_lower_bound_is_not_hidden():
    v = decide(UT_PSNR, UT_PSNR, ain={"ain": 0.1, "ain_kind": "lower_bound"})
    assert v["verdict"] == "forgotten"


def test_seeds_widen_the_interval():
    one = decide(_shift(UT_PSNR, 0.1), UT_PSNR)
    assert one["verdict"] == "forgotten"
    mean_ut = float(np.mean(UT_PSNR))
    several = decide(_shift(UT_PSNR, 0.1), UT_PSNR, seeds=[mean_ut - 0.6, mean_ut + 0.8])
    assert several["verdict"] == "undetermined"
    assert several["forget"]["seeds"]["n"] == 2


def test_ut_free_band_is_asymmetric():
    inp = UT_PSNR
    assert decide(_shift(inp, -1.0), inp, basis="input")["verdict"] == "forgotten"
    assert decide(_shift(inp, 1.5), inp, basis="input")["verdict"] == "not forgotten"
    assert decide(_shift(inp, -6.0), inp, basis="input")["verdict"] == "over-forgotten"
    assert "UT-free" in verdict_line(decide(inp, inp, basis="input"))


def test_paired_interval_and_images_needed():
    r = paired_interval([0.0, 1.0, 2.0, 3.0])
    assert r["mean"] == pytest.approx(1.5) and r["lo"] < 1.5 < r["hi"]
    narrow = paired_interval([0.0, 1.0, 2.0, 3.0], alpha=0.25)
    assert r["lo"] < narrow["lo"] and narrow["hi"] < r["hi"]
    # The normal approximation: n = (z * sd / distance)^2.
    assert images_needed(0.0, 1.0, 0.5) == 11
    assert images_needed(0.5, 1.0, 0.0) is None
    assert THRESHOLDS.forget_margin_db == 0.5 and Thresholds().retain_margin_db == 0.1


class Blend(nn.Module):
    """out = (1 - k) * x + k * target_fn(x): k = 1 restores a known degradation exactly."""

    def __init__(self, k: float) -> None:
        super().__init__()
        self.k = nn.Parameter(torch.tensor(k))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (1 - self.k) * x + self.k * ((x - 0.2) / 0.6)


def _sets(n: int = 6) -> dict[str, TestSet]:
    g = torch.Generator().manual_seed(0)
    out = {}
    for task in ("dehaze", "derain"):
        clean = [torch.rand(1, 3, 16, 16, generator=g) * 0.8 + 0.1 for _ in range(n)]
        deg = [0.6 * c + 0.2 for c in clean]
        out[task] = TestSet(task, f"toy {task}", [f"i{i}" for i in range(n)], deg, clean)
    return out


@pytest.mark.parametrize(
    ("unlearned_k", "expected"),
    [(0.0, "forgotten"), (1.0, "not forgotten"), (-1.5, "over-forgotten")],
)
def test_verdict_of_constructed_models(unlearned_k, expected):
    # UT never learnt dehaze (returns the input: k = 0); BEFORE restores it (k = 1).
    v = verify_run(Blend(unlearned_k), Blend(1.0), Blend(0.0), ["dehaze"], ["derain"], _sets())
    assert v["verdict"]["verdict"] == expected
    assert v["verdict"]["line"].startswith(f"VERDICT {expected}")
    # Every model here restores derain as BEFORE does only if k = 1: others damage it.
    assert (v["verdict"]["retained_damaged"] == []) == (unlearned_k == 1.0)
