"""`forgetir train`: a tiny run writes model + sidecar + config + pool manifest; --exclude."""

from __future__ import annotations

import argparse
import csv
import json

import pytest
import yaml

from forgetir.checkpoint import load_model, read_sidecar, sha256_file
from forgetir.cli.train import add_arguments as add_train_arguments
from forgetir.cli.train import run as train_command
from forgetir.config import load_config
from forgetir.train import run_train

TINY = [
    "train.steps=3",
    "train.batch_size=2",
    "train.log_every=1",
    "train.ckpt_every=2",
    "train.tensorboard=false",
    "data.pool_size=8",
    "data.image_size=32",
    "data.patch_size=32",
    "data.test_max_side=32",
    "optim.warmup_steps=1",
    "model.args={dim: 8}",
    "train.threads=1",  # 2 threads on 2 busy cores spin-wait: 40x slower here
]


def test_run_train_writes_model_sidecar_config_and_pool(tmp_path):
    cfg = load_config(
        "cpu",
        [*TINY, "data.tasks=[dehaze, denoise_25]", "data.exclude=[dehaze]", "train.eval_every=2"],
    )
    path = run_train(cfg, tmp_path, command="forgetir train (test)", quiet=True)
    assert path == tmp_path / "model.safetensors"
    side = read_sidecar(tmp_path)
    assert side["command"] == "forgetir train (test)" and side["seed"] == 0
    assert side["step"] == side["steps"] == 3 and side["wall_time"] > 0
    assert side["tasks"] == ["denoise_25"] and side["excluded"] == ["dehaze"]
    assert side["config"]["train"]["steps"] == 3
    metrics = side["metrics"]
    assert metrics["protocol"] == "promptir" and metrics["test_set"].startswith("7 shipped photos")
    assert set(metrics["tasks"]) == set(metrics["input"]) == {"dehaze", "denoise_25"}
    assert metrics["tasks"]["dehaze"]["n"] == 7
    # the resolved config is saved and reloads to the same run config
    assert load_config(tmp_path / "config.yaml") == cfg
    # the pool manifest lists every training image with its hash; the sidecar pins the file
    pool = json.loads((tmp_path / "train_pool.json").read_text())
    assert side["train_pool"]["sha256"] == sha256_file(tmp_path / "train_pool.json")
    ids = [e["id"] for e in pool["clean"]["entries"]]
    assert ids == [f"dl-{i:06d}" for i in range(8)] and side["train_pool"]["images"] == 8
    assert all(len(e["sha256"]) == 64 for e in pool["clean"]["entries"])
    model = load_model(tmp_path)
    assert (
        model.forgetir_spec["name"] == "promptir-tiny" and model.forgetir_spec["args"]["dim"] == 8
    )
    with open(tmp_path / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["step"] for r in rows] == ["1", "2", "3"]
    # periodic evaluation (every 2 steps) is logged beside the training loss
    assert float(rows[1]["eval/denoise_25/psnr"]) > 0 and rows[0]["eval/denoise_25/psnr"] == ""
    assert not list(tmp_path.glob("*.tmp"))
    # a second run into the same folder must be asked to resume; resuming a finished run is a no-op
    before = (tmp_path / "config.yaml").read_text()
    other = load_config("cpu", [*TINY, "train.steps=5"])
    with pytest.raises(FileExistsError, match="resume"):
        run_train(other, tmp_path, quiet=True)
    assert (tmp_path / "config.yaml").read_text() == before  # nothing overwritten
    again = run_train(cfg, tmp_path, resume=True, quiet=True)
    assert read_sidecar(again)["step"] == 3 and sha256_file(again) == side["sha256"]


def test_train_command_exclude_builds_the_ut_model(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    out = tmp_path / "ut"
    args = parser.parse_args(["--exclude", "denoise", "--out", str(out), *TINY])
    assert train_command(args) == 0
    side = read_sidecar(out)
    assert side["tasks"] == ["dehaze", "derain"]
    assert side["excluded"] == ["denoise_15", "denoise_25", "denoise_50"]
    assert "--exclude denoise" in side["command"]
    # the excluded tasks are still evaluated: that is where UT is compared
    assert set(side["metrics"]["tasks"]) == {"dehaze", "derain", "denoise_15", "denoise_25",
                                             "denoise_50"}  # fmt: skip
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["data"]["exclude"] == ["denoise_15", "denoise_25", "denoise_50"]
    assert json.loads((out / "train_pool.json").read_text())["tasks"] == ["dehaze", "derain"]
    printed = capsys.readouterr().out
    assert "| UT (no denoise_15, denoise_25, denoise_50) |" in printed and "| input |" in printed


def test_exclude_errors_name_the_task(tmp_path):
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    args = parser.parse_args(["--exclude", "snow", "--out", str(tmp_path), *TINY])
    with pytest.raises(ValueError, match="unknown task 'snow'.*valid choices: .*dehaze"):
        train_command(args)
    cfg = load_config("cpu", [*TINY, "data.tasks=[dehaze]", "data.exclude=[dehaze]"])
    with pytest.raises(ValueError, match="removes every task"):
        run_train(cfg, tmp_path / "x", quiet=True)
    assert not (tmp_path / "x").exists()


def test_build_model_fine_tunes_a_shipped_model():
    from forgetir.config import RunConfig
    from forgetir.train import build_model

    cfg = RunConfig()
    cfg.model.checkpoint = "shipped:inpaint-before"
    model = build_model(cfg)
    assert model.training and model.forgetir_spec["name"] == "promptir-tiny"
