"""Issue 23, the rest: a split entry has one identity (the bytes hashed are the bytes trained
on, paths stay under the data root, no copy of a forgotten image is retained, an instances
split names images the parent trained on)."""

from __future__ import annotations

import errno
import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from forgetir.config import DataConfig
from forgetir.data.io import write_image
from forgetir.data.splits import (
    ManifestError,
    build_split_datasets,
    load_manifest,
    make_split,
    save_manifest,
)
from forgetir.errors import RunExistsError

# ------------------------------------------------------------ 4. one identity per split entry


def _tree(root: Path) -> Path:
    for c in ("cats", "dogs"):
        for k in range(3):
            write_image(root / c / f"{k}.png", torch.rand(3, 16, 16))
    return root


def _files_split(tmp_path: Path, forget=("cats/0.png",)) -> tuple[Path, dict]:
    root = _tree(tmp_path / "pets")
    cfg = DataConfig(source="classes", root=str(root), test_set="deadleaves", patch_size=8)
    m = make_split(cfg, "instances", list(forget), held_out_fraction=0.0, test_n=1, test_size=16)
    return root, m


def _edited(tmp_path: Path, m: dict) -> Path:
    path = tmp_path / "split.json"
    path.write_text(json.dumps(m))
    return path


@pytest.mark.parametrize("bad", ["../../etc/passwd", "/etc/passwd", "cats/../../x.png"])
def test_manifest_paths_stay_inside_the_data_root(tmp_path, bad):
    _, m = _files_split(tmp_path)
    m["retain"]["entries"][0]["path"] = bad
    with pytest.raises(ManifestError, match=r"retain.entries\[0\].*leaves the data root"):
        load_manifest(_edited(tmp_path, m))


def test_the_file_hashed_is_the_file_trained_on(tmp_path):
    root, m = _files_split(tmp_path)
    # A tampered image, trained on by its id, while an untouched copy is what gets hashed.
    entry = m["forget"]["entries"][0]
    shutil.copy(root / entry["path"], root / "cats" / "copy.png")
    write_image(root / entry["id"], torch.zeros(3, 16, 16))
    entry["path"] = "cats/copy.png"
    with pytest.raises(ManifestError, match="is not its id 'cats/0.png'"):
        load_manifest(_edited(tmp_path, m), verify=True)


def test_a_paired_target_is_bound_to_its_input(tmp_path):
    root = tmp_path / "data"
    for k in range(3):
        for side in ("input", "target"):
            write_image(root / "derain" / side / f"{k}.png", torch.rand(3, 16, 16))
    cfg = DataConfig(source="paired", root=str(root), tasks=["derain"], patch_size=8)
    cfg.test_set = "deadleaves"
    m = make_split(cfg, "instances", ["derain/input/0.png"], held_out_fraction=0.0, test_n=1)
    e = m["forget"]["entries"][0]
    e["target"] = m["retain"]["entries"][0]["target"]  # an untouched target, hashed instead
    e["target_sha256"] = m["retain"]["entries"][0]["target_sha256"]
    manifest = load_manifest(_edited(tmp_path, m), verify=True)  # each file is as hashed...
    with pytest.raises(ManifestError, match="not paired with.*derain/input/0.png"):
        build_split_datasets(manifest)  # ...but it is not the target trained against


def test_a_copy_of_a_forgotten_image_is_not_retained(tmp_path):
    root = _tree(tmp_path / "pets")
    shutil.copy(root / "cats" / "0.png", root / "dogs" / "copy.png")  # byte-identical
    cfg = DataConfig(source="classes", root=str(root), test_set="deadleaves", patch_size=8)
    with pytest.raises(ManifestError, match=r"dogs/copy.png \(= cats/0.png\).*--forget"):
        make_split(cfg, "instances", ["cats/0.png"], held_out_fraction=0.0, test_n=1)
    # Forgetting both is a valid deletion request.
    m = make_split(cfg, "instances", ["cats/0.png", "dogs/copy.png"], held_out_fraction=0.0)
    assert save_manifest(m, tmp_path / "ok.json").is_file()


