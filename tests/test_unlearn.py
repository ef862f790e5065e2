import json

import pytest
import torch

from forgetir.checkpoint import load_model, sha256_file
from forgetir.report import write_report
from forgetir.unlearn import UnlearnOptions, run_unlearn


def _opts(**kw):
    base = dict(
        steps=2,
        batch_size=2,
        patch_size=32,
        test_max_side=32,
        relearn_steps=2,
        ain_max_steps=2,
        verify_eval_every=1,
        quiet=True,
    )
    base.update(kw)
    return UnlearnOptions(**base)


def test_unlearn_writes_a_complete_run(parent, tmp_path):
    out = tmp_path / "run"
    run = run_unlearn(parent, out, _opts(), forget=["dehaze"], ut=parent, command="test")
    for name in ("run.json", "model.safetensors", "model.json", "quality.json", "verify.json"):
        assert (out / name).is_file(), name
    assert run["forget_tasks"] == ["dehaze"]
    assert set(run["retain_tasks"]) == {"derain", "denoise_15", "denoise_25", "denoise_50"}
    assert run["parent"]["sha256"] == sha256_file(parent)
    assert run["split"]["manifest"]["sha256"] == sha256_file(out / "split.json")
    model = load_model(out / "model.safetensors")
    meta = model.forgetir_meta
    assert meta["method"] == "accurate-forgetting"
    assert meta["parent"]["sha256"] == sha256_file(parent)
    before = load_model(parent)
    changed = any(
        not torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), before.state_dict().values(), strict=True)
    )
    assert changed, "two unlearning steps must move the weights"
    quality = json.loads((out / "quality.json").read_text())
    assert {"input", "BEFORE", "unlearned", "UT"} <= set(quality["rows"])
    paths = write_report(out)
    assert "accurate-forgetting" in paths["html"].read_text()


def test_retain_budget_rolls_back(parent, tmp_path):
    # A budget of -1 dB can never be met: the guard must restore the starting weights.
    opts = _opts(retain_budget=-1.0, guard_every=1, verify=False, grids=False)
    run = run_unlearn(parent, tmp_path / "r", opts, forget=["dehaze"])
    assert run["stopped_early"].startswith("retain budget")
    model = load_model(tmp_path / "r" / "model.safetensors")
    before = load_model(parent)
    for a, b in zip(model.state_dict().values(), before.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_unlearn_errors(parent, tmp_path):
    with pytest.raises(KeyError, match="accurate-forgetting"):
        run_unlearn(parent, tmp_path / "a", _opts(method="nope"), forget=["dehaze"])
    with pytest.raises(ValueError, match="--forget"):
        run_unlearn(parent, tmp_path / "b", _opts())
    with pytest.raises(ValueError, match="dehaze"):
        run_unlearn(parent, tmp_path / "c", _opts(), forget=["fog"])
