"""Weights as data: safetensors plus a JSON sidecar that says how to rebuild the model.

Layout written by :func:`save_model`:

- ``path`` ending in ``.safetensors`` -> that file plus ``<stem>.json`` beside it;
- any other ``path`` without a suffix (or an existing directory) -> ``model.safetensors`` and
  ``model.json`` inside that directory (created if needed).

The sidecar records the registry name and constructor arguments, the parent checkpoint and its
SHA-256, the command and metrics that produced the weights, versions, and the SHA-256 of the
weights file, which :func:`load_model` checks before trusting the file.

:func:`load_model` also imports the published PromptIR/AdaIR Lightning ``.ckpt`` files and plain
``.pth`` state dicts (pass ``arch``). Files are read only with safetensors or
``torch.load(weights_only=True)``: a checkpoint that would need to run code to unpickle is refused.

Example:
    >>> import tempfile, torch
    >>> from forgetir.checkpoint import load_model, save_model
    >>> from forgetir.models import create_model
    >>> model = create_model("promptir-tiny")
    >>> with tempfile.TemporaryDirectory() as d:
    ...     file = save_model(model, f"{d}/tiny.safetensors", metrics={"psnr": 30.1})
    ...     again = load_model(file)
    >>> again.forgetir_meta["metrics"]
    {'psnr': 30.1}
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import pickle
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import nn

from forgetir.atomic import fsync_file, temp_path
from forgetir.errors import InputFileError, MissingInputError
from forgetir.models.registry import create_model, list_models

FORMAT = "forgetir-checkpoint"
FORMAT_VERSION = 1
WEIGHTS_NAME = "model.safetensors"
SIDECAR_NAME = "model.json"
TORCH_SUFFIXES = (".ckpt", ".pth", ".pt", ".bin")
SAVE_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
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
_MAX_LISTED_KEYS = 10
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
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------- paths


def _save_targets(path: str | Path) -> tuple[Path, Path]:
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
    valid = (".safetensors", *TORCH_SUFFIXES)
    if p.suffix not in valid:
        raise CheckpointError(
            f"cannot load {str(p)!r}: unsupported file type {p.suffix!r}; "
            f"valid: a directory or a file ending in {', '.join(valid)}"
        )
    return p


def _sidecar_for(weights: Path) -> Path:
    # "model.safetensors" -> "model.json", so the directory layout needs no special case.
    return weights.with_suffix(".json")


# ------------------------------------------------------------------------------------ sidecar


def _json_default(value: Any) -> Any:
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


def _to_json(key: str, value: Any) -> Any:
    """``value`` normalised to plain JSON types, or a TypeError naming ``key``."""
    try:
        return json.loads(json.dumps(value, default=_json_default))
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"save_model: metadata {key!r} is not JSON-serialisable "
            f"({type(value).__name__}: {exc}); pass plain numbers, strings, lists or dicts"
        ) from None


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """The sidecar of a forgetir checkpoint: give the ``.safetensors``, its ``.json`` or the folder.

    Example:
        >>> import tempfile
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
        sidecar = _sidecar_for(weights)
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


# --------------------------------------------------------------------------------------- save


def _parent_record(parent: str | Path | None, model: nn.Module) -> dict[str, str] | None:
    if parent is None:
        # A model loaded from a checkpoint remembers where it came from: that is its parent.
        source = getattr(model, "forgetir_meta", None)
        if isinstance(source, Mapping) and "path" in source and "sha256" in source:
            return {"path": str(source["path"]), "sha256": str(source["sha256"])}
        return None
    weights = weights_file(parent)
    return {"path": str(parent), "sha256": sha256_file(weights)}


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

    weights, sidecar = _save_targets(path)
    extra = {key: _to_json(key, value) for key, value in meta.items()}
    record: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "arch": str(spec["name"]),
        "args": _to_json("args", dict(spec["args"])),
        "weights": weights.name,
        "sha256": None,  # filled once the weights file exists
        "dtype": str(dtype or torch.float32).removeprefix("torch."),
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "parent": _parent_record(parent, model),
        "command": _to_json(
            "command", command if isinstance(command, str) or command is None else list(command)
        ),
        "metrics": _to_json("metrics", dict(metrics)) if metrics is not None else None,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "forgetir_version": _forgetir_version(),
        "torch_version": torch.__version__,
        **extra,
    }
    if spec.get("source") is not None:  # a model from the user's code: how to rebuild it
        record["model_source"] = _to_json("model_source", dict(spec["source"]))
    if isinstance(getattr(model, "forgetir_encoder", None), str):  # see models.external
        record["model_encoder"] = model.forgetir_encoder
    if isinstance(getattr(model, "forgetir_condition", None), dict):  # a task/prompt input
        record["model_condition"] = _to_json("model_condition", model.forgetir_condition)
    tensors = _tensors_to_save(model, dtype)

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
    return weights


