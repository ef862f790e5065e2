"""forgetir.scoring.inference: the tiling and precision scopes, bf16 autocast, shared options."""

from __future__ import annotations

import pytest
import torch

from forgetir.checkpoint import load_model
from forgetir.checkpoint.shipped import resolve_checkpoint
from forgetir.cli import main
from forgetir.data.testsets import build_test_sets
from forgetir.errors import InvalidInputError
from forgetir.scoring.evaluate import evaluate_model
from forgetir.scoring.inference import (
    autocast_dtype,
    current_precision,
    current_tiling,
    forward,
    gather_shares,
    precision_scope,
    shard_indices,
    shard_scope,
    tiling_options,
    tiling_scope,
)


def test_scopes_nest_and_restore():
    assert current_tiling() == (None, 32) and current_precision() == "fp32"
    with tiling_scope(64, 8), precision_scope("bf16"):
        assert current_tiling() == (64, 8) and current_precision() == "bf16"
        with tiling_scope(None):
            assert current_tiling()[0] is None
        assert current_tiling() == (64, 8)
    assert current_tiling() == (None, 32) and current_precision() == "fp32"


def test_bad_precision_and_tiling_are_refused_naming_the_option():
    with pytest.raises(InvalidInputError, match=r"--precision: invalid value 'fp8'; valid: auto"):
        precision_scope("fp8").__enter__()
    with pytest.raises(InvalidInputError, match="--tile-overlap=8 needs --tile N"):
        tiling_options(None, 8)
    assert tiling_options(64, None) == (64, 16)  # a quarter of a small tile


def test_auto_precision_is_fp32_on_the_cpu():
    assert autocast_dtype("auto", torch.device("cpu")) is None
    assert autocast_dtype("fp32", torch.device("cpu")) is None
    assert autocast_dtype("bf16", torch.device("cpu")) is torch.bfloat16


def test_fp16_needs_a_gpu():
    with pytest.raises(InvalidInputError, match="--precision fp16 needs a CUDA GPU"):
        autocast_dtype("fp16", torch.device("cpu"))


def test_shards_interleave_and_cover_every_image():
    shares = []
    for rank in range(3):
        with shard_scope(rank, 3):
            shares.append(shard_indices(7))
    assert shares == [[0, 3, 6], [1, 4], [2, 5]]
    assert shard_indices(7) == list(range(7))  # outside a scope: every image
    with pytest.raises(ValueError, match="rank 2 is not in 0..world_size-1"):
        shard_scope(2, 2).__enter__()
    with pytest.raises(RuntimeError, match=r"no process restored image\(s\) \[1\]"):
        gather_shares([torch.zeros(1), None])


def test_bf16_forward_is_autocast_and_returns_fp32():
    lin = torch.nn.Conv2d(3, 3, 1)
    x = torch.rand(1, 3, 8, 8)
    y32, y16 = forward(lin, x), forward(lin, x, precision="bf16")
    assert y32.dtype == y16.dtype == torch.float32
    assert not torch.equal(y32, y16)  # the convolution really ran in bf16
    assert torch.allclose(y32, y16, atol=0.02)
    with precision_scope("bf16"):
        assert torch.equal(forward(lin, x), y16)


def test_bf16_evaluation_of_the_shipped_model_is_within_0_05_db_of_fp32():
    # measured on the 7 photos at 128 px, all five tasks: -0.003 to -0.011 dB (CPU bf16)
    model = load_model(resolve_checkpoint("shipped:before")).eval()
    sets = build_test_sets("photos", ["dehaze", "denoise_25"], 64)
    fp32 = evaluate_model(model, sets, quiet=True)
    bf16 = evaluate_model(model, sets, quiet=True, precision="bf16")
    for task in sets:
        assert fp32[task]["psnr"] != bf16[task]["psnr"]
        assert abs(fp32[task]["psnr"] - bf16[task]["psnr"]) < 0.05


def test_eval_command_precision_is_printed_and_recorded(tmp_path, capsys):
    import json

    out = tmp_path / "r.json"
    args = ["eval", "shipped:before", "--tasks", "denoise_25", "--max-side", "32", "--quiet"]
    assert main([*args, "--precision", "bf16", "--out", str(out)]) == 0
    assert "bfloat16 autocast (--precision bf16); metrics in fp32" in capsys.readouterr().out
    assert json.loads(out.read_text())["precision"] == "bfloat16"
    with pytest.raises(SystemExit):
        main([*args, "--precision", "fp8"])
    assert "invalid choice: 'fp8'" in capsys.readouterr().err
