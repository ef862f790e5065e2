"""Models that become checkpoints only inside a run: a live ``nn.Module`` (the Python API)
or ``fresh:MODEL`` (a newly initialised registered model), saved with a training-data record.

Kept below the run commands so that ``forgetir unlearn`` and :mod:`forgetir.api` share it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from forgetir.errors import InvalidInputError

FRESH = "fresh:"


def prepare_checkpoint(
    spec: Any, out: Path, seed: int, name: str = "before", data: dict[str, Any] | None = None
) -> Any:
    """A checkpoint path for ``spec``: a live ``nn.Module`` or ``"fresh:MODEL"`` (a newly
    initialised registered model, seeded) is saved as ``out/<name>.safetensors``; anything
    else (a path, ``shipped:...``) is returned unchanged.

    Such a model has no training record, so the data it is said to know (the pool the split
    draws forget and retain images from) is the ``cpu`` preset's, with ``data`` overrides
    (``{"pool_size": 8}``), written into the sidecar as the checkpoints of ``forgetir train`` do.

    Example:
        >>> import tempfile, pathlib
        >>> with tempfile.TemporaryDirectory() as d:
        ...     prepare_checkpoint("fresh:moceir-tiny", pathlib.Path(d), seed=0).name
        'before.safetensors'
    """
    from forgetir.checkpoint import save_model

    fresh = isinstance(spec, str) and spec.startswith(FRESH)
    if not fresh and not isinstance(spec, nn.Module):
        if data:
            raise InvalidInputError(
                f"data settings {sorted(data)} apply only to a fresh or live model; "
                f"checkpoint {str(spec)!r} carries its own training data record"
            )
        return spec
    config = {"data": _data_config(data)}
    if isinstance(spec, nn.Module):
        from forgetir.models.external import register_instance

        register_instance(spec)
        command = "forgetir.unlearn(model)"
        return save_model(spec, out / f"{name}.safetensors", command=command, config=config)
    from forgetir.models import create_model

    with torch.random.fork_rng(devices=[]):  # leave the caller's RNG stream alone
        torch.manual_seed(seed)
        model = create_model(spec[len(FRESH) :])
    command = f"create_model({spec[len(FRESH) :]!r}), seed {seed}"
    return save_model(model, out / f"{name}.safetensors", command=command, config=config)


def _data_config(data: dict[str, Any] | None) -> dict[str, Any]:
    from dataclasses import asdict

    from forgetir.config import DataConfig, from_dict, load_config

    base = asdict(load_config("cpu").data)
    return asdict(from_dict(DataConfig, {**base, **(data or {})}, "data."))
