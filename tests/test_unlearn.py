import json

import pytest
import torch

from forgetir.checkpoint import load_model, read_sidecar, sha256_file
from forgetir.checkpoint.shipped import resolve_checkpoint
from forgetir.data.io import tensor_sha256
from forgetir.records import ModelMeta
from forgetir.report.write import write_report
from forgetir.runs.testbed import parent_data_config
from forgetir.unlearn import run_unlearn
from forgetir.unlearn.inputs import parent_sources


def test_unlearn_writes_a_complete_run(parent, tmp_path, tiny_opts, ut_ckpt):
    out = tmp_path / "run"
    run = run_unlearn(parent, out, tiny_opts(), forget=["dehaze"], ut=ut_ckpt, command="test")
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


def test_retain_budget_rolls_back(parent, tmp_path, tiny_opts):
    # A budget of 0 dB against steps of lr 1 (each weight moves by about 1): never met, so the
    # guard must restore the starting weights. (A negative budget is refused as meaningless.)
    opts = tiny_opts(retain_budget=0.0, lr=1.0, guard_every=1, verify=False, grids=False)
    run = run_unlearn(parent, tmp_path / "r", opts, forget=["dehaze"])
    assert run["stopped_early"].startswith("retain budget")
    model = load_model(tmp_path / "r" / "model.safetensors")
    before = load_model(parent)
    for a, b in zip(model.state_dict().values(), before.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_unlearn_errors(parent, tmp_path, tiny_opts):
    with pytest.raises(KeyError, match="accurate-forgetting"):
        run_unlearn(parent, tmp_path / "a", tiny_opts(method="nope"), forget=["dehaze"])
    with pytest.raises(ValueError, match="--forget"):
        run_unlearn(parent, tmp_path / "b", tiny_opts())
    with pytest.raises(ValueError, match="dehaze"):
        run_unlearn(parent, tmp_path / "c", tiny_opts(), forget=["fog"])


def test_split_test_sets_hold_each_part_and_task():
    from forgetir.config import DataConfig
    from forgetir.data.splits import build_split_datasets, make_split
    from forgetir.runs.testbed import split_set_names, split_test_sets

    data = DataConfig(
        tasks=["inpaint_4", "denoise_25"],
        content_classes=["disks", "stripes"],
        pool_size=8,
        image_size=32,
        patch_size=32,
    )
    ds = build_split_datasets(make_split(data, "class", ["stripes"]), 32)
    sets = split_test_sets(ds, n=6)
    assert split_set_names(sets) == (
        ["forget:inpaint_4", "forget:denoise_25"],
        ["retain:inpaint_4", "retain:denoise_25"],
    )
    assert all(len(s) == 3 for s in sets.values())
    assert "(denoise_25)" in sets["forget:denoise_25"].source
    # The inpainting set is masked (a flat box), the denoising one noisy everywhere.
    x, y = sets["forget:inpaint_4"].degraded[0], sets["forget:inpaint_4"].clean[0]
    assert (x == 0.5).float().mean() > 0.2 and (x != y).float().mean() < 0.5


def test_unlearn_prints_the_table_and_the_verification(
    parent, tmp_path, tiny_opts, capsys, ut_ckpt
):
    opts = tiny_opts(quiet=False, grids=False, relearn_steps=1, ain_max_steps=1)
    run_unlearn(parent, tmp_path / "run", opts, forget=["dehaze"], ut=ut_ckpt)
    out = capsys.readouterr().out
    assert "promptir protocol" in out and "| BEFORE |" in out
    assert "output gap to UT" in out and "anamnesis index AIN" in out
    assert f"Saved {tmp_path / 'run'}" in out


def test_data_free_mode_trains_on_other_clean_images(parent, tmp_path, tiny_opts, ut_ckpt):
    from forgetir.config import DataConfig
    from forgetir.data.pool import DeadLeavesPool
    from forgetir.unlearn import clean_source_images

    data = DataConfig(pool_size=3, image_size=32)
    fresh = clean_source_images("deadleaves", data, seed=0)
    assert not torch.equal(fresh.get(0), DeadLeavesPool(3, 32, 0).get(0))
    with pytest.raises(ValueError, match="clean-source"):
        clean_source_images(str(tmp_path / "missing"), data)
    # What `forgetir demo --method proxy-retrain` does, on the tiny parent: unlearn, verify, report.
    opts = tiny_opts(clean_source="deadleaves", method="proxy-retrain")
    run = run_unlearn(parent, tmp_path / "df", opts, forget=["dehaze"], ut=ut_ckpt)
    assert run["options"]["clean_source"] == "deadleaves"
    assert "proxy-retrain" in write_report(tmp_path / "df")["html"].read_text()


def test_a_shipped_parent_lends_its_pool_hashes_and_they_are_the_pixels():
    path = resolve_checkpoint("shipped:before")
    meta = ModelMeta.from_json(read_sidecar(path), str(path))
    clean, _ = parent_sources(parent_data_config(meta), path, meta)
    assert len(clean._hashes) == clean.size == 1024  # taken from before.pool.json, not rendered
    for i in (0, 517, 1023):  # and they are the hashes of what the generator renders
        assert clean.sha256(i) == tensor_sha256(clean.get(i))
    # A pool file that is not the recorded one lends nothing.
    forged = ModelMeta.from_json(
        {**meta.raw, "train_pool": {**meta.raw["train_pool"], "sha256": "0"}}, "x"
    )
    clean, _ = parent_sources(parent_data_config(meta), path, forged)
    assert clean._hashes == {}


def test_unlearn_without_method_uses_the_recommended_one_and_its_schedule(parent, tmp_path, capsys):
    from forgetir.cli import main
    from forgetir.methods import get_method

    out = tmp_path / "default"
    # The parent's images are 32x32, smaller than the recommended 64x64 patches: give the patch.
    argv = ["unlearn", str(parent), "--forget", "denoise", "--steps", "1", "--patch-size", "16"]
    assert main([*argv, "--no-verify", "--max-side", "32", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "no --method given: using proxy-retrain-full (" in printed
    run = json.loads((out / "run.json").read_text())
    assert run["method"] == "proxy-retrain-full"
    # Given options win; the others come from the method's recommended schedule.
    plan = get_method("proxy-retrain-full").recommended_schedule
    assert run["options"]["steps"] == 1 and run["options"]["patch_size"] == 16
    assert run["options"]["batch_size"] == plan["batch_size"]
