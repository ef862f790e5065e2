"""cells: the issue-11 measuring cell; its data, its validation set, and (slow) the published
benchmark table reproduced within its sd."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from forgetir.cells import CellOptions, run_cell, unlearn_data, validation_sets
from forgetir.data.testsets import build_test_sets
from forgetir.runs.seeds import mean_sd

RESULTS = Path(__file__).parents[1] / "benchmarks" / "results" / "bench_forgetting.jsonl"


def test_validation_set_is_not_the_test_set():
    val = validation_sets(2, 32)["dehaze"]
    test = build_test_sets("deadleaves", ("dehaze",), n=2, size=32)["dehaze"]
    for v, t in zip(val.clean, test.clean, strict=True):
        assert not torch.equal(v, t)


def test_data_free_cells_train_on_images_before_never_saw():
    with_data = unlearn_data("dehaze", 0, CellOptions(patch_size=32))
    free = unlearn_data("dehaze", 0, CellOptions(patch_size=32, clean_source="deadleaves"))
    assert set(free) >= {"forget", "retain"}
    assert not torch.equal(with_data["forget"][0]["clean"], free["forget"][0]["clean"])


def _published(label: str, forget_type: str) -> list[dict]:
    rows = [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]
    return [r for r in rows if r["label"] == label and r["forget_type"] == forget_type]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("label", "method", "relearn"),
    [
        ("proxy-retrain (ours)", "proxy-retrain", False),
        # The registered method, against the benchmark's row of its hyperparameters; the
        # relearning figure is the reason it exists, so it is checked too.
        ("proxy-retrain + relearning guard", "proxy-retrain-guarded", True),
    ],
)
def test_published_dehaze_cell_reruns_within_its_sd(label, method, relearn):
    """Rerun a 3-seed dehaze cell of the README table (minutes on one core) and check each
    mean figure on the photos (and the relearning attack's gain) within the published sd."""
    torch.set_num_threads(1)
    published = _published(label, "dehaze")[:3]
    assert len(published) == 3, "the benchmark results file lacks this cell"
    opts = CellOptions(eval_sets=("photos",), relearn_steps=20 if relearn else 0, ain_max_steps=0)
    rerun = [run_cell(method, "dehaze", seed, opts) for seed in range(3)]
    for key in ("forget_vs_ut", "worst_retain_delta", "gap_ratio"):
        pub_m, pub_s = mean_sd([p["eval"]["photos"][key] for p in published])
        new_m, _ = mean_sd([r["eval"]["photos"][key] for r in rerun])
        assert abs(new_m - pub_m) <= max(pub_s, 0.02), (key, new_m, pub_m, pub_s)
    if relearn:
        pub_m, pub_s = mean_sd([p["relearn"]["gain_db"] for p in published])
        new_m, _ = mean_sd([r["relearn"]["gain_db"] for r in rerun])
        assert abs(new_m - pub_m) <= max(pub_s, 0.1), ("relearn", new_m, pub_m, pub_s)
