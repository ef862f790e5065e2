"""Loading a checkpoint: the model rebuilt from its sidecar (or ``arch``), checked against the
file's tensor shapes before anything is allocated, then the weights loaded."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from forgetir.checkpoint.files import (
    CheckpointError,
    extract_state_dict,
    header_shapes,
    listing,
    read_safetensors,
    read_torch,
    sha256_file,
    sidecar_for,
    weights_file,
)
from forgetir.checkpoint.sidecar import read_sidecar
from forgetir.models.external import ensure_registered, set_condition
from forgetir.models.factory import create_model, list_models


def check_fit(
    expected: Mapping[str, tuple[int, ...]],
    found: Mapping[str, tuple[int, ...]],
    file: Path,
    arch: str,
    strict: bool,
) -> tuple[list[str], list[str]]:
    """Compare the tensor shapes a model expects with those a file holds (no data read);
    returns (missing, unexpected) keys, or refuses what can never load."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    shapes = [
        f"{k} (file {tuple(found[k])}, model {tuple(expected[k])})"
        for k in expected
        if k in found and tuple(found[k]) != tuple(expected[k])
    ]
    problems = []
    if strict and missing:
        problems.append(f"missing keys {listing(missing)}")
    if strict and unexpected:
        problems.append(f"unexpected keys {listing(unexpected)}")
    if shapes:  # never loadable, strict or not
        problems.append(f"shape mismatches {listing(shapes)}")
    if problems:
        raise CheckpointError(
            f"weights in {str(file)!r} do not fit architecture {arch!r}: " + "; ".join(problems)
        )
    return missing, unexpected


def shapes(tensors: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in tensors.items()}


def load_into(model: nn.Module, state: dict[str, torch.Tensor], file: Path) -> None:
    """Copy ``state`` (already fitted to ``model`` by :func:`check_fit`) into ``model``,
    refusing weights that are not finite."""
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(v.isfinite().all())]
    if bad:
        raise CheckpointError(
            f"weights in {str(file)!r} contain NaN or infinite values (in {listing(bad)}): "
            "the model that saved them had diverged; use an earlier checkpoint"
        )
    expected = model.state_dict()
    # copy_ inside load_state_dict casts float16 files back to the model's float32.
    model.load_state_dict({k: v for k, v in state.items() if k in expected}, strict=False)


def build(
    arch: str,
    args: Mapping[str, Any],
    file: Path,
    source: Mapping[str, Any] | None = None,
    device: str | None = None,
) -> nn.Module:
    """``create_model(arch, **args)``, refusing (naming ``file``) what cannot be built;
    ``device="meta"`` builds it without allocating (to check shapes before the real build)."""
    if source is not None:  # the user's own model: re-register it from its recorded source
        ensure_registered(arch, dict(source), f"checkpoint {str(file)!r}")
    valid = list_models()
    if arch not in valid:
        raise CheckpointError(
            f"{str(file)!r}: unknown architecture {arch!r}; valid choices: {', '.join(valid)}"
        )
    try:
        with torch.device(device) if device else contextlib.nullcontext():
            return create_model(arch, **args)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(
            f"{str(file)!r}: cannot build {arch!r} from {dict(args)}: {exc}"
        ) from None


