"""``forgetir demo`` end to end at a tiny size: the report files exist and name the method,
the forgotten task and the verification's verdict.

About 30 s of CPU on one thread (measured: 28 s user time; the wall time grows with the load
of a shared machine).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forgetir.cli import main

# Few steps and small photos: the same code path as the real demo, a fraction of its time.
TINY = ["--steps", "2", "--max-side", "48", "--relearn-steps", "2", "--ain-max-steps", "3"]


def _run_demo(out: Path, forget: str, capsys: pytest.CaptureFixture) -> str:
    argv = ["demo", "--forget", forget, "--threads", "1", "--out", str(out), *TINY]
    assert main(argv) == 0
    return capsys.readouterr().out


def _check_report(out: Path, method: str, forget: str) -> None:
    for name in ("report.html", "report.md", "report.json"):
        assert (out / name).is_file(), (
            f"{name} missing from {sorted(p.name for p in out.iterdir())}"
        )
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    title = f"forgetir report: {method}, forgetting {forget}"
    assert title in md and title in html
    report = json.loads((out / "report.json").read_text())
    assert report["title"] == title
    # The anamnesis index's verdict is in the report, and it is one of verify's sentences.
    verdict = report["verification"]["anamnesis"]["verdict"]
    assert isinstance(verdict, str) and verdict
    assert f"Verdict: {verdict}" in md
    assert any("grid" in f for f in json.dumps(report["figures"]).split('"'))


def test_demo_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "demo"
    printed = _run_demo(out, "derain", capsys)
    _check_report(out, "accurate-forgetting", "derain")
    assert "Report:" in printed and str(out.name) in printed
    # The command in the run record reproduces this run, tiny options included.
    run = json.loads((out / "run.json").read_text())
    assert "--max-side 48" in json.dumps(run)
