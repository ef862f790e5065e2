"""Checkpoint files: names and paths, hashing, and reading safetensors (header checked before
any data is read) and PyTorch files (safely: ``weights_only=True``)."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import stat
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

from forgetir.errors import InputFileError, MissingInputError

FORMAT = "forgetir-checkpoint"
FORMAT_VERSION = 1
WEIGHTS_NAME = "model.safetensors"
SIDECAR_NAME = "model.json"
TORCH_SUFFIXES = (".ckpt", ".pth", ".pt", ".bin")
SAVE_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
MAX_LISTED_KEYS = 10
# A safetensors header (JSON: name, dtype, shape, offsets of each tensor) larger than this is
# refused before it is parsed: promptir's is 60 KB; 16 MiB is room for ~150,000 tensors.
MAX_HEADER_BYTES = 16 << 20


class CheckpointError(InputFileError):
    """A checkpoint file cannot be written or read as asked; the message names the file."""


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks so large checkpoints never sit in memory twice.

    Example:
        >>> import tempfile, pathlib
        >>> with tempfile.TemporaryDirectory() as d:
        ...     p = pathlib.Path(d, "x.bin"); _ = p.write_bytes(b"abc")
        ...     sha256_file(p)[:16]
        'ba7816bf8f01cfea'
    """
    # A device or FIFO would hash forever (/dev/zero) or block until a writer comes.
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise InputFileError(
            f"{str(path)!r} is not a regular file (a device, FIFO or socket): nothing to hash"
        )
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def save_targets(path: str | Path) -> tuple[Path, Path]:
    p = Path(path)
    if p.suffix == ".safetensors" and not p.is_dir():
        return p, p.with_suffix(".json")
    if p.is_dir() or p.suffix == "":
        return p / WEIGHTS_NAME, p / SIDECAR_NAME
    raise CheckpointError(
        f"cannot save to {str(p)!r}: give a file ending in '.safetensors' or a directory "
        f"(which will hold {WEIGHTS_NAME} and {SIDECAR_NAME})"
    )


def weights_file(path: str | Path) -> Path:
    """The weights file a user path points at (a directory, a sidecar or the file itself);
    an error naming the path when there is none, so that commands can check it before work."""
    p = Path(path)
    if p.is_dir():
        weights = p / WEIGHTS_NAME
        if not weights.is_file():
            found = sorted(
                c.name for c in p.iterdir() if c.suffix in (".safetensors", *TORCH_SUFFIXES)
            )
            raise CheckpointError(
                f"directory {str(p)!r} has no {WEIGHTS_NAME}; checkpoint files there: "
                f"{', '.join(found) if found else 'none'}"
            )
        return weights
    if p.suffix == ".json":
        p = p.with_suffix(".safetensors")
    if not p.exists():
        raise MissingInputError(f"checkpoint {str(p)!r} does not exist")
    if not p.is_file():
        raise CheckpointError(f"checkpoint {str(p)!r} is not a regular file (a device or FIFO)")
    valid = (".safetensors", *TORCH_SUFFIXES)
    if p.suffix not in valid:
        raise CheckpointError(
            f"cannot load {str(p)!r}: unsupported file type {p.suffix!r}; "
            f"valid: a directory or a file ending in {', '.join(valid)}"
        )
    return p


def sidecar_for(weights: Path) -> Path:
    # "model.safetensors" -> "model.json", so the directory layout needs no special case.
    return weights.with_suffix(".json")


def listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:MAX_LISTED_KEYS])
    more = f", ... ({len(keys) - MAX_LISTED_KEYS} more)" if len(keys) > MAX_LISTED_KEYS else ""
    return f"{len(keys)}: {shown}{more}"


def read_safetensors(weights: Path) -> dict[str, torch.Tensor]:
    try:
        return safetensors.torch.load_file(str(weights), device="cpu")
    except Exception as exc:  # SafetensorError, OSError, ...: all mean "not a valid file"
        raise CheckpointError(
            f"{str(weights)!r} is not a readable safetensors file ({type(exc).__name__}: {exc})"
        ) from None


