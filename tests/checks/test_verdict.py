"""Each verdict reached by a constructed result, and by constructed models through verify_run."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from forgetir.checks.verdict import THRESHOLDS, Thresholds, bootstrap_interval, decide
from forgetir.data.testsets import TestSet
from forgetir.verify import verify_run

UT_PSNR = [17.0, 17.5, 18.0, 18.5, 19.0, 17.2, 18.8]
HIDDEN_AIN = {"ain": 0.2, "ain_kind": "exact"}
GENUINE_AIN = {"ain": 1.1, "ain_kind": "exact"}


@pytest.mark.parametrize(
    ("unlearned", "ain", "expected"),
    [
        ([x + 0.1 for x in UT_PSNR], GENUINE_AIN, "forgotten"),
        ([x + 0.1 for x in UT_PSNR], HIDDEN_AIN, "hidden"),
        ([x - 7.0 for x in UT_PSNR], None, "over-forgotten"),
        ([x - 7.0 for x in UT_PSNR], HIDDEN_AIN, "hidden"),  # low, but comes straight back
        ([x + 9.0 for x in UT_PSNR], HIDDEN_AIN, "not forgotten"),
    ],
)
def test_each_forget_verdict(unlearned, ain, expected):
    assert decide(unlearned, UT_PSNR, ain=ain)["verdict"] == expected


def test_retained_damaged_names_the_task():
    before = [30.0, 30.5, 31.0, 29.5, 30.2]
    retain = {"derain": ([x - 2.0 for x in before], before), "denoise_25": (before, before)}
    v = decide(UT_PSNR, UT_PSNR, ain=GENUINE_AIN, retain=retain)
    assert v["verdict"] == "forgotten" and v["retained_damaged"] == ["derain"]


def test_an_ain_lower_bound_is_not_hidden():
    v = decide(UT_PSNR, UT_PSNR, ain={"ain": 0.1, "ain_kind": "lower_bound"})
    assert v["verdict"] == "forgotten"


def test_seeds_give_the_unlearned_interval():
    v = decide(UT_PSNR, UT_PSNR, seeds=[30.0, 31.0, 29.0])
    assert v["verdict"] == "not forgotten"
    assert v["forget"]["unlearned"][0] == pytest.approx(30.0)


def test_bootstrap_interval_is_seeded_and_covers_the_mean():
    a = bootstrap_interval(UT_PSNR)
    assert a == bootstrap_interval(UT_PSNR)
    assert a[1] < a[0] < a[2]
    narrow = bootstrap_interval(UT_PSNR, Thresholds(confidence=0.5))
    assert a[1] < narrow[1] and narrow[2] < a[2]
    assert THRESHOLDS.forget_tolerance_db > 0


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
