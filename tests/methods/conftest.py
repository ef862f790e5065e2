"""Shared fixtures for the method tests: the real tiny models and tiny paired batches."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch
from torch import nn

from forgetir.models import create_model

TINY_MODELS = ("promptir-tiny", "adair-tiny")


@pytest.fixture(scope="session")
def _tiny_cache() -> dict[str, nn.Module]:
    cache = {}
    for i, name in enumerate(TINY_MODELS):
        torch.manual_seed(i)
        cache[name] = create_model(name)
    return cache


@pytest.fixture
def tiny(_tiny_cache: dict[str, nn.Module]) -> Callable[[str], nn.Module]:
    """``tiny(name)``: a fresh deep copy of a seeded tiny model (build once, copy per test)."""

    def make(name: str = "promptir-tiny") -> nn.Module:
        return copy.deepcopy(_tiny_cache[name])

    return make


def make_batch(seed: int, n: int = 2, size: int = 16, task: str = "dehaze") -> dict:
    """A paired batch whose degraded input is a hazy-looking version of the clean image."""
    g = torch.Generator().manual_seed(seed)
    clean = torch.rand(n, 3, size, size, generator=g)
    degraded = (0.6 * clean + 0.4 * torch.rand(n, 3, 1, 1, generator=g)).clamp(0, 1)
    return {"degraded": degraded, "clean": clean, "task": [task] * n}
