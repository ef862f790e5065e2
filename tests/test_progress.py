"""Progress displays: plain ETA lines off a terminal, quiet scopes, delay, nesting, and the
library stages that use them (evaluation, image grids, report)."""

from __future__ import annotations

import pytest
import torch

import forgetir.runtime.progress as progress
from forgetir.data.testsets import build_test_sets
from forgetir.render.figures import write_model_grid
from forgetir.runtime.progress import Progress, is_quiet, quiet_scope, track
from forgetir.scoring.evaluate import evaluate_model


@pytest.fixture
def no_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "STAGE_DELAY", 0.0)


def test_plain_lines_without_control_characters(capsys: pytest.CaptureFixture, no_delay) -> None:
    assert list(track(range(40), 40, "stage")) == list(range(40))
    err = capsys.readouterr().err
    lines = err.splitlines()
    # One line per ~5% of the run (every 2 items of 40), each with rate and ETA.
    assert len(lines) == 20
    assert all(line.startswith("stage ") and "eta" in line and "items/s" in line for line in lines)
    assert lines[-1].startswith("stage 40/40")
    assert "\x1b" not in err and "\r" not in err


def test_quiet_scope_and_argument(capsys: pytest.CaptureFixture, no_delay) -> None:
    with quiet_scope():
        assert is_quiet() and not is_quiet(False)
        list(track(range(5), 5, "hidden"))
    list(track(range(5), 5, "hidden", quiet=True))
    assert capsys.readouterr().err == ""
    assert not is_quiet()  # the scope is restored on exit
    list(track(range(5), 5, "shown"))
    assert "shown 5/5" in capsys.readouterr().err


def test_delay_hides_quick_stages(capsys: pytest.CaptureFixture) -> None:
    list(track(range(5), 5, "quick", delay=60.0))
    assert capsys.readouterr().err == ""


def test_nested_display_stays_silent(capsys: pytest.CaptureFixture, no_delay) -> None:
    with Progress(2, 0, True, "outer") as outer:
        list(track(range(4), 4, "inner"))
        outer.update(2, "")
    err = capsys.readouterr().err
    assert "outer 2/2" in err and "inner" not in err
    # Once the outer display is closed, a new one shows again.
    list(track(range(2), 2, "after"))
    assert "after 2/2" in capsys.readouterr().err


def test_evaluation_and_grid_show_progress(
    capsys: pytest.CaptureFixture, tmp_path, no_delay
) -> None:
    sets = build_test_sets("deadleaves", tasks=("dehaze", "derain"), n=2, size=16)
    evaluate_model(torch.nn.Identity(), sets, label="evaluate BEFORE")
    write_model_grid(tmp_path / "g.png", {"BEFORE": torch.nn.Identity()}, sets)
    err = capsys.readouterr().err
    assert "evaluate BEFORE 4/4" in err and "image grid 2/2" in err
    evaluate_model(torch.nn.Identity(), sets, quiet=True)
    with quiet_scope():
        write_model_grid(tmp_path / "g.png", {"BEFORE": torch.nn.Identity()}, sets)
    assert capsys.readouterr().err == ""
