"""PromptIR's layout: list formats, naming rules, strict missing-file reports, task subsets."""

from __future__ import annotations

import pytest
import torch

from forgetir.config import DataConfig
from forgetir.data.datasets import build_train_dataset
from forgetir.data.io import write_image
from forgetir.data.promptir_layout import PromptIRLayout, dehaze_clean_name, derain_clean_name


def _img(path, side=32):
    write_image(path, torch.rand(3, side, side))


def make_tree(base, with_lists=True):
    """A tiny PromptIR tree: data/ (images) beside data_dir/ (lists), like the official repo."""
    root = base / "data"
    tr = root / "Train"
    for n in ("00001.bmp", "a12.jpg", "extra.png"):
        _img(tr / "Denoise" / n)
    for k in (1, 12):
        _img(tr / "Derain" / "rainy" / f"rain-{k}.png")
        _img(tr / "Derain" / "gt" / f"norain-{k}.png")
    for h in ("0001_0.8_0.2.jpg", "0001_1_0.04.jpg", "0002_0.9_0.1.jpg"):
        _img(tr / "Dehaze" / "synthetic" / "part1" / h)
    for c in ("0001.jpg", "0002.jpg"):
        _img(tr / "Dehaze" / "original" / c)
    te = root / "test"
    for n in ("test001.png", "test002.png"):
        _img(te / "denoise" / "bsd68" / n)
    for side in ("input", "target"):
        _img(te / "derain" / "Rain100L" / side / "rain-001.png")
    _img(te / "dehaze" / "input" / "0003_0.8_0.2.jpg")
    _img(te / "dehaze" / "target" / "0003.png")
    if with_lists:
        lists = base / "data_dir"
        (lists / "noisy").mkdir(parents=True)
        (lists / "noisy" / "denoise.txt").write_text("00001.bmp\na12.jpg\n")
        (lists / "rainy").mkdir()
        (lists / "rainy" / "rainTrain.txt").write_text("rainy/rain-1.png\nrainy/rain-12.png\n")
        (lists / "hazy").mkdir()
        (lists / "hazy" / "hazy_outside.txt").write_text(
            "synthetic/part1/0001_0.8_0.2.jpg\nsynthetic/part1/0002_0.9_0.1.jpg\n"
        )
    return root


def test_naming_rules_follow_the_official_loaders():
    assert derain_clean_name("rainy/rain-12.png") == "gt/norain-12.png"
    assert dehaze_clean_name("synthetic/part1/0025_0.8_0.04.jpg") == "original/0025.jpg"
    assert dehaze_clean_name("0003_0.8_0.2.jpg", suffix=".png") == "original/0003.png"
    with pytest.raises(ValueError, match="rain-N.png"):
        derain_clean_name("rainy/img-3.png")
    with pytest.raises(ValueError, match="ID_A_beta"):
        dehaze_clean_name("synthetic/hazy.jpg")


def test_train_lists_are_read_in_list_order(tmp_path):
    layout = PromptIRLayout(make_tree(tmp_path))
    assert layout.list_dir == tmp_path / "data_dir"
    den = layout.denoise_images()
    assert [den.name(i) for i in range(len(den))] == [
        "Train/Denoise/00001.bmp",
        "Train/Denoise/a12.jpg",
    ]  # extra.png is not in the list
    rain = layout.derain_pairs()
    assert rain.name(1) == "Train/Derain/rainy/rain-12.png"
    assert rain.target_path(1).name == "norain-12.png"
    haze = layout.dehaze_pairs()
    assert len(haze) == 2
    assert haze.target_path(1).as_posix().endswith("Train/Dehaze/original/0002.jpg")
    y, x = haze.get_pair(0)
    assert y.shape == x.shape == (3, 32, 32)


def test_listed_names_without_files_are_reported(tmp_path):
    root = make_tree(tmp_path)
    (tmp_path / "data_dir" / "noisy" / "denoise.txt").write_text(
        "00001.bmp\ngone1.bmp\ngone2.jpg\n"
    )
    layout = PromptIRLayout(root)
    with pytest.raises(ValueError, match=r"2 of 3 listed files are missing .*gone1.bmp, gone2.jpg"):
        layout.denoise_images()
    (tmp_path / "data_dir" / "rainy" / "rainTrain.txt").write_text("rainy/rain-1.png\n")
    (root / "Train" / "Derain" / "gt" / "norain-1.png").unlink()
    with pytest.raises(ValueError, match="derain: 1 clean images .* gt/norain-1.png"):
        layout.derain_pairs()


def test_any_subset_of_denoise_tasks_works(tmp_path):
    root = make_tree(tmp_path)
    layout = PromptIRLayout(root)
    clean, pairs = layout.train_sources(["denoise_25"])
    assert len(clean) == 2 and pairs == {}
    clean, pairs = layout.train_sources(["derain"])
    assert clean is None and list(pairs) == ["derain"]
    cfg = DataConfig(
        source="promptir", root=str(root), tasks=["denoise_50", "dehaze"], patch_size=16
    )
    ds = build_train_dataset(cfg, seed=0)
    assert ds.tasks == ["denoise_50", "dehaze"]
    item = ds[1]
    assert item["task"] == "dehaze" and item["image"].startswith("Train/Dehaze/synthetic/")
    assert ds[0]["task"] == "denoise_50"


def test_without_lists_the_folders_are_listed(tmp_path):
    layout = PromptIRLayout(make_tree(tmp_path, with_lists=False))
    assert layout.list_dir is None
    den = layout.denoise_images()
    assert len(den) == 3 and "folder listing" in den.label
    assert len(layout.dehaze_pairs()) == 3


def test_test_sets(tmp_path):
    layout = PromptIRLayout(make_tree(tmp_path))
    assert len(layout.test_denoise()) == 2
    rain = layout.test_derain()
    assert rain.name(0) == "test/derain/Rain100L/input/rain-001.png"
    haze = layout.test_dehaze()
    assert haze.target_path(0).name == "0003.png"
    (tmp_path / "data" / "test" / "dehaze" / "target" / "0003.png").unlink()
    with pytest.raises(ValueError, match="1 target images missing .*0003.png"):
        layout.test_dehaze()


def test_bad_roots(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        PromptIRLayout(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="Train/ and/or test/"):
        PromptIRLayout(tmp_path)


def test_train_and_eval_commands_run_on_the_tree(tmp_path, capsys):
    from forgetir.cli import main

    root = make_tree(tmp_path)
    out = tmp_path / "run"
    argv = ["train", "--config", "cpu", "--out", str(out), "--quiet"]
    argv += [f"data.root={root}", "data.source=promptir", "data.patch_size=16"]
    argv += ["data.test_set=promptir", "data.test_max_side=null", "train.steps=2"]
    argv += ["train.batch_size=2", "optim.warmup_steps=0"]
    assert main(argv) == 0
    assert (
        main(
            ["eval", str(out / "model.safetensors"), "--test-set", "promptir", "--root", str(root)]
        )
        == 0
    )
    table = capsys.readouterr().out
    assert "| input |" in table and "dehaze" in table and "denoise σ50" in table