def read_torch(file: Path) -> Any:
    try:
        with warnings.catch_warnings():
            # Older pickle protocols trigger a harmless warning from the safe unpickler.
            warnings.filterwarnings("ignore", message=".*pickle protocol.*")
            return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        blocked = next((line for line in lines if "GLOBAL" in line), None)
        if blocked is not None:
            blocked = blocked.split(". Please")[0]  # drop torch's advice to allowlist it
            raise CheckpointError(
                f"refusing to load {str(file)!r}: it is not loadable safely. Unpickling it "
                "would import Python objects other than tensors and plain containers, which "
                "can run arbitrary code; forgetir never does that for a checkpoint "
                f"({blocked}). If you trust the file, re-save just its state dict with "
                "torch.save or safetensors."
            ) from None
        # Garbage bytes and exotic pickle opcodes look the same to the safe unpickler.
        detail = next((line for line in lines if "Unsupported" in line), lines[-1] if lines else "")
        raise CheckpointError(
            f"{str(file)!r} is not a readable PyTorch checkpoint, or not loadable safely: the "
            f"safe unpickler stopped ({detail})"
        ) from None
    except Exception as exc:
        raise CheckpointError(
            f"{str(file)!r} is not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})"
        ) from None


def extract_state_dict(obj: Any, file: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The network's state dict inside a Lightning checkpoint or a bare state dict."""
    info: dict[str, Any] = {}
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        state = obj["state_dict"]
        info["source_format"] = "lightning" if "pytorch-lightning_version" in obj else "state_dict"
        for key in ("epoch", "global_step", "pytorch-lightning_version"):
            if isinstance(obj.get(key), int | str):
                info[key] = obj[key]
    elif isinstance(obj, Mapping):
        state = obj
        info["source_format"] = "state_dict"
    else:
        raise CheckpointError(
            f"{str(file)!r} holds a {type(obj).__name__}, not a state dict or a checkpoint dict"
        )
    keys = [k for k in state if isinstance(k, str)]
    # Lightning keeps the network under "net." (PromptIR/AdaIR); DDP wraps it in "module.".
    for prefix in ("net.", "module."):
        if any(k.startswith(prefix) for k in keys):
            ignored = [k for k in keys if not k.startswith(prefix)]
            if ignored:
                info["ignored_keys"] = ignored
            state = {k[len(prefix) :]: state[k] for k in keys if k.startswith(prefix)}
            break
    not_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors or not state:
        top = ", ".join(map(str, list(obj)[:MAX_LISTED_KEYS])) if isinstance(obj, Mapping) else ""
        raise CheckpointError(
            f"{str(file)!r} does not hold a state dict of tensors "
            f"(non-tensor entries: {not_tensors[:MAX_LISTED_KEYS]}; top-level keys: {top})"
        )
    return dict(state), info


def header_shapes(weights: Path) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes from a safetensors header, read without the tensors' data; a
    header larger than :data:`MAX_HEADER_BYTES` or the file itself is refused unparsed."""
    bad = f"{str(weights)!r} is not a readable safetensors file"
    try:
        with open(weights, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(8)
            if len(head) < 8:
                raise CheckpointError(f"{bad} ({size} bytes: shorter than its header length)")
            n = int.from_bytes(head, "little")
            if n > min(MAX_HEADER_BYTES, size - 8):
                raise CheckpointError(
                    f"{bad}: its header claims {n:,} bytes (file: {size:,} bytes; forgetir reads "
                    f"headers of at most {MAX_HEADER_BYTES:,} bytes)"
                )
            header = json.loads(f.read(n))
    except OSError as exc:
        raise CheckpointError(f"{bad} ({exc.strerror or exc})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{bad}: its header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{bad}: its header is not a JSON object")
    shapes = {}
    for key, rec in header.items():
        if key == "__metadata__":
            continue
        shape = rec.get("shape") if isinstance(rec, dict) else None
        if not isinstance(shape, list) or not all(isinstance(d, int) for d in shape):
            raise CheckpointError(f"{bad}: tensor {key!r} has no valid shape in the header")
        shapes[key] = tuple(shape)
    return shapes
