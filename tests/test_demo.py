"""``forgetir demo`` end to end at a tiny size: both methods run on one BEFORE/UT evaluation,
the side-by-side table and a verdict per method are printed, and each run has its report.

About a minute of CPU on one thread (the wall time grows with the load of a shared machine).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forgetir.cli import main
from forgetir.demo import demo_methods

# Few steps and small photos: the same code path as the real demo, a fraction of its time.
TINY = ["--steps", "2", "--max-side", "48", "--relearn-steps", "2", "--ain-max-steps", "3"]


def test_demo_runs_the_papers_and_the_recommended_method(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--forget", "dehaze", "--threads", "1", "--out", str(out), *TINY]) == 0
    printed = capsys.readouterr().out
    methods = [m for m, _ in demo_methods("dehaze", None)]
    assert methods == ["accurate-forgetting", "proxy-retrain-guarded"]
    quality = {m: json.loads((out / m / "quality.json").read_text())["rows"] for m in methods}
    verdicts = {m: json.loads((out / m / "verify.json").read_text())["verdict"] for m in methods}
    # BEFORE and UT are evaluated once and shared: the same figures in both runs.
    a, b = (quality[m] for m in methods)
    assert a["BEFORE"] == b["BEFORE"] and a["UT"] == b["UT"] and a["input"] == b["input"]
    # The shipped pair: BEFORE restores haze, UT leaves it (paired over the same 55 images).
    psnr = {label: a[label]["dehaze"]["psnr"] for label in ("input", "BEFORE", "UT")}
    assert psnr["BEFORE"] > psnr["UT"] + 3 and abs(psnr["UT"] - psnr["input"]) < 1
    assert len(a["BEFORE"]["dehaze"]["images"]) == 55
    table = printed[printed.index("side by side") :]
    for m in methods:
        v = verdicts[m]
        assert v["basis"] == "UT" and v["forget"]["n"] == 55
        # The printed table and verdict line carry this run's figures.
        assert f"| {m} | {quality[m]['unlearned']['dehaze']['psnr']:.2f}/" in table
        assert f"{m}: {v['line']}" in table
        for name in ("report.html", "report.md", "report.json"):
            assert (out / m / name).is_file()
        report = json.loads((out / m / "report.json").read_text())
        assert report["title"] == f"forgetir report: {m}, forgetting dehaze"
    # The command in each run record reproduces that run, tiny options included.
    run = json.loads((out / methods[1] / "run.json").read_text())
    assert "--method proxy-retrain-guarded" in run["command"] and "--max-side 48" in run["command"]
    assert "Reports:" in printed


def test_demo_with_one_given_method(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "one"
    argv = ["demo", "--forget", "derain", "--method", "finetune", "--threads", "1"]
    assert main([*argv, "--out", str(out), *TINY]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["finetune"]
    assert "finetune: VERDICT" in capsys.readouterr().out


def test_unknown_demo_method_lists_the_valid_ones() -> None:
    with pytest.raises(Exception, match="accurate-forgetting"):
        demo_methods("dehaze", ["no-such-method"])
