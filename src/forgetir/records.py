"""Typed records of what a run folder holds: ``run.json``, ``quality.json``, ``verify.json`` and
the model sidecar (``model.json``), each a frozen dataclass with ``to_json``/``from_json`` and a
format version.

``from_json`` checks the fields every reader relies on and raises
:class:`~forgetir.errors.InputFileError` naming the file (``where``); keys it does not know are
kept in ``extra`` and written back unchanged, so a newer writer's additions survive a round trip.
Records are immutable: change one with :func:`dataclasses.replace`.

Example:
    >>> rec = FileRecord("model.safetensors", "ab" * 32)
    >>> FileRecord.from_json(rec.to_json(), "run.json") == rec
    True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from forgetir.errors import InputFileError

__all__ = [
    "FileRecord",
    "ModelMeta",
    "QualityTable",
    "RunRecord",
    "SplitRecord",
    "VerificationRecord",
    "json_safe",
]

RUN_FORMAT, RUN_VERSION = "forgetir-run", 2
QUALITY_FORMAT, QUALITY_VERSION = "forgetir-quality", 1
VERIFY_FORMAT, VERIFY_VERSION = "forgetir-verification", 2


def json_safe(value: Any) -> Any:
    """Plain JSON: tuples become lists, inf/nan the strings "inf"/"nan", numpy scalars numbers,
    any other object its ``str`` (the one conversion every record writer uses).

    Example:
        >>> json_safe({"a": (1.0, float("inf"))})
        {'a': [1.0, 'inf']}
    """
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float) or type(value).__module__ == "numpy":
        try:
            v = float(value)
        except (TypeError, ValueError):
            return str(value)
        if type(value).__name__.startswith("int"):
            return int(value)
        return v if math.isfinite(v) else str(v)
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return str(value)


def _object(data: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise InputFileError(f"{where} must hold a JSON object, got {type(data).__name__}")
    return data


def _need(data: Mapping[str, Any], keys: tuple[str, ...], where: str) -> None:
    lacking = [k for k in keys if k not in data]
    if lacking:
        raise InputFileError(f"{where} lacks required key(s) {', '.join(lacking)}")


def _names(data: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    """A list of names (absent or null: none); anything else is refused."""
    value = data.get(key) or ()
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise InputFileError(f"{where} {key} must be a list of names, got {value!r}")
    return tuple(value)


def _number(data: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    """``kind(data[key])`` for a finite JSON number (absent or null: None); else refused."""
    value = data.get(key)
    if value is None:
        return None
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or value != value or abs(value) == float("inf"):
        raise InputFileError(f"{where} {key} must be a number, got {value!r}")
    return kind(value)


def _extra(data: Mapping[str, Any], cls: type, also: tuple[str, ...] = ()) -> dict[str, Any]:
    known = {f.name for f in fields(cls)} | {"format", "version", *also}
    return {k: v for k, v in data.items() if k not in known}


@dataclass(frozen=True)
class FileRecord:
    """A file a verdict rests on: where it was and its SHA-256 when the run was made."""

    path: str
    sha256: str

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "sha256": self.sha256}

    @classmethod
    def from_json(cls, data: Any, where: str) -> FileRecord:
        d = _object(data, where)
        _need(d, ("path", "sha256"), where)
        return cls(str(d["path"]), str(d["sha256"]))

    @classmethod
    def optional(cls, data: Any, where: str) -> FileRecord | None:
        return None if data is None else cls.from_json(data, where)


@dataclass(frozen=True)
class SplitRecord:
    """What was forgotten: the split's kind, its forget/retain parts and its manifest file."""

    kind: str
    forget: Any
    retain: Any
    manifest: FileRecord | None

    def to_json(self) -> dict[str, Any]:
        m = self.manifest.to_json() if self.manifest else None
        return {"kind": self.kind, "forget": self.forget, "retain": self.retain, "manifest": m}

    @classmethod
    def from_json(cls, data: Any, where: str) -> SplitRecord:
        d = _object(data, where)
        _need(d, ("kind",), where)
        manifest = FileRecord.optional(d.get("manifest"), f"{where} manifest")
        return cls(str(d["kind"]), d.get("forget"), d.get("retain"), manifest)


