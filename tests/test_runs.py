import json
import shutil

import pytest

from forgetir.checkpoint import sha256_file
from forgetir.checks.verify import verify_folder
from forgetir.cli import main
from forgetir.errors import InputFileError, IntegrityError
from forgetir.runs.folder import RunFolder, hash_check, resolve
from forgetir.unlearn import run_unlearn


@pytest.fixture(scope="module")
def run_dir(parent, tmp_path_factory, tiny_opts, ut_ckpt):
    out = tmp_path_factory.mktemp("runs") / "run"
    run_unlearn(parent, out, tiny_opts(grids=False), forget=["dehaze"], ut=ut_ckpt, command="test")
    return out


def _close(a, b):
    """Nested JSON equality, numbers to 1e-6 (a fresh process may sum in another order)."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return b == pytest.approx(a, rel=1e-6, abs=1e-9)
    return a == b


def _figures(v):
    return {
        "gaps": v["gaps"]["tasks"],
        "output_gap": v["output_gap"],
        "relearn": {k: r["curve"] for k, r in v["relearn"]["runs"].items()},
        "ain": v["anamnesis"]["ain"],
    }


def test_verify_recomputes_the_same_figures_in_a_moved_folder(run_dir, tmp_path):
    first = json.loads((run_dir / "verify.json").read_text())
    moved = tmp_path / "elsewhere"
    shutil.copytree(run_dir, moved)
    (moved / "verify.json").unlink()
    # split.json was recorded under the old folder: it must be found in the moved one.
    again = verify_folder(moved)
    assert (moved / "verify.json").is_file()
    assert _close(_figures(again), _figures(first))
    assert json.loads((moved / "run.json").read_text())["verify"] == "verify.json"


def test_verify_adds_a_ut_to_a_run_made_without_one(parent, tmp_path, tiny_opts, ut_ckpt):
    out = tmp_path / "no-ut"
    run = run_unlearn(parent, out, tiny_opts(verify=False), forget=["dehaze"])
    assert run["ut"] is None and not (out / "verify.json").exists()
    result = verify_folder(out, ut=str(ut_ckpt), relearn_steps=1)
    assert result["output_gap"]["value"] is not None
    assert result["relearn"]["runs"]["UT"]["steps"] == 1
    assert "UT" in json.loads((out / "quality.json").read_text())["rows"]
    recorded = json.loads((out / "run.json").read_text())["ut"]
    assert recorded["sha256"] == sha256_file(ut_ckpt)


def test_verify_refuses_a_parent_that_changed(parent, run_dir, tmp_path, tiny_opts):
    # The run records its parent's SHA-256: swap other (valid) weights in at that path.
    own_parent = tmp_path / "parent" / "model.safetensors"
    own_parent.parent.mkdir()
    shutil.copy(parent, own_parent)
    shutil.copy(parent.with_suffix(".json"), own_parent.with_suffix(".json"))
    out = tmp_path / "run"
    run_unlearn(own_parent, out, tiny_opts(verify=False), forget=["dehaze"])
    shutil.copy(out / "model.safetensors", own_parent)
    shutil.copy(out / "model.json", own_parent.with_suffix(".json"))
    with pytest.raises(ValueError, match="MISMATCH"):
        verify_folder(out)
    assert not (out / "verify.json").exists()


def test_verify_names_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(InputFileError, match="forgetir unlearn"):
        verify_folder(tmp_path)
    assert main(["verify", str(tmp_path)]) == 2


def test_verify_command_prints_the_figures(run_dir, capsys):
    assert main(["verify", str(run_dir), "--relearn-steps", "1", "--ain-max-steps", "1"]) == 0
    out = capsys.readouterr().out
    for words in ("SHA-256 checked", "re-hashing", "vs UT", "output gap to UT", "AIN", "cost"):
        assert words in out, words
    assert "promptir protocol" in out
    assert out.index("VERDICT ") < out.index("quality: PSNR")  # the verdict comes first


def test_verify_quiet_silences_progress(run_dir, capsys):
    args = ["verify", str(run_dir), "--relearn-steps", "1", "--ain-max-steps", "1"]
    assert main(args) == 0
    loud = capsys.readouterr()
    assert "anamnesis unlearned" in loud.err  # progress lines (stderr is not a terminal)
    assert main([*args, "--quiet"]) == 0
    quiet = capsys.readouterr()
    assert "anamnesis" not in quiet.err and "forgetir verify:" not in quiet.out
    assert "VERDICT " in quiet.out


def test_resolve_and_hash_check(tmp_path):
    f = tmp_path / "x.bin"
    f.write_bytes(b"abc")
    assert resolve(tmp_path, "/nowhere/x.bin") == tmp_path / "x.bin"  # found by name
    assert resolve(tmp_path, "/nowhere/y.bin") is None
    ok = hash_check(tmp_path, {"path": str(f), "sha256": sha256_file(f)})
    assert ok["check"] == "match"
    assert hash_check(tmp_path, {"path": str(f), "sha256": "0" * 64})["check"].startswith(
        "MISMATCH"
    )


def test_a_failed_verify_leaves_the_folder_as_it_was(
    parent, tmp_path, tiny_opts, monkeypatch, ut_ckpt
):
    import forgetir.checks.verify

    out = tmp_path / "no-ut"
    run_unlearn(parent, out, tiny_opts(verify=False), forget=["dehaze"])
    before = {n: (out / n).read_bytes() for n in ("run.json", "quality.json")}

    def fail(*args, **kwargs):
        raise RuntimeError("failed after the new UT's quality row was computed")

    # The new UT's quality row is computed first; the failure comes later, in the checks.
    monkeypatch.setattr(forgetir.checks.verify, "verify_model", fail)
    with pytest.raises(RuntimeError, match="quality row"):
        verify_folder(out, ut=str(ut_ckpt))
    assert {n: (out / n).read_bytes() for n in before} == before
    assert not (out / "verify.json").exists()


def _copy_run(run_dir, tmp_path):
    moved = tmp_path / "copy"
    shutil.copytree(run_dir, moved)
    return moved


def test_run_json_records_every_file_the_verdict_rests_on(run_dir):
    run = RunFolder(run_dir).read_run()
    assert set(RunFolder(run_dir).recorded(run)) == {
        "parent", "ut", "split", "model", "model_sidecar", "test_set", "quality"
    }  # fmt: skip
    assert run.files["model"].sha256 == sha256_file(run_dir / "model.safetensors")


def test_verify_refuses_ut_copied_over_the_unlearned_model(parent, run_dir, tmp_path):
    # Issue 13: copying UT's weights and sidecar over the run's model made verify certify UT.
    run = _copy_run(run_dir, tmp_path)
    before = (run / "verify.json").read_bytes()
    shutil.copy(parent, run / "model.safetensors")  # the run's UT is this file
    shutil.copy(parent.with_suffix(".json"), run / "model.json")
    with pytest.raises(IntegrityError, match=r"model file .*model.safetensors changed"):
        verify_folder(run)
    assert (run / "verify.json").read_bytes() == before
    assert main(["verify", str(run)]) == 2
    assert main(["report", str(run)]) == 2
    assert not (run / "report.html").exists()


def test_verify_refuses_an_edited_split(run_dir, tmp_path):
    run = _copy_run(run_dir, tmp_path)
    split = json.loads((run / "split.json").read_text())
    split["forget"], split["retain"] = split["retain"], split["forget"]
    (run / "split.json").write_text(json.dumps(split))
    with pytest.raises(IntegrityError, match=r"split file .*split.json changed"):
        verify_folder(run)
    assert main(["verify", str(run)]) == 2


def test_verify_refuses_a_changed_test_set(run_dir, tmp_path):
    run = _copy_run(run_dir, tmp_path)
    manifest = json.loads((run / "testset.json").read_text())
    name = next(iter(manifest["sets"]))
    manifest["sets"][name]["images"][0]["clean"] = "0" * 64
    (run / "testset.json").write_text(json.dumps(manifest))
    with pytest.raises(IntegrityError, match="test_set file"):
        verify_folder(run)


def test_verify_refuses_a_run_whose_hash_records_were_removed(run_dir, tmp_path):
    run = _copy_run(run_dir, tmp_path)
    data = json.loads((run / "run.json").read_text())
    del data["files"]["model"]
    (run / "run.json").write_text(json.dumps(data))
    with pytest.raises(IntegrityError, match="records no SHA-256 for model"):
        verify_folder(run)


def test_tile_reaches_unlearn_and_verify_and_is_recorded(
    parent, tmp_path, tiny_opts, monkeypatch, ut_ckpt
):
    import forgetir.scoring.inference as ev

    tiles = []
    real = ev.restore_tiled
    monkeypatch.setattr(
        ev, "restore_tiled", lambda m, x, t, o: tiles.append((t, o)) or real(m, x, t, o)
    )
    out = tmp_path / "tiled"
    run = run_unlearn(parent, out, tiny_opts(grids=False, tile=16), forget=["dehaze"], ut=ut_ckpt)
    assert run["options"]["tile"] == 16 and set(tiles) == {(16, 4)}  # 32-px test images
    tiles.clear()
    verify_folder(out, tile=24, tile_overlap=8, relearn_steps=1, ain_max_steps=1)
    assert set(tiles) == {(24, 8)}  # the checks restore their images in tiles too
    recorded = json.loads((out / "run.json").read_text())["options"]
    assert (recorded["tile"], recorded["tile_overlap"]) == (24, 8)
    with pytest.raises(ValueError, match="--tile=4 is out of range; valid: >= 8"):
        verify_folder(out, tile=4)
    assert main(["verify", str(out), "--tile-overlap", "30"]) == 2  # >= the recorded --tile 24
