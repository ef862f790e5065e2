"""seeds: mean ± sd, the 2-sd "no difference" rule, and the summary of seed run folders."""

from __future__ import annotations

import json
import math

import pytest

from forgetir.runs.seeds import (
    SUMMARY_JSON,
    SUMMARY_MD,
    format_difference,
    mean_sd,
    no_difference,
    write_seed_summary,
)
from forgetir.unlearn import run_unlearn_seeds


def test_mean_sd_by_hand():
    m, s = mean_sd([2.0, 4.0, 9.0])
    assert m == pytest.approx(5.0)
    assert s == pytest.approx(math.sqrt(((3**2) + 1 + 16) / 2))
    assert mean_sd([3.0]) == (3.0, 0.0)
    assert all(math.isnan(v) for v in mean_sd([None, float("nan")]))


def test_two_sd_rule():
    assert no_difference([0.1, -0.1, 0.05])  # |0.017| < 2 x 0.10
    assert not no_difference([1.0, 1.1, 0.9])
    assert not no_difference([0.3])  # one seed: no sd to hide behind
    assert format_difference([1.0, 1.1, 0.9]) == "+1.00 ± 0.10"
    assert format_difference([0.1, -0.1, 0.05]).startswith("no difference")
    assert format_difference([]) == "–"


def test_unlearn_seeds_writes_seed_folders_and_summary(parent, tmp_path, tiny_opts, ut_ckpt):
    opts = tiny_opts(verify=False, grids=False, seed=3)
    summary = run_unlearn_seeds(parent, tmp_path, opts, 2, forget=["dehaze"], ut=ut_ckpt)
    assert (tmp_path / "seed-3" / "run.json").is_file()
    assert (tmp_path / "seed-4" / "run.json").is_file()
    assert json.loads((tmp_path / "seed-4" / "run.json").read_text())["seed"] == 4
    saved = json.loads((tmp_path / SUMMARY_JSON).read_text())
    assert saved["n"] == 2 == summary["n"]
    forget = saved["figures"]["forget vs UT"]
    assert len(forget["values"]) == 2 and "no_difference" in forget
    assert "| forget vs UT |" in (tmp_path / SUMMARY_MD).read_text()
    again = write_seed_summary(tmp_path, [tmp_path / "seed-3"])
    assert again["figures"]["forget PSNR"]["sd"] == 0.0


def test_unlearn_seeds_rejects_zero(parent, tmp_path, tiny_opts):
    with pytest.raises(ValueError, match="--seeds"):
        run_unlearn_seeds(parent, tmp_path, tiny_opts(), 0, forget=["dehaze"])
