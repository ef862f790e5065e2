"""--precision on unlearn and verify: autocast on fp32 weights, recorded; fp16 refused on a CPU."""

from __future__ import annotations

import json

import pytest
import safetensors.torch
import torch

from forgetir.cli import main
from forgetir.errors import InvalidInputError
from forgetir.unlearn import run_unlearn


def test_fp16_on_a_cpu_is_refused_before_any_work(parent, tmp_path, tiny_opts):
    with pytest.raises(InvalidInputError, match="--precision fp16 needs a CUDA GPU"):
        run_unlearn(parent, tmp_path / "r", tiny_opts(precision="fp16"), forget=["dehaze"])
    assert not (tmp_path / "r").exists()
    with pytest.raises(InvalidInputError, match="--precision: invalid value 'fp8'"):
        run_unlearn(parent, tmp_path / "r", tiny_opts(precision="fp8"), forget=["dehaze"])


def test_bf16_unlearning_keeps_fp32_weights_and_records_its_precision(parent, tmp_path, tiny_opts):
    out = tmp_path / "bf16"
    opts = tiny_opts(precision="bf16", verify=False, grids=False)
    run = run_unlearn(parent, out, opts, forget=["dehaze"])
    assert run["options"]["precision"] == "bf16"
    weights = safetensors.torch.load_file(str(out / "model.safetensors"))
    assert all(t.dtype == torch.float32 for t in weights.values())  # autocast, not bf16 weights
    # verify takes the run's precision unless told otherwise, and records what it used
    assert main(["verify", str(out), "--precision", "fp32", "--relearn-steps", "0",
                 "--ain-max-steps", "0", "--quiet"]) == 0  # fmt: skip
    assert json.loads((out / "run.json").read_text())["options"]["precision"] == "fp32"