def _parent_data(parent: Path) -> DataConfig:
    from forgetir.checkpoint import read_sidecar
    from forgetir.config import from_dict

    return from_dict(DataConfig, read_sidecar(parent)["config"]["data"], "data.")


TINY_UNLEARN = ["--steps", "1", "--batch-size", "2", "--patch-size", "32", "--no-verify"]
TINY_UNLEARN += ["--quiet", "--threads", "1"]
TINY_TRAIN = ["train.batch_size=2", "data.pool_size=2", "data.image_size=32"]
TINY_TRAIN += ["data.patch_size=32", "data.test_max_side=32", "optim.warmup_steps=0"]


def _one_line_error(capsys, argv: list[str]) -> str:
    from forgetir.cli import main

    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"forgetir {argv[0]}: error: "), lines
    return lines[0]


def test_an_instances_split_must_name_images_the_parent_trained_on(parent, tmp_path, capsys):
    cfg = _parent_data(Path(parent))
    cfg.pool_seed += 1  # the same ids, other images: never seen by the parent
    m = make_split(cfg, "instances", ["dl-000001"], held_out=1)
    split = save_manifest(m, tmp_path / "s.json")
    out = tmp_path / "run"
    argv = ["unlearn", str(parent), *TINY_UNLEARN, "--split", str(split), "--out", str(out)]
    err = _one_line_error(capsys, argv)
    assert str(split) in err and "dl-000001 (other bytes)" in err and "trained on" in err
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["s.json"]


# ---------------------------------------------------------- 5. sizes the model's crop needs


def test_eval_max_side_below_the_crop_names_the_valid_minimum(capsys):
    err = _one_line_error(capsys, ["eval", "shipped:before", "--max-side", "15", "--threads", "1"])
    assert "--max-side=15" in err and "valid: 0 (full size) or >= 24" in err


def test_unlearn_max_side_below_the_crop_is_refused_before_work(parent, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["unlearn", str(parent), *TINY_UNLEARN, "--forget", "dehaze", "--max-side", "20"]
    err = _one_line_error(capsys, [*argv, "--out", str(out)])
    assert "--max-side=20" in err and ">= 24" in err
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------ 6. a distributed launch half-set


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"WORLD_SIZE": "2"}, "WORLD_SIZE=2 is set but RANK is not"),
        ({"WORLD_SIZE": "2", "RANK": "5"}, "RANK=5 is out of range; valid: 0..1"),
        ({"WORLD_SIZE": "lots"}, "WORLD_SIZE='lots' is out of range"),
    ],
)
def test_a_half_set_distributed_environment_is_refused_before_work(
    tmp_path, monkeypatch, capsys, env, says
):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "t"
    argv = ["train", "--out", str(out), "train.steps=1", "--quiet", "--threads", "1"]
    assert says in _one_line_error(capsys, argv)
    assert not out.exists()


# ------------------------------------------------------------------------ 6. a full disk


def _disk_full(*args, **kwargs):
    path = args[0] if args else kwargs.get("file")
    raise OSError(errno.ENOSPC, "No space left on device", str(path))


def test_a_full_disk_in_an_atomic_write_keeps_the_old_file_and_leaves_no_temp(
    tmp_path, monkeypatch
):
    from forgetir import atomic
    from forgetir.errors import OutputPathError

    target = tmp_path / "table.json"
    target.write_text("the old table")
    monkeypatch.setattr(atomic, "fsync_file", _disk_full)  # the data does not reach the disk
    with pytest.raises(OutputPathError, match=f"cannot write {target}: No space left"):
        atomic.atomic_json(target, {"new": 1})
    assert target.read_text() == "the old table"
    assert [p.name for p in tmp_path.iterdir()] == ["table.json"]