def load_model(
    path: str | Path,
    arch: str | None = None,
    *,
    strict: bool = True,
    map_location: str | torch.device = "cpu",
    **overrides: Any,
) -> nn.Module:
    """Rebuild a model from a checkpoint and load its weights strictly; returned in eval mode.

    ``path`` is a forgetir checkpoint (a ``.safetensors`` with its sidecar, or a directory
    holding ``model.safetensors``), or a published Lightning ``.ckpt`` / plain ``.pth`` state
    dict, for which ``arch`` (a registry name) is required. ``arch`` also lets a bare
    ``.safetensors`` without sidecar load. Keyword ``overrides`` change constructor arguments.
    The sidecar's SHA-256 is checked against the weights file. The model gets
    ``forgetir_spec`` and ``forgetir_meta`` (the sidecar, plus ``"path"``). With
    ``strict=False`` missing and unexpected keys are tolerated (listed in ``forgetir_meta``),
    shape mismatches never are.

    Example:
        >>> import tempfile
        >>> from forgetir.checkpoint import save_model
        >>> from forgetir.models import create_model
        >>> with tempfile.TemporaryDirectory() as d:
        ...     _ = save_model(create_model("adair-tiny"), d)
        ...     load_model(d).forgetir_spec["name"]
        'adair-tiny'
    """
    weights = weights_file(path)
    if weights.suffix == ".safetensors":
        meta, found = _open_safetensors(weights, arch)
        state = None
    else:
        meta, state = _open_torch(weights, arch)
        found = shapes(state)
    args = {**meta["args"], **overrides}
    source = meta.get("model_source")
    # The model the arguments describe, built without memory, must fit the file's tensors
    # before anything is allocated: a sidecar cannot make forgetir build a huge model.
    expected = shapes(build(meta["arch"], args, weights, source, "meta").state_dict())
    missing, unexpected = check_fit(expected, found, weights, meta["arch"], strict)
    if state is None:
        state = read_safetensors(weights)
    model = build(meta["arch"], args, weights, source)
    if isinstance(meta.get("model_encoder"), str):
        model.forgetir_encoder = meta["model_encoder"]
    cond = meta.get("model_condition")
    if isinstance(cond, dict) and "argument" in cond:
        set_condition(model, str(cond["argument"]), cond.get("value"))
    load_into(model, state, weights)
    meta = {**meta, "path": str(weights)}
    if missing or unexpected:
        meta.update(missing_keys=missing, unexpected_keys=unexpected)
        warnings.warn(
            f"loaded {str(weights)!r} with strict=False: {len(missing)} missing and "
            f"{len(unexpected)} unexpected keys",
            stacklevel=2,
        )
    model.forgetir_meta = meta
    return model.to(map_location).eval()


def _open_safetensors(
    weights: Path, arch: str | None
) -> tuple[dict[str, Any], dict[str, tuple[int, ...]]]:
    """The sidecar (its SHA-256 checked; or a minimal record for bare weights with ``arch``)
    and the tensor shapes in the file's header."""
    sidecar = sidecar_for(weights)
    meta: dict[str, Any]
    if sidecar.is_file():
        meta = read_sidecar(sidecar)
        actual = sha256_file(weights)
        if actual != meta["sha256"]:
            raise CheckpointError(
                f"weights file {str(weights)!r} does not match the sha256 recorded in "
                f"{str(sidecar)!r} ({actual[:12]}... vs {str(meta['sha256'])[:12]}...): "
                "the file was altered or belongs to another save"
            )
        if arch is not None and arch != meta["arch"]:
            raise CheckpointError(
                f"{str(weights)!r} holds a {meta['arch']!r} model (per {str(sidecar)!r}), "
                f"not {arch!r}; leave arch=None to use the sidecar"
            )
    elif arch is None:
        raise CheckpointError(
            f"sidecar {str(sidecar)!r} for {str(weights)!r} is missing: it says which "
            "architecture to build. Pass arch= to load bare weights; valid choices: "
            + ", ".join(list_models())
        )
    else:
        meta = {
            "arch": arch,
            "args": {},
            "sha256": sha256_file(weights),
            "source_format": "safetensors",
        }
    return meta, header_shapes(weights)  # a huge or broken header is refused unparsed


def _open_torch(weights: Path, arch: str | None) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """A PyTorch checkpoint (``arch`` required): its record and state dict, read safely."""
    if arch is None:
        raise CheckpointError(
            f"{str(weights)!r} is a PyTorch checkpoint without a sidecar: pass arch= to say "
            f"which architecture it holds; valid choices: {', '.join(list_models())}"
        )
    if arch not in list_models():  # fail before reading a possibly huge file
        build(arch, {}, weights)
    sha = sha256_file(weights)
    state, info = extract_state_dict(read_torch(weights), weights)
    return {"arch": arch, "args": {}, "sha256": sha, **info}, state