@dataclass(frozen=True)
class RunRecord:
    """``run.json``: what was run, from what, and the SHA-256 of every file its proof rests on.

    ``files`` maps a role (``model``, ``split``, ``test_set``) to the file recorded at creation;
    the parent and UT records are ``parent`` and ``ut``.

    Example:
        >>> r = RunRecord("m", FileRecord("p", "0" * 64), SplitRecord("degradation", [], [], None))
        >>> RunRecord.from_json(r.to_json(), "run.json").parent.sha256 == "0" * 64
        True
    """

    method: str
    parent: FileRecord
    split: SplitRecord
    ut: FileRecord | None = None
    files: Mapping[str, FileRecord] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    forget_tasks: tuple[str, ...] = ()
    retain_tasks: tuple[str, ...] = ()
    steps: int = 0
    wall_time_s: float = 0.0
    summary: str | None = None
    target: str | None = None
    hyperparameters: Any = None
    optimizer: Any = None
    stopped_early: Any = None
    guard: Any = None
    command: Any = ""
    seed: int | None = None
    software: Mapping[str, Any] | None = None
    created: str | None = None
    verify: str | None = None
    verified: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": RUN_FORMAT, "version": RUN_VERSION}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "extra":
                continue
            if f.name in ("parent", "ut", "split"):
                v = v.to_json() if v is not None else None
            elif f.name == "files":
                v = {k: r.to_json() for k, r in v.items()}
            elif f.name in ("forget_tasks", "retain_tasks"):
                v = list(v)
            out[f.name] = v
        return json_safe({**out, **self.extra})

    @classmethod
    def from_json(cls, data: Any, where: str) -> RunRecord:
        d = _object(data, where)
        _need(d, ("method", "parent", "split"), where)
        version = d.get("version", 1)
        if not isinstance(version, int) or version > RUN_VERSION:
            raise InputFileError(
                f"{where} has version {version!r}; this forgetir reads up to {RUN_VERSION}"
            )
        files = _object(d.get("files") or {}, f"{where} files")
        simple = {
            f.name: d[f.name]
            for f in fields(cls)
            if f.name in d and f.name not in ("parent", "ut", "split", "files", "extra")
        }
        simple["forget_tasks"] = _names(d, "forget_tasks", where)
        simple["retain_tasks"] = _names(d, "retain_tasks", where)
        return cls(
            parent=FileRecord.from_json(d["parent"], f"{where} parent"),
            ut=FileRecord.optional(d.get("ut"), f"{where} ut"),
            split=SplitRecord.from_json(d["split"], f"{where} split"),
            files={k: FileRecord.from_json(v, f"{where} files.{k}") for k, v in files.items()},
            extra=_extra(d, cls),
            **simple,
        )


@dataclass(frozen=True)
class QualityTable:
    """``quality.json``: ``rows`` = label -> task -> {"psnr", "ssim", "n"(, "images")}."""

    protocol: str
    test_set: str
    rows: Mapping[str, Mapping[str, Mapping[str, Any]]]
    protocol_description: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = {
            "protocol": self.protocol,
            "protocol_description": self.protocol_description,
            "test_set": self.test_set,
            "rows": self.rows,
        }
        return json_safe({**out, **self.extra})

    @classmethod
    def from_json(cls, data: Any, where: str) -> QualityTable:
        d = _object(data, where)
        _need(d, ("rows",), where)
        _object(d["rows"], f"{where} rows")
        return cls(
            protocol=str(d.get("protocol", "promptir")),
            test_set=str(d.get("test_set") or d.get("test_source") or "not recorded"),
            rows=d["rows"],
            protocol_description=d.get("protocol_description"),
            extra=_extra(d, cls),
        )


