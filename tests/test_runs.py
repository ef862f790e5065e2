import json
import shutil

import pytest

from forgetir.checkpoint import sha256_file
from forgetir.cli import main
from forgetir.runs import hash_check, resolve, verify_folder
from forgetir.unlearn import run_unlearn


@pytest.fixture(scope="module")
def run_dir(parent, tmp_path_factory, tiny_opts):
    out = tmp_path_factory.mktemp("runs") / "run"
    run_unlearn(parent, out, tiny_opts(grids=False), forget=["dehaze"], ut=parent, command="test")
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


def test_verify_adds_a_ut_to_a_run_made_without_one(parent, tmp_path, tiny_opts):
    out = tmp_path / "no-ut"
    run = run_unlearn(parent, out, tiny_opts(verify=False), forget=["dehaze"])
    assert run["ut"] is None and not (out / "verify.json").exists()
    result = verify_folder(out, ut=str(parent), relearn_steps=1)
    assert result["output_gap"]["value"] is not None
    assert result["relearn"]["runs"]["UT"]["steps"] == 1
    assert "UT" in json.loads((out / "quality.json").read_text())["rows"]
    recorded = json.loads((out / "run.json").read_text())["ut"]
    assert recorded["sha256"] == sha256_file(parent)


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
    with pytest.raises(FileNotFoundError, match="forgetir unlearn"):
        verify_folder(tmp_path)
    assert main(["verify", str(tmp_path)]) == 2


def test_verify_command_prints_the_figures(run_dir, capsys):
    assert main(["verify", str(run_dir), "--relearn-steps", "1", "--ain-max-steps", "1"]) == 0
    out = capsys.readouterr().out
    for words in ("SHA-256 checked", "re-hashing", "vs UT", "output gap to UT", "AIN", "cost"):
        assert words in out, words
    assert "promptir protocol" in out


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


def test_a_failed_verify_leaves_the_folder_as_it_was(parent, tmp_path, tiny_opts):
    out = tmp_path / "no-ut"
    run_unlearn(parent, out, tiny_opts(verify=False), forget=["dehaze"])
    before = {n: (out / n).read_bytes() for n in ("run.json", "quality.json")}
    # The new UT's quality row is computed first; the bad option fails later, in relearning.
    with pytest.raises(ValueError, match="relearn steps"):
        verify_folder(out, ut=str(parent), relearn_steps=-1)
    assert {n: (out / n).read_bytes() for n in before} == before
    assert not (out / "verify.json").exists()