def test_a_full_disk_during_training_is_one_line_naming_the_file(tmp_path, monkeypatch, capsys):
    from forgetir.engine import logs

    out = tmp_path / "t"
    argv = ["train", "--out", str(out), *TINY_TRAIN, "train.steps=3", "train.log_every=1"]
    monkeypatch.setattr(logs, "open", _disk_full, raising=False)  # log.csv's appends
    err = _one_line_error(capsys, [*argv, "--quiet", "--threads", "1"])
    assert f"no space left on the device writing {out / 'log.csv'}" in err


# ------------------------------------------------- 6. --seeds interrupted between two seeds


def test_seeds_resume_after_an_interrupt_without_redoing_or_mixing(
    parent, tmp_path, tiny_opts, monkeypatch, capsys
):
    from forgetir.unlearn import run as unlearn_run

    opts = tiny_opts(verify=False, grids=False, seed=0)
    real, calls = unlearn_run.run_unlearn, []

    def counted(checkpoint, out, o, **kw):
        calls.append(o.seed)
        return real(checkpoint, out, o, **kw)

    def interrupted(checkpoint, out, o, **kw):  # Ctrl-C / SIGTERM once seed 0 is finished
        if o.seed == 1:
            raise KeyboardInterrupt
        return counted(checkpoint, out, o, **kw)

    monkeypatch.setattr(unlearn_run, "run_unlearn", interrupted)
    with pytest.raises(KeyboardInterrupt):
        unlearn_run.run_unlearn_seeds(parent, tmp_path / "s", opts, 2, forget=["dehaze"])
    seed0 = (tmp_path / "s" / "seed-0" / "run.json").read_bytes()
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["seed-0", "seeds-plan.json"]

    # Other settings into the same folder: refused, naming what differs; nothing changed.
    monkeypatch.setattr(unlearn_run, "run_unlearn", real)
    with pytest.raises(RunExistsError, match=r"\(lr differ\)"):
        unlearn_run.run_unlearn_seeds(
            parent, tmp_path / "s", replace(opts, lr=1e-5), 2, forget=["dehaze"]
        )
    # The same command again: seed 0 kept as it was, seed 1 run, both summarised.
    calls.clear()
    monkeypatch.setattr(unlearn_run, "run_unlearn", counted)
    summary = unlearn_run.run_unlearn_seeds(parent, tmp_path / "s", opts, 2, forget=["dehaze"])
    assert calls == [1] and summary["n"] == 2
    assert (tmp_path / "s" / "seed-0" / "run.json").read_bytes() == seed0


# ---------------------------------------------- 6. a --model-module model that misbehaves

_NET = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, out_channels=3, stride=1):
        super().__init__()
        self.conv = nn.Conv2d(3, out_channels, 3, stride=stride, padding=1)

    def forward(self, x):
        return {forward}


def build():
    {build}
