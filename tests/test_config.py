"""Typed run configs: presets, typed overrides, unknown keys and bad values named, saved tree."""

from __future__ import annotations

import pytest
import yaml

from forgetir.config import (
    ConfigError,
    RunConfig,
    from_dict,
    list_presets,
    load_config,
    parse_override,
    save_config,
    to_dict,
)


def test_presets_load():
    assert {"cpu", "paper"} <= set(list_presets())
    cpu = load_config("cpu")
    assert cpu.model.name == "promptir-tiny" and cpu.data.source == "deadleaves"
    paper = load_config("paper")
    # the official recipe: AdamW 2e-4, warm-up 15 epochs, cosine over 150 epochs, global batch 32
    assert paper.model.name == "promptir" and paper.optim.name == "adamw"
    assert paper.optim.lr == 2e-4 and paper.train.batch_size == 32 and paper.data.patch_size == 128
    assert paper.optim.warmup_steps == 15000 and paper.optim.decay_steps == 150000
    assert paper.train.steps == 120000


def test_overrides_are_typed():
    cfg = load_config(
        "cpu",
        [
            "optim.lr=1e-3",
            "train.steps=12",
            "optim.grad_clip=null",
            "train.channels_last=true",
            "data.exclude=[dehaze, derain]",
            "model.args={dim: 8}",
            "optim.min_lr=0",
        ],
    )
    assert cfg.optim.lr == 1e-3 and isinstance(cfg.optim.lr, float)
    assert cfg.train.steps == 12 and isinstance(cfg.train.steps, int)
    assert cfg.optim.grad_clip is None and cfg.train.channels_last is True
    assert cfg.data.exclude == ["dehaze", "derain"] and cfg.model.args == {"dim": 8}
    assert isinstance(cfg.optim.min_lr, float)
    assert parse_override("optim.lr=2e-4") == ("optim.lr", 2e-4)


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.stepz=3", r"unknown key\(s\) train.stepz .*valid: .*train.steps"),
        ("nonsense.x=1", r"unknown key\(s\) nonsense .*valid: model, data, optim, train"),
        ("train.steps=abc", r"train.steps: expected an integer"),
        ("train.steps=1.5", r"train.steps: expected an integer"),
        ("train.channels_last=maybe", r"train.channels_last: expected true/false"),
        ("optim.name=rmsprop", r"optim.name: invalid value 'rmsprop'; valid: adamw, adam, sgd"),
        ("train.precision=fp8", r"valid: auto, fp32, bf16, fp16"),
        ("train.nonfinite=ignore", r"valid: stop, skip"),
        ("optim.lr", r"must look like key=value"),
    ],
)
def test_bad_overrides_are_named(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("cpu", [override])


def test_unknown_preset_and_file(tmp_path):
    with pytest.raises(ConfigError, match="valid presets: .*cpu.*paper"):
        load_config("gpu")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  steps: 3\n  speed: 9\n")
    with pytest.raises(ConfigError, match="train.speed"):
        load_config(bad)


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config("cpu", ["train.steps=7", "data.exclude=[dehaze]", "optim.lr=3e-4"])
    path = tmp_path / "run" / "config.yaml"
    save_config(cfg, path)
    assert not list(path.parent.glob("*.tmp"))
    data = yaml.safe_load(path.read_text())
    assert data["train"]["steps"] == 7 and data["data"]["exclude"] == ["dehaze"]
    again = load_config(path)
    assert again == cfg
    assert from_dict(RunConfig, to_dict(cfg)) == cfg