def _forgetir_version() -> str:
    try:
        from forgetir._version import __version__
    except ImportError:  # pragma: no cover - partially initialised package
        return "unknown"
    return __version__


# --------------------------------------------------------------------------------------- load


def _read_safetensors(weights: Path) -> dict[str, torch.Tensor]:
    try:
        return safetensors.torch.load_file(str(weights), device="cpu")
    except Exception as exc:  # SafetensorError, OSError, ...: all mean "not a valid file"
        raise CheckpointError(
            f"{str(weights)!r} is not a readable safetensors file ({type(exc).__name__}: {exc})"
        ) from None


def _read_torch(file: Path) -> Any:
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


def _extract_state_dict(obj: Any, file: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
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
        top = ", ".join(map(str, list(obj)[:_MAX_LISTED_KEYS])) if isinstance(obj, Mapping) else ""
        raise CheckpointError(
            f"{str(file)!r} does not hold a state dict of tensors "
            f"(non-tensor entries: {not_tensors[:_MAX_LISTED_KEYS]}; top-level keys: {top})"
        )
    return dict(state), info


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED_KEYS])
    more = f", ... ({len(keys) - _MAX_LISTED_KEYS} more)" if len(keys) > _MAX_LISTED_KEYS else ""
    return f"{len(keys)}: {shown}{more}"


def _check_fit(
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
        problems.append(f"missing keys {_listing(missing)}")
    if strict and unexpected:
        problems.append(f"unexpected keys {_listing(unexpected)}")
    if shapes:  # never loadable, strict or not
        problems.append(f"shape mismatches {_listing(shapes)}")
    if problems:
        raise CheckpointError(
            f"weights in {str(file)!r} do not fit architecture {arch!r}: " + "; ".join(problems)
        )
    return missing, unexpected


def _shapes(tensors: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in tensors.items()}


def _load_into(model: nn.Module, state: dict[str, torch.Tensor], file: Path) -> None:
    """Copy ``state`` (already fitted to ``model`` by :func:`_check_fit`) into ``model``,
    refusing weights that are not finite."""
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(v.isfinite().all())]
    if bad:
        raise CheckpointError(
            f"weights in {str(file)!r} contain NaN or infinite values (in {_listing(bad)}): "
            "the model that saved them had diverged; use an earlier checkpoint"
        )
    expected = model.state_dict()
    # copy_ inside load_state_dict casts float16 files back to the model's float32.
    model.load_state_dict({k: v for k, v in state.items() if k in expected}, strict=False)


def _header_shapes(weights: Path) -> dict[str, tuple[int, ...]]:
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


def _build(
    arch: str,
    args: Mapping[str, Any],
    file: Path,
    source: Mapping[str, Any] | None = None,
    device: str | None = None,
) -> nn.Module:
    """``create_model(arch, **args)``, refusing (naming ``file``) what cannot be built;
    ``device="meta"`` builds it without allocating (to check shapes before the real build)."""
    if source is not None:  # the user's own model: re-register it from its recorded source
        from forgetir.models.external import ensure_registered

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
        >>> from forgetir.models import create_model
        >>> with tempfile.TemporaryDirectory() as d:
        ...     _ = save_model(create_model("adair-tiny"), d)
        ...     load_model(d).forgetir_spec["name"]
        'adair-tiny'
    """
    weights = weights_file(path)
    meta: dict[str, Any]
    if weights.suffix == ".safetensors":
        sidecar = _sidecar_for(weights)
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
        found = _header_shapes(weights)  # a huge or broken header is refused unparsed
        state = None
    else:
        if arch is None:
            raise CheckpointError(
                f"{str(weights)!r} is a PyTorch checkpoint without a sidecar: pass arch= to say "
                f"which architecture it holds; valid choices: {', '.join(list_models())}"
            )
        if arch not in list_models():  # fail before reading a possibly huge file
            _build(arch, {}, weights)
        sha = sha256_file(weights)
        state, info = _extract_state_dict(_read_torch(weights), weights)
        meta = {"arch": arch, "args": {}, "sha256": sha, **info}
        found = _shapes(state)

    args = {**meta["args"], **overrides}
    source = meta.get("model_source")
    # The model the arguments describe, built without memory, must fit the file's tensors
    # before anything is allocated: a sidecar cannot make forgetir build a huge model.
    expected = _shapes(_build(meta["arch"], args, weights, source, "meta").state_dict())
    missing, unexpected = _check_fit(expected, found, weights, meta["arch"], strict)
    if state is None:
        state = _read_safetensors(weights)
    model = _build(meta["arch"], args, weights, source)
    if isinstance(meta.get("model_encoder"), str):
        model.forgetir_encoder = meta["model_encoder"]
    cond = meta.get("model_condition")
    if isinstance(cond, dict) and "argument" in cond:
        from forgetir.models.external import set_condition

        set_condition(model, str(cond["argument"]), cond.get("value"))
    _load_into(model, state, weights)
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
