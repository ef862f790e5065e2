"""forgetir.runtime.process: devices, precision and the global random generators."""

import random

import numpy as np
import pytest
import torch

from forgetir.config import ConfigError
from forgetir.errors import DeviceError, InvalidInputError
from forgetir.runtime.process import (
    get_rng_state,
    init_distributed,
    resolve_device,
    resolve_precision,
    seed_everything,
    set_rng_state,
)


def test_rng_state_round_trip():
    seed_everything(3)
    state = get_rng_state()
    a = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(state)
    b = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]


def test_device_and_precision_choices_on_cpu(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert init_distributed("cpu").world_size == 1 and init_distributed("cpu").is_main
    assert resolve_device("cpu").type == "cpu"
    assert resolve_precision("auto", torch.device("cpu")) == (None, False)
    assert resolve_precision("bf16", torch.device("cpu")) == (torch.bfloat16, False)
    with pytest.raises(DeviceError, match="valid: auto, cpu, cuda"):
        resolve_device("tpu")
    with pytest.raises(ConfigError, match="valid: auto, fp32, bf16, fp16"):
        resolve_precision("fp8", torch.device("cpu"))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(InvalidInputError, match="RANK is not.*torchrun"):
        init_distributed("cpu")
    for name, value, valid in (("WORLD_SIZE", "two", ">= 1"), ("RANK", "2", "0..1")):
        monkeypatch.setenv("RANK", "0")
        monkeypatch.setenv(name, value)
        with pytest.raises(InvalidInputError, match=f"{name}=.*valid: .*{valid}"):
            init_distributed("cpu")
        monkeypatch.setenv("WORLD_SIZE", "2")