"""
_MISBEHAVING = {
    "raises": ("x", 'raise RuntimeError("needs a GPU")', "factory raised RuntimeError"),
    "tuple": ("(x, self.conv(x))", "return Net()", "returns a tuple"),
    "channels": ("self.conv(x)", "return Net(out_channels=1)", "shape (1, 1, 32, 32)"),
    "stride": ("self.conv(x)", "return Net(stride=2)", "shape (1, 3, 16, 16)"),
    "nan": ("self.conv(x) * float('nan')", "return Net()", "not finite"),
    "no-parameters": ("x", "return nn.Identity()", "no trainable parameters"),
    "dtype": ("self.conv(x).double()", "return Net()", "torch.float64"),
    "fails-on-images": ("self.conv(x[:, :1])", "return Net()", "fails on a (1, 3, 32, 32)"),
}


@pytest.mark.parametrize("kind", list(_MISBEHAVING))
def test_a_misbehaving_model_module_is_one_line_before_any_work(tmp_path, capsys, kind):
    forward, build, says = _MISBEHAVING[kind]
    module = tmp_path / f"net_{kind.replace('-', '_')}.py"
    module.write_text(_NET.format(forward=forward, build=build))
    out = tmp_path / "run"
    argv = ["unlearn", "--model-module", f"{module}:build", "--forget", "dehaze", *TINY_UNLEARN]
    err = _one_line_error(capsys, [*argv, "--out", str(out)])
    assert f"--model-module {module}:build" in err and says in err, err
    assert not out.exists()


# ------------------------------------------- 5. memory: refused up front, with the estimate


def test_eval_refuses_an_image_that_would_not_fit_and_a_tile_makes_it_fit(monkeypatch, capsys):
    from forgetir.scoring import footprint

    monkeypatch.setattr(footprint, "available_bytes", lambda device: 3 << 20)  # 3 MiB free
    argv = ["eval", "shipped:before", "--max-side", "64", "--tasks", "denoise_25"]
    argv += ["--test-set", "photos", "--threads", "1", "--quiet"]
    err = _one_line_error(capsys, argv)
    assert "whole needs about 10 MiB" in err and "3 MiB is free on cpu" in err, err
    assert "--tile 256" in err and "--max-side" in err
    # Tiles of 32 x 32 need a quarter of that: the same images are restored.
    from forgetir.cli import main

    assert main([*argv, "--tile", "32"]) == 0
    assert footprint.estimate_bytes(32, 32, 32) < 3 << 20 < footprint.estimate_bytes(32, 64, 64)


# ------------------------------------ 4. a manifest edited after a run started is detected


def test_resuming_a_training_on_an_edited_split_manifest_is_refused(tmp_path):
    from forgetir.config import ConfigError, load_config
    from forgetir.train import run_train

    cfg = load_config("cpu", [*TINY_TRAIN, "train.steps=1", "data.pool_size=4"])
    split = tmp_path / "split.json"
    save_manifest(make_split(cfg.data, "instances", ["dl-000001"], held_out=1), split)
    cfg.data.split, cfg.data.part = str(split), "retain"
    run_train(cfg, tmp_path / "ut", quiet=True)
    # The same file name, now forgetting another image: the retain images trained on change.
    save_manifest(make_split(cfg.data, "instances", ["dl-000002"], held_out=1), split)
    with pytest.raises(ConfigError, match="inputs.data.split sha256"):
        run_train(cfg, tmp_path / "ut", resume=True, quiet=True)


def test_verify_detects_a_split_manifest_edited_after_the_run(parent, tmp_path, capsys):
    from forgetir.cli import main

    out = tmp_path / "run"
    assert (
        main(["unlearn", str(parent), *TINY_UNLEARN, "--forget", "dehaze", "--out", str(out)]) == 0
    )
    split = out / "split.json"
    m = json.loads(split.read_text())
    m["retain"]["tasks"] = m["retain"]["tasks"][:1]  # still a valid manifest
    split.write_text(json.dumps(m))
    err = _one_line_error(capsys, ["verify", str(out), "--threads", "1"])
    assert str(split) in err


def test_an_image_listed_twice_in_a_part_is_refused(tmp_path):
    _, m = _files_split(tmp_path)
    m["retain"]["entries"].append(m["retain"]["entries"][0])
    m["retain"]["count"] += 1
    with pytest.raises(ManifestError, match="retain lists image\\(s\\) twice: cats/1.png"):
        load_manifest(_edited(tmp_path, m))


def test_a_writer_that_reports_a_full_disk_its_own_way_is_named(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from forgetir import atomic
    from forgetir.errors import OutputPathError

    target = tmp_path / "resume.pt"

    def torch_save(tmp):  # what torch.save raises when the disk fills
        tmp.write_bytes(b"half")
        raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")

    with pytest.raises(RuntimeError, match="PytorchStreamWriter"):  # space left: a bug's own
        with atomic.atomic_path(target) as tmp:
            torch_save(tmp)
    monkeypatch.setattr(atomic.os, "statvfs", lambda p: SimpleNamespace(f_bavail=0))
    with pytest.raises(OutputPathError, match=f"cannot write {target}: no space left"):
        with atomic.atomic_path(target) as tmp:
            torch_save(tmp)
    assert list(tmp_path.iterdir()) == []
