"""UT reference logs: UT's own relearning and anamnesis curves, computed once and reused.

Fine-tuning a copy of UT for the relearning test and the anamnesis index is most of what a
verification costs, and UT is the same model run after run. Its curves are stored under a key
that hashes everything they depend on: UT's and BEFORE's weights (as loaded, float32), the
relearning samples and forget-test images (pixels), and the settings (steps, lr, tol,
evaluation interval, protocol). A stored curve is used only when the key matches, so a
different UT, BEFORE, data or setting recomputes it.

Where references are looked up: the shipped UTs carry theirs beside their weights
(``src/forgetir/weights/<name>.reference.json``, made by ``scripts/ship_ut_references.py``);
every other one is cached in ``$FORGETIR_CACHE_DIR`` (default ``~/.cache/forgetir``) under
``ut-reference/<key>.json``. ``FORGETIR_NO_CACHE=1`` (or ``forgetir verify --recompute-ut``)
turns both off.

Example:
    >>> import torch
    >>> len(state_hash(torch.nn.Conv2d(3, 3, 1)))
    64
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from forgetir.atomic import atomic_json
from forgetir.checks.base import Context, as_pairs
from forgetir.provenance import software_versions, utc_now
from forgetir.records import json_safe

__all__ = ["ReferenceStore", "reference_key", "state_hash", "ut_run"]

FORMAT, VERSION = "forgetir-ut-reference", 1
SUFFIX = ".reference.json"


def state_hash(model: nn.Module) -> str:
    """SHA-256 of a model's state (names, shapes and float32 values, in name order)."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(f"{name}:{tuple(t.shape)}".encode())
        h.update(t.detach().float().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def _pairs_hash(data: Any) -> str:
    h = hashlib.sha256()
    for x, y in as_pairs(data, "reference data"):
        for t in (x, y):
            h.update(str(tuple(t.shape)).encode())
            h.update(t.detach().float().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def reference_key(ctx: Context, kind: str) -> tuple[str, dict[str, Any]]:
    """(key, what it hashes) of UT's ``kind`` run (``relearn`` or ``anamnesis``) in ``ctx``."""
    if ctx.ut is None:
        raise ValueError("a UT reference needs a UT model")
    settings: dict[str, Any] = {
        "kind": kind,
        "lr": float(ctx.relearn_lr),
        "eval_every": int(ctx.eval_every),
        "protocol": ctx.protocol,
    }
    if kind == "relearn":
        settings["steps"] = int(ctx.relearn_steps)
    else:
        settings.update(max_steps=int(ctx.ain_max_steps), tol=float(ctx.ain_tol))
    what = {
        "format": FORMAT,
        "version": VERSION,
        "settings": settings,
        "ut_state": state_hash(ctx.ut),
        # AIN's target is BEFORE's forget L1: BEFORE is part of the anamnesis key.
        "before_state": state_hash(ctx.before) if kind == "anamnesis" else None,
        "relearn_samples": _pairs_hash(ctx.relearn_samples),
        "forget_test": _pairs_hash(ctx.forget_pairs),
    }
    blob = json.dumps(what, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest(), what


def _cache_dir() -> Path | None:
    if os.environ.get("FORGETIR_NO_CACHE"):
        return None
    root = os.environ.get("FORGETIR_CACHE_DIR") or Path.home() / ".cache" / "forgetir"
    return Path(root) / "ut-reference"


@dataclass
class ReferenceStore:
    """Where UT reference runs are read from and written to.

    ``shipped``: a ``<name>.reference.json`` beside a shipped UT (read only). ``cache``: the
    user cache folder (read and written; None: no cache). ``hits``/``misses`` count lookups.
    """

    shipped: Path | None = None
    cache: Path | None = field(default_factory=_cache_dir)
    ut_sha256: str | None = None
    hits: list[str] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)

    @classmethod
    def for_ut(cls, ut_path: str | Path | None, ut_sha256: str | None = None) -> ReferenceStore:
        """The store of a UT checkpoint file (its shipped reference, if it ships one)."""
        if os.environ.get("FORGETIR_NO_CACHE"):
            return cls(None, None, ut_sha256)
        shipped = None
        if ut_path is not None:
            p = Path(ut_path)
            cand = p.with_name(p.name.removesuffix(".safetensors") + SUFFIX)
            shipped = cand if cand.is_file() else None
        return cls(shipped, _cache_dir(), ut_sha256)

    def get(self, key: str) -> dict[str, Any] | None:
        if self.shipped is not None:
            entries = json.loads(self.shipped.read_text(encoding="utf-8")).get("entries", {})
            if key in entries:
                return entries[key]["run"]
        if self.cache is not None:
            path = self.cache / f"{key}.json"
            if path.is_file():
                try:
                    return json.loads(path.read_text(encoding="utf-8"))["run"]
                except (ValueError, KeyError, OSError):
                    return None  # a damaged cache entry is recomputed
        return None

    def put(self, key: str, what: Mapping[str, Any], run: Mapping[str, Any]) -> None:
        if self.cache is None:
            return
        entry = {
            "format": FORMAT,
            "version": VERSION,
            "key": key,
            "hashes": dict(what),
            "ut_file_sha256": self.ut_sha256,
            "created": utc_now(),
            "software": software_versions(),
            "run": json_safe(run),
        }
        try:
            atomic_json(self.cache / f"{key}.json", entry, allow_nan=False)
        except OSError:
            pass  # an unwritable cache only costs time: the figures do not depend on it


def restore_types(run: Mapping[str, Any]) -> dict[str, Any]:
    """JSON wrote "inf"/"nan" as strings and tuples as lists: give floats and tuples back."""
    out = dict(run)
    out["curve"] = [tuple(float(v) if isinstance(v, str) else v for v in c) for c in run["curve"]]
    for k, v in out.items():
        if isinstance(v, str) and v in ("inf", "-inf", "nan"):
            out[k] = float(v)
    return out


def ut_run(ctx: Context, kind: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """UT's ``kind`` run from ``ctx.reference`` when its key matches, else ``compute()`` (and
    stored). Without a store, just ``compute()``."""
    store = ctx.reference
    if store is None:
        return compute()
    key, what = reference_key(ctx, kind)
    found = store.get(key)
    if found is not None:
        store.hits.append(kind)
        return restore_types(found)
    store.misses.append(kind)
    run = compute()
    if all(math.isfinite(c[2]) for c in run["curve"]):
        store.put(key, what, run)
    return run


def same_target(a: float | None, b: float) -> bool:
    """Whether a stored stop_l1 is this run's target (equal up to float noise across hosts)."""
    return a is not None and math.isclose(float(a), b, rel_tol=1e-6, abs_tol=1e-9)
