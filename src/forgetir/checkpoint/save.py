"""Writing a checkpoint: the weights (safetensors) and the sidecar, both complete before either
is moved into place."""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import nn

from forgetir.atomic import fsync_file, temp_path
from forgetir.checkpoint.files import (
    FORMAT,
    FORMAT_VERSION,
    SAVE_DTYPES,
    CheckpointError,
    save_targets,
    sha256_file,
)
from forgetir.checkpoint.sidecar import RESERVED_KEYS, forgetir_version, parent_record, to_json


def _tensors_to_save(model: nn.Module, dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    tensors = {}
    for key, value in model.state_dict().items():
        t = value.detach().to("cpu")
        if dtype is not None and t.is_floating_point() and t.dtype != dtype:
            cast = t.to(dtype)
            # One cheap test per tensor; the second runs only on the rare overflow candidate.
            if torch.isinf(cast).any() and not torch.isinf(t).any():
                raise CheckpointError(
                    f"weight {key!r} overflows {str(dtype).removeprefix('torch.')} "
                    f"(max |w| = {t.abs().max().item():.4g}); save it with dtype=None"
                )
            t = cast
        # safetensors refuses shared or strided storage; a private contiguous copy is both.
        tensors[key] = t.clone(memory_format=torch.contiguous_format)
    return tensors


def save_model(
    model: nn.Module,
    path: str | Path,
    *,
    dtype: torch.dtype | None = None,
    parent: str | Path | None = None,
    command: str | Sequence[str] | None = None,
    metrics: Mapping[str, Any] | None = None,
    **meta: Any,
) -> Path:
    """Write ``model``'s weights (safetensors) and a JSON sidecar; return the weights path.

    ``model`` must come from :func:`forgetir.models.create_model` (or :func:`load_model`), whose
    ``forgetir_spec`` says how to rebuild it. ``dtype=torch.float16`` stores floating weights in
    half precision (for shipped models); :func:`load_model` gives float32 back. ``parent`` is the
    checkpoint these weights were derived from (its SHA-256 is recorded); when omitted, a model
    that was itself loaded with :func:`load_model` records that file. ``command`` and
    ``metrics`` say how the weights were made and how good they are; further keyword arguments
    are stored as they are and must be JSON-serialisable. Both files are written to temporary
    files first and moved into place only when both are complete.

    Example:
        >>> import tempfile
        >>> from forgetir.models import create_model
        >>> with tempfile.TemporaryDirectory() as d:
        ...     save_model(create_model("promptir-tiny"), d, command="forgetir demo").name
        'model.safetensors'
    """
    spec = _check_savable(model, path, dtype, meta)
    weights, sidecar = save_targets(path)
    record = _record(model, spec, weights, dtype, parent, command, metrics, meta)
    _write_pair(weights, sidecar, _tensors_to_save(model, dtype), record)
    return weights


def _check_savable(
    model: nn.Module, path: str | Path, dtype: torch.dtype | None, meta: Mapping[str, Any]
) -> Mapping[str, Any]:
    """The model's ``forgetir_spec``, once the model, ``dtype`` and metadata keys are valid."""
    spec = getattr(model, "forgetir_spec", None)
    if not isinstance(spec, Mapping) or "name" not in spec or "args" not in spec:
        raise CheckpointError(
            f"cannot save to {str(path)!r}: the model has no forgetir_spec (build it with "
            "forgetir.models.create_model or load it with load_model so the checkpoint can say "
            "how to rebuild it)"
        )
    if dtype is not None and dtype not in SAVE_DTYPES.values():
        raise CheckpointError(
            f"cannot save to {str(path)!r}: dtype {dtype} not supported; valid: None, "
            + ", ".join(f"torch.{n}" for n in SAVE_DTYPES)
        )
    clash = sorted(set(meta) & RESERVED_KEYS)
    if clash:
        raise CheckpointError(f"save_model: metadata key(s) {clash} are reserved by the sidecar")
    return spec


def _record(
    model: nn.Module,
    spec: Mapping[str, Any],
    weights: Path,
    dtype: torch.dtype | None,
    parent: str | Path | None,
    command: str | Sequence[str] | None,
    metrics: Mapping[str, Any] | None,
    meta: Mapping[str, Any],
) -> dict[str, Any]:
    """The sidecar's content (its ``sha256`` is filled once the weights file exists)."""
    extra = {key: to_json(key, value) for key, value in meta.items()}
    record: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "arch": str(spec["name"]),
        "args": to_json("args", dict(spec["args"])),
        "weights": weights.name,
        "sha256": None,  # filled once the weights file exists
        "dtype": str(dtype or torch.float32).removeprefix("torch."),
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "parent": parent_record(parent, model),
        "command": to_json(
            "command", command if isinstance(command, str) or command is None else list(command)
        ),
        "metrics": to_json("metrics", dict(metrics)) if metrics is not None else None,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "forgetir_version": forgetir_version(),
        "torch_version": torch.__version__,
        **extra,
    }
    if spec.get("source") is not None:  # a model from the user's code: how to rebuild it
        record["model_source"] = to_json("model_source", dict(spec["source"]))
    if isinstance(getattr(model, "forgetir_encoder", None), str):  # see models.external
        record["model_encoder"] = model.forgetir_encoder
    if isinstance(getattr(model, "forgetir_condition", None), dict):  # a task/prompt input
        record["model_condition"] = to_json("model_condition", model.forgetir_condition)
    return record


def _write_pair(
    weights: Path, sidecar: Path, tensors: dict[str, torch.Tensor], record: dict[str, Any]
) -> None:
    """Write both files to temporary names, then move them into place, weights first."""
    made_dir = not weights.parent.exists()
    weights.parent.mkdir(parents=True, exist_ok=True)
    tmp_weights = tmp_sidecar = None
    done = False
    try:
        tmp_weights = temp_path(weights)
        safetensors.torch.save_file(tensors, str(tmp_weights), metadata={"format": "pt"})
        fsync_file(tmp_weights)
        record["sha256"] = sha256_file(tmp_weights)
        tmp_sidecar = temp_path(sidecar)
        with open(tmp_sidecar, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        # Everything that can fail is done; two renames remain, weights first so that a crash
        # between them leaves a sidecar whose sha256 no longer matches (load refuses it).
        os.replace(tmp_weights, weights)
        tmp_weights = None
        os.replace(tmp_sidecar, sidecar)
        tmp_sidecar = None
        done = True
    finally:
        for tmp in (tmp_weights, tmp_sidecar):
            if tmp is not None:
                with contextlib.suppress(OSError):
                    tmp.unlink()
        if made_dir and not done:
            with contextlib.suppress(OSError):
                weights.parent.rmdir()  # only succeeds if empty
