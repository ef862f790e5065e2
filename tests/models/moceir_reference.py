"""Shared by ``test_moceir.py`` and ``scripts/make_moceir_reference.py``: the configurations
compared with the official MoCE-IR code and the deterministic weights both models get.

The weights are derived from each parameter's *name* (a generator seeded with its CRC-32), so
the official module and ours receive identical values without any weights stored in the repo.

Example:
    >>> sorted(CONFIGS)
    ['spread-top1-complexity', 'uniform-top2']
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import torch
from torch import nn

# Official constructor keyword arguments (``MoCEIR(**kwargs)`` of the published file).
CONFIGS: dict[str, dict[str, Any]] = {
    # The published expert layout (spread ranks, constant depth) at width 8, top-1 routing
    # and the complexity-biased balance loss.
    "spread-top1-complexity": {
        "dim": 8,
        "num_blocks": [1, 1, 1, 1],
        "num_dec_blocks": [1, 1, 1],
        "heads": [1, 2, 4, 8],
        "num_refinement_blocks": 1,
        "rank_type": "spread",
        "depth_type": "constant",
        "stage_depth": [1, 1, 1],
        "topk": 1,
        "with_complexity": True,
        "complexity_scale": "max",
    },
    # Other ranks/depths, two experts per image, two blocks in one decoder level.
    "uniform-top2": {
        "dim": 8,
        "num_blocks": [1, 2, 1, 1],
        "num_dec_blocks": [1, 2, 1],
        "heads": [1, 1, 2, 2],
        "num_refinement_blocks": 2,
        "rank": 2,
        "rank_type": "lin",
        "depth_type": "lin",
        "stage_depth": [2, 1, 1],
        "topk": 2,
        "with_complexity": False,
        "complexity_scale": "min",
    },
}
EVAL_INPUT = (1, 3, 32, 40)  # the published inference path handles one image at a time
TRAIN_INPUT = (3, 3, 24, 16)
EVAL_SEED, TRAIN_SEED, INPUT_SEED = 123, 7, 5


def ours_kwargs(official: dict[str, Any]) -> dict[str, Any]:
    """Our constructor's arguments for an official configuration (only one name differs)."""
    out = dict(official)
    if "LayerNorm_type" in out:
        out["layer_norm_type"] = out.pop("LayerNorm_type")
    return out


def reference_weights(model: nn.Module) -> nn.Module:
    """Fill every parameter of ``model`` from its name (buffers are left as built).

    Norm weights and attention temperatures are ``1 + 0.2 * N(0, 1)``; everything else
    ``N(0, 1) / sqrt(fan_in)``, so activations stay of order one through the network.
    """
    with torch.no_grad():
        for name, p in model.named_parameters():
            g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
            noise = torch.randn(p.shape, generator=g, dtype=torch.float64)
            if name.endswith(("temperature", "body.weight")):  # norm scales, temperatures
                value = 1 + 0.2 * noise
            else:
                fan_in = p[0].numel() if p.ndim > 1 else p.numel()
                value = noise / math.sqrt(max(fan_in, 1))
            p.copy_(value.to(p.dtype))
    return model


def inputs() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(INPUT_SEED)
    return torch.rand(*EVAL_INPUT, generator=g), torch.rand(*TRAIN_INPUT, generator=g)
