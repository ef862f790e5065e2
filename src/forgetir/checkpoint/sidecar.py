"""The JSON sidecar of a checkpoint: what it records (architecture, arguments, parent, command,
metrics, versions, the weights' SHA-256), its JSON normalisation, and reading it back."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from forgetir.checkpoint.files import (
    FORMAT,
    FORMAT_VERSION,
    CheckpointError,
    sha256_file,
    sidecar_for,
    weights_file,
)
from forgetir.errors import MissingInputError

# Keys that save_model fills itself; **meta may not overwrite them.
RESERVED_KEYS = frozenset(
    {
        "format",
        "format_version",
        "arch",
        "args",
        "weights",
        "sha256",
        "dtype",
        "num_parameters",
        "parent",
        "command",
        "metrics",
        "created",
        "forgetir_version",
        "torch_version",
        "path",
        "model_source",
        "model_encoder",
        "model_condition",
    }
)


def json_default(value: Any) -> Any:
    # Metrics often arrive as numpy scalars or 0-d tensors; their value is what matters.
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if (
        type(value).__module__ == "numpy"
        and hasattr(value, "item")
        and getattr(value, "size", 0) == 1
    ):
        return value.item()
    raise TypeError(f"object of type {type(value).__name__} is not JSON serialisable")


def to_json(key: str, value: Any) -> Any:
    """``value`` normalised to plain JSON types, or a TypeError naming ``key``."""
    try:
        return json.loads(json.dumps(value, default=json_default))
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"save_model: metadata {key!r} is not JSON-serialisable "
            f"({type(value).__name__}: {exc}); pass plain numbers, strings, lists or dicts"
        ) from None


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """The sidecar of a forgetir checkpoint: give the ``.safetensors``, its ``.json`` or the folder.

    Example:
        >>> import tempfile
        >>> from forgetir.checkpoint import save_model
        >>> from forgetir.models import create_model
        >>> with tempfile.TemporaryDirectory() as d:
        ...     _ = save_model(create_model("adair-tiny"), d)
        ...     read_sidecar(d)["arch"]
        'adair-tiny'
    """
    p = Path(path)
    if p.suffix == ".json" and not p.is_dir():
        sidecar = p
    else:
        weights = weights_file(p)
        if weights.suffix != ".safetensors":
            raise CheckpointError(
                f"{str(weights)!r} is a PyTorch checkpoint; only forgetir .safetensors "
                "checkpoints have a sidecar"
            )
        sidecar = sidecar_for(weights)
    if not sidecar.is_file():
        raise MissingInputError(f"sidecar {str(sidecar)!r} does not exist")
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"sidecar {str(sidecar)!r} is not valid JSON: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(
            f"sidecar {str(sidecar)!r} is not a forgetir checkpoint sidecar "
            f'(expected a JSON object with "format": {FORMAT!r})'
        )
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"sidecar {str(sidecar)!r} has format_version {version!r}; this forgetir reads "
            f"versions up to {FORMAT_VERSION} (upgrade forgetir to read it)"
        )
    missing = [k for k in ("arch", "args", "sha256") if k not in meta]
    if missing:
        raise CheckpointError(f"sidecar {str(sidecar)!r} lacks required field(s) {missing}")
    if not isinstance(meta["args"], dict):
        raise CheckpointError(f'sidecar {str(sidecar)!r}: "args" must be a JSON object')
    return meta


def parent_record(parent: str | Path | None, model: nn.Module) -> dict[str, str] | None:
    if parent is None:
        # A model loaded from a checkpoint remembers where it came from: that is its parent.
        source = getattr(model, "forgetir_meta", None)
        if isinstance(source, Mapping) and "path" in source and "sha256" in source:
            return {"path": str(source["path"]), "sha256": str(source["sha256"])}
        return None
    weights = weights_file(parent)
    return {"path": str(parent), "sha256": sha256_file(weights)}


def forgetir_version() -> str:
    try:
        from forgetir._version import __version__
    except ImportError:  # pragma: no cover - partially initialised package
        return "unknown"
    return __version__
