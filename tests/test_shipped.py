"""The models shipped inside the package (the embedded default)."""

import shlex
from pathlib import Path

import pytest

from forgetir.checkpoint import load_model, read_sidecar
from forgetir.cli import main
from forgetir.shipped import SHIPPED, WEIGHTS_DIR, resolve_checkpoint, ut_name_for

AVAILABLE = [n for n in SHIPPED if (WEIGHTS_DIR / f"{n}.safetensors").is_file()]


@pytest.mark.parametrize("name", AVAILABLE)
def test_shipped_model_loads_with_its_training_record(name):
    path = resolve_checkpoint(f"shipped:{name}")
    model = load_model(path)  # verifies the recorded sha256
    meta = read_sidecar(path)
    assert meta["arch"] == "promptir-tiny"
    assert meta["command"].startswith("forgetir train --config cpu")
    for key in ("seed", "step", "wall_time", "train_pool", "config"):
        assert key in meta, key
    assert meta["step"] == meta["config"]["train"]["steps"]
    pool = WEIGHTS_DIR / meta["train_pool"]["file"]
    assert pool.is_file()
    # Every task it was trained on is clearly restored on the shipped photos.
    tasks, inputs = meta["metrics"]["tasks"], meta["metrics"]["input"]
    for task in meta["tasks"]:
        assert tasks[task]["psnr"] > inputs[task]["psnr"] + 1.0, task
    # ... and the excluded task is not (the UT behaviour the verification relies on).
    for task in meta["excluded"]:
        assert tasks[task]["psnr"] < inputs[task]["psnr"] + 1.0, task
    assert sum(p.numel() for p in model.parameters()) > 0


def test_resolve_errors_list_the_shipped_names():
    with pytest.raises(ValueError, match="shipped:before"):
        resolve_checkpoint("shipped:nope")
    assert resolve_checkpoint("some/file.safetensors") == Path("some/file.safetensors")
    assert ut_name_for(["dehaze"]) == "shipped:ut-dehaze"
    assert ut_name_for(["denoise_15", "denoise_25", "denoise_50"]) == "shipped:ut-denoise"
    assert ut_name_for(["denoise_15"]) is None


@pytest.mark.slow
@pytest.mark.parametrize("name", AVAILABLE)
def test_recorded_command_reruns(name, tmp_path):
    """The sidecar's exact command runs (for 3 steps) and gives the same architecture."""
    argv = shlex.split(read_sidecar(resolve_checkpoint(f"shipped:{name}"))["command"])[1:]
    i = argv.index("--out")
    argv[i + 1] = str(tmp_path / "run")
    argv += ["train.steps=3", "data.pool_size=8", "data.test_max_side=64", "--quiet"]
    assert main(argv) == 0
    assert read_sidecar(tmp_path / "run" / "model.safetensors")["arch"] == "promptir-tiny"
