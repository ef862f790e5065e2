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
from forgetir.checkpoint import sha256_file
from forgetir.checks.base import Context, as_pairs, l1_per_image, mean, single_images
from forgetir.provenance import software_versions, utc_now
from forgetir.records import json_safe
from forgetir.scoring.evaluate import restore

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
    return _key_of(what), what


def _key_of(what: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()


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
    refused: list[str] = field(default_factory=list)  # why a stored run was not used

    @classmethod
    def for_ut(cls, ut_path: str | Path | None, ut_sha256: str | None = None) -> ReferenceStore:
        """The store of a UT checkpoint file (its shipped reference, if it ships one), bound to
        the file's SHA-256 (``ut_sha256``, else hashed here)."""
        if ut_sha256 is None and ut_path is not None and Path(ut_path).is_file():
            ut_sha256 = sha256_file(ut_path)
        if os.environ.get("FORGETIR_NO_CACHE"):
            return cls(None, None, ut_sha256)
        shipped = None
        if ut_path is not None:
            p = Path(ut_path)
            cand = p.with_name(p.name.removesuffix(".safetensors") + SUFFIX)
            shipped = cand if cand.is_file() else None
        return cls(shipped, _cache_dir(), ut_sha256)

    def _bound(self, where: Path, recorded: Any) -> bool:
        """Whether a log made for the UT file with SHA-256 ``recorded`` may serve this UT: it
        must name this very file content (a log beside another UT, or edited to fit, is not
        this UT's). Without a UT file (a live module) the key's weight hash binds it."""
        if self.ut_sha256 is None or recorded == self.ut_sha256:
            return True
        self.refused.append(
            f"{where}: made for the UT file with SHA-256 {str(recorded)[:16]}…, not this UT "
            f"({self.ut_sha256[:16]}…)"
        )
        return False

    def get(self, key: str) -> dict[str, Any] | None:
        if self.shipped is not None:
            try:
                log = json.loads(self.shipped.read_text(encoding="utf-8"))
                entries = log.get("entries", {})
                if key in entries and self._bound(self.shipped, log.get("ut_file_sha256")):
                    return entries[key]["run"]
            except (ValueError, KeyError, OSError, AttributeError, TypeError):
                self.refused.append(f"{self.shipped}: not a readable UT reference log")
        if self.cache is not None:
            path = self.cache / f"{key}.json"
            if path.is_file():
                try:
                    entry = json.loads(path.read_text(encoding="utf-8"))
                    if entry["key"] != key or _key_of(entry["hashes"]) != key:
                        self.refused.append(f"{path}: its recorded hashes do not give its key")
                        return None
                    return entry["run"] if self._bound(path, entry["ut_file_sha256"]) else None
                except (ValueError, KeyError, OSError, TypeError):
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
        why = _inconsistency(ctx, found)
        if why is None:
            store.hits.append(kind)
            return restore_types(found)
        store.refused.append(f"UT {kind} log {key[:16]}…: {why}; recomputed")
    store.misses.append(kind)
    run = compute()
    if all(math.isfinite(c[2]) for c in run["curve"]):
        store.put(key, what, run)
    return run


def _inconsistency(ctx: Context, run: Mapping[str, Any]) -> str | None:
    """Why a stored UT run cannot be this UT's, or None. Its start is recomputed (UT's forget
    L1 before any step: one forward pass) and its summary must follow from its curve: a log
    edited to move AIN (its curve or its reached step) is refused, not trusted."""
    try:
        r = restore_types(run)
        curve = [(int(c[0]), float(c[1]), float(c[2])) for c in r["curve"]]
        steps = [c[0] for c in curve]
        if not curve or steps[0] != 0 or steps != sorted(set(steps)):
            return "its curve does not start at step 0 with increasing steps"
        if int(r["steps_run"]) != steps[-1]:
            return "its steps_run is not its curve's last step"
        stop = r.get("stop_l1")
        reached = next((s for s, _, l1 in curve if l1 <= float(stop)), None) if stop else None
        if r.get("reached_step") != reached:
            return f"its reached_step {r.get('reached_step')} is not its curve's ({reached})"
        if r["start_l1"] != curve[0][2] or r["final_l1"] != curve[-1][2]:
            return "its start_l1/final_l1 are not its curve's"
    except (KeyError, TypeError, ValueError, IndexError):
        return "it is not a relearning run record"
    xs, ys = single_images(as_pairs(ctx.forget_pairs, "UT reference check"))
    start = mean(l1_per_image([p.clamp(0, 1) for p in restore(ctx.ut, xs)], ys))
    # 1e-3: room for another device's arithmetic (a GPU may run convolutions in TF32).
    if not math.isclose(start, curve[0][2], rel_tol=1e-3, abs_tol=1e-6):
        return f"its start L1 {curve[0][2]:.6g} is not UT's forget L1 now ({start:.6g})"
    return None


def same_target(a: float | None, b: float) -> bool:
    """Whether a stored stop_l1 is this run's target (equal up to float noise across hosts)."""
    return a is not None and math.isclose(float(a), b, rel_tol=1e-6, abs_tol=1e-9)
