"""The recommended method for a split of images, by the split's kind."""

from __future__ import annotations

from forgetir.methods import get_method
from forgetir.methods.recommend import PAPER_METHOD, method_and_schedule, recommended_method


def test_deletion_request_and_class_get_their_orbit_method_with_a_reason():
    for kind, name in (("instances", "orbit-consistency"), ("class", "orbit-consistency-class")):
        method, why = recommended_method(None, split_kind=kind)
        assert method == name and "UT" in why and "flips/rotations" in why
        get_method(method)  # registered
    assert recommended_method([])[0] == "orbit-consistency"  # a split of unknown kind: images


def test_a_degradation_split_gets_the_papers_method_and_tasks_still_win():
    method, why = recommended_method(None, split_kind="degradation")
    assert method == PAPER_METHOD and "--forget" in why
    assert recommended_method(["dehaze"], split_kind="class")[0] != "orbit-consistency-class"


def test_schedule_of_the_recommended_split_method_is_its_own():
    method, schedule, why = method_and_schedule(None, None, {}, split_kind="class")
    assert method == "orbit-consistency-class" and why
    assert schedule == {"steps": 30, "batch_size": 8, "patch_size": 32}


def test_unlearn_without_method_reads_the_split_kind_from_the_manifest(monkeypatch, capsys):
    """`forgetir unlearn --split` with no --method: a class manifest gets the class method."""
    from pathlib import Path

    import forgetir.cli.unlearn as cli_unlearn
    from forgetir.cli import main

    seen = {}

    def fake_run(checkpoint, out, opts, **kwargs):
        seen["method"] = opts.method
        return {}

    monkeypatch.setattr(cli_unlearn, "run_unlearn", fake_run)
    weights = Path(cli_unlearn.__file__).resolve().parents[1] / "weights"
    for manifest, expected in (
        ("class-ut-motif.split.json", "orbit-consistency-class"),
        ("mem-ut.split.json", "orbit-consistency"),
    ):
        main(
            [
                "unlearn",
                "shipped:class-before",
                "--split",
                str(weights / manifest),
                "--threads",
                "1",
            ]
        )
        assert seen["method"] == expected
        assert f"using {expected}" in capsys.readouterr().out