# verify.json keys that describe the whole verification; every other key is one check's result.
_VERIFY_HEADER = (
    "protocol",
    "protocol_description",
    "test_set",
    "forget_tasks",
    "retain_tasks",
    "reference",
    "verdict",
    "quality",
)


@dataclass(frozen=True)
class VerificationRecord:
    """``verify.json``: the verdict first, the shared header, then one result per check (in the
    order of :data:`forgetir.checks.CHECKS`); a check that did not apply has ``None``.

    Example:
        >>> v = VerificationRecord("promptir", "photos", ("dehaze",), (), checks={"cost": None})
        >>> VerificationRecord.from_json(v.to_json(), "verify.json").checks
        {'cost': None}
    """

    protocol: str
    test_set: str
    forget_tasks: tuple[str, ...]
    retain_tasks: tuple[str, ...]
    protocol_description: str | None = None
    reference: str | None = None
    verdict: Mapping[str, Any] | None = None
    quality: Mapping[str, Any] | None = None
    checks: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = {
            "format": VERIFY_FORMAT,
            "version": VERIFY_VERSION,
            "verdict": self.verdict,
            "protocol": self.protocol,
            "protocol_description": self.protocol_description,
            "test_set": self.test_set,
            "forget_tasks": list(self.forget_tasks),
            "retain_tasks": list(self.retain_tasks),
            "reference": self.reference,
            "quality": self.quality,
            **self.checks,
        }
        return json_safe(out)

    @classmethod
    def from_json(cls, data: Any, where: str) -> VerificationRecord:
        d = _object(data, where)
        return cls(
            protocol=str(d.get("protocol", "promptir")),
            test_set=str(d.get("test_set")),
            forget_tasks=tuple(d.get("forget_tasks") or ()),
            retain_tasks=tuple(d.get("retain_tasks") or ()),
            protocol_description=d.get("protocol_description"),
            reference=d.get("reference"),
            verdict=d.get("verdict"),
            quality=d.get("quality"),
            checks={k: v for k, v in d.items() if k not in (*_VERIFY_HEADER, "format", "version")},
        )


@dataclass(frozen=True)
class ModelMeta:
    """A model sidecar (``model.json``), the fields forgetir reads from it.

    ``steps`` is the number of optimizer steps that made the weights: the training engine
    records it as ``"step"`` (the step reached), an unlearning run as ``"steps"``; which key is
    read depends on who wrote the sidecar (``"method"`` marks an unlearning run), never on
    which one happens to be present.

    Example:
        >>> m = ModelMeta.from_json({"arch": "a", "args": {}, "sha256": "0", "step": 9}, "x.json")
        >>> m.steps, m.to_json()["step"]
        (9, 9)
    """

    arch: str
    args: Mapping[str, Any]
    sha256: str
    steps: int | None = None
    wall_time: float | None = None
    train_batch_size: int | None = None
    data_config: Mapping[str, Any] | None = None
    num_parameters: int | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return json_safe(dict(self.raw))

    @classmethod
    def from_json(cls, data: Any, where: str) -> ModelMeta:
        d = _object(data, where)
        _need(d, ("arch", "args", "sha256"), where)
        config = d.get("config") if isinstance(d.get("config"), Mapping) else {}
        train = config.get("train") if isinstance(config.get("train"), Mapping) else {}
        steps = _number(d, "steps" if "method" in d else "step", int, where)
        return cls(
            arch=str(d["arch"]),
            args=dict(_object(d["args"], f"{where} args")),
            sha256=str(d["sha256"]),
            steps=steps,
            wall_time=_number(d, "wall_time", float, where),
            train_batch_size=train.get("batch_size"),
            data_config=config.get("data"),
            num_parameters=d.get("num_parameters"),
            raw=dict(d),
        )
