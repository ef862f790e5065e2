"""The engine's checkpoints and exact resumption: ``resume.pt``, its config hash, snapshots.

``resume.pt`` holds everything but the weights needed to continue (optimizer, grad scaler,
step, RNG states of every rank, config hash), plain tensors and containers read with
``weights_only=True``. It is written complete as ``resume.next.pt`` before the weights and
renamed after them: whichever of the two matches the weights' step is the state to resume from.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import nn

from forgetir.atomic import atomic_path
from forgetir.checkpoint import CheckpointError, read_sidecar, save_model, sha256_file
from forgetir.config import ConfigError
from forgetir.errors import MissingInputError

WEIGHTS_NAME = "model.safetensors"
SIDECAR_NAME = "model.json"
RESUME_NAME = "resume.pt"
# Written complete before the weights, renamed to RESUME_NAME after them: whichever of the two
# matches the weights' step is the state to resume from, wherever a crash happened.
RESUME_NEXT_NAME = "resume.next.pt"
RESUME_FORMAT = "forgetir-resume"
# Settings that may change between a run and its resumption without changing the result
# (or only its speed); everything else must match for ``resume=True``.
RESUME_SAFE_KEYS = frozenset(
    {
        "train.log_every",
        "train.ckpt_every",
        "train.eval_every",
        "train.threads",
        "train.device",
        "train.compile",
        "train.tensorboard",
        "data.workers",
    }
)


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_hash(config: Mapping[str, Any] | None) -> str | None:
    """SHA-256 of a config tree, ignoring the :data:`RESUME_SAFE_KEYS` that may change on resume.

    Example:
        >>> a = config_hash({"train": {"steps": 3, "log_every": 1}})
        >>> a == config_hash({"train": {"steps": 3, "log_every": 5}})
        True
    """
    if config is None:
        return None
    flat = {k: v for k, v in _flatten(config).items() if k not in RESUME_SAFE_KEYS}
    text = json.dumps(flat, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def check_same_config(
    state: Mapping[str, Any], config: Mapping[str, Any] | None, out_dir: Path | None
) -> None:
    """Refuse to resume ``state`` under a configuration that differs beyond the safe keys."""
    want, have = config_hash(config), state.get("config_hash")
    if want is not None and have is not None and want != have:
        old = {k: v for k, v in _flatten(state.get("config") or {}).items()}
        new = _flatten(config or {})
        diff = sorted(
            k for k in set(old) | set(new) if k not in RESUME_SAFE_KEYS and old.get(k) != new.get(k)
        )
        raise ConfigError(
            f"cannot resume the run in {out_dir}: its configuration differs in "
            f"{', '.join(diff) or 'unknown keys'}; resume with the same settings or use a "
            "new --out directory"
        )


@dataclass
class Snapshot:
    """Weights, optimizer and scaler state after a step known to be good (for a roll-back)."""

    step: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scaler: dict[str, Any] | None


def take_snapshot(
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
) -> Snapshot:
    return Snapshot(
        step,
        {k: v.detach().clone() for k, v in model.state_dict().items()},
        copy.deepcopy(optimizer.state_dict()),
        copy.deepcopy(scaler.state_dict()) if scaler is not None else None,
    )


def restore_snapshot(
    snap: Snapshot,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
) -> None:
    model.load_state_dict(snap.model)
    optimizer.load_state_dict(snap.optimizer)
    if scaler is not None and snap.scaler is not None:
        scaler.load_state_dict(snap.scaler)


def write_checkpoint(
    out_dir: Path, state: Mapping[str, Any], model: nn.Module, meta: Mapping[str, Any]
) -> Path:
    """Write ``resume.next.pt``, then the weights + sidecar, then rename it ``resume.pt``.

    ``state`` is the resume state without its format marker (step, elapsed, optimizer, RNG...).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    nxt = out_dir / RESUME_NEXT_NAME
    with atomic_path(nxt) as tmp:
        torch.save({"format": RESUME_FORMAT, "version": 1, **state}, tmp)
    path = save_model(model, out_dir / WEIGHTS_NAME, **{**meta, "step": state["step"]})
    os.replace(nxt, out_dir / RESUME_NAME)
    return path


def read_resume(out_dir: Path | None) -> dict[str, Any] | None:
    """The resume state and weights in ``out_dir``, or None when there is no checkpoint."""
    if out_dir is None:
        return None
    weights = out_dir / WEIGHTS_NAME
    candidates = [out_dir / RESUME_NEXT_NAME, out_dir / RESUME_NAME]
    if not weights.is_file():
        return None  # killed before the first checkpoint: start afresh
    if not any(c.is_file() for c in candidates):
        raise MissingInputError(
            f"cannot resume in {out_dir}: it holds {WEIGHTS_NAME} but no {RESUME_NAME} "
            "(optimizer and RNG state); start a new output directory, or train from those "
            "weights with model.checkpoint=..."
        )
    sidecar = read_sidecar(out_dir / SIDECAR_NAME)
    if sha256_file(weights) != sidecar["sha256"]:
        raise CheckpointError(
            f"{weights} does not match the sha256 in {out_dir / SIDECAR_NAME}: the "
            "checkpoint is damaged; cannot resume"
        )
    state = None
    for cand in candidates:
        if not cand.is_file():
            continue
        try:
            loaded = torch.load(cand, map_location="cpu", weights_only=True)
        except Exception as exc:  # a damaged pending file is simply not a candidate
            warnings.warn(f"ignoring unreadable {cand}: {exc}", stacklevel=2)
            continue
        if not isinstance(loaded, dict) or loaded.get("format") != RESUME_FORMAT:
            raise CheckpointError(f"{cand} is not a forgetir resume file; cannot resume")
        if loaded["step"] == sidecar.get("step"):
            state = loaded
            break
    if state is None:
        raise CheckpointError(
            f"the weights in {weights} (step {sidecar.get('step')}) have no matching resume "
            f"state in {out_dir}; cannot resume exactly (start a new --out directory)"
        )
    state["weights"] = safetensors.torch.load_file(str(weights), device="cpu")
    return state
