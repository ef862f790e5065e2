"""Forget/retain/test splits, saved as JSON manifests of ids/paths and SHA-256 hashes (no pixels).

Three kinds of split:

- ``degradation`` (the seed paper): forget some tasks ("dehaze", or the family "denoise"), keep
  the others. Parts list the training images each side's tasks use; the test part lists the
  evaluation test set's clean images.
- ``class`` (the second seed): forget the images of some content classes (dead-leaves classes
  or class folders). The test part holds held-out images of every class.
- ``instances`` (a deletion request): forget an explicit list of ids or paths; ids or paths not
  in the data are an error listing them. The test part holds held-out non-members.

Held-out images come from the dead-leaves test namespace (``held_out`` of them) or, for image
files, are drawn (seeded, per class for class splits) from the files: ``held_out_fraction`` of
them, never a requested forget image; they are then in neither forget nor retain.

The manifest records the data configuration, so :func:`build_split_datasets` rebuilds the
forget/retain training datasets from it alone, and :func:`load_manifest` can re-verify every
hash (an altered file is an error naming it).

Example:
    >>> from forgetir.config import DataConfig
    >>> cfg = DataConfig(pool_size=3, image_size=32, test_set="deadleaves")
    >>> m = make_split(cfg, "degradation", ["dehaze"], test_n=1, test_size=32)
    >>> m["forget"]["tasks"], m["retain"]["tasks"][:2], m["forget"]["count"]
    (['dehaze'], ['derain', 'denoise_15'], 3)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from forgetir.atomic import atomic_write
from forgetir.config import ConfigError, DataConfig, from_dict
from forgetir.data.folders import PairedImages, _listing
from forgetir.data.io import sha256_file
from forgetir.data.pipeline import (
    SOURCES,
    TaskPatchDataset,
    build_sources,
    item_seed,
    resolve_tasks,
    train_tasks,
)
from forgetir.data.pool import CleanSource, DeadLeavesPool, SubsetSource
from forgetir.data.testsets import TEST_SOURCES, manifest_test_entries
from forgetir.errors import InputFileError, InvalidInputError, MissingInputError

__all__ = [
    "FORMAT",
    "SPLIT_KINDS",
    "ManifestError",
    "add_split_arguments",
    "build_split_datasets",
    "load_manifest",
    "make_split",
    "manifest_sha256",
    "read_id_list",
    "save_manifest",
    "split_command",
    "verify_manifest",
]

FORMAT = "forgetir-split"
VERSION = 1
SPLIT_KINDS = ("degradation", "class", "instances")
_PARTS = ("forget", "retain", "test")
_PAIRED = ("derain", "dehaze")  # tasks that may come as real pairs


class ManifestError(InvalidInputError):
    """A split manifest is malformed, or a file it lists is missing or altered."""


# ------------------------------------------------------------------------------ candidates


def _items(clean: CleanSource | None, pairs: dict[str, PairedImages]) -> list[tuple[str, int]]:
    """Every training item as (key, index): key "clean" or the task of a pair source."""
    out = [("clean", i) for i in range(len(clean))] if clean is not None else []
    for task, src in pairs.items():
        out += [(task, i) for i in range(len(src))]
    return out


def _src(key: str, clean: CleanSource | None, pairs: dict[str, PairedImages]) -> Any:
    return clean if key == "clean" else pairs[key]


def _entries(
    items: Sequence[tuple[str, int]], clean: CleanSource | None, pairs: dict[str, PairedImages]
) -> list[dict[str, Any]]:
    out = []
    for key, i in items:
        rec = _src(key, clean, pairs).entry(i)
        if key != "clean":
            rec["task"] = key
        out.append(rec)
    return out


def _part(tasks: list[str], classes: list[str] | None, entries: list[dict]) -> dict[str, Any]:
    return {"tasks": tasks, "classes": classes, "count": len(entries), "entries": entries}


def _match(
    requested: Sequence[str],
    items: list[tuple[str, int]],
    clean: CleanSource | None,
    pairs: dict[str, PairedImages],
    label: str,
) -> list[tuple[str, int]]:
    """Items named by ``requested`` (ids, or paths of their files); error listing unknowns."""
    by_name: dict[str, tuple[str, int]] = {}
    by_path: dict[str, tuple[str, int]] = {}
    for key, i in items:
        src = _src(key, clean, pairs)
        by_name.setdefault(src.name(i), (key, i))
        for attr in ("path", "target_path"):
            fn = getattr(src, attr, None)
            if callable(fn):
                by_path.setdefault(str(Path(fn(i)).resolve()), (key, i))
    found: list[tuple[str, int]] = []
    missing: list[str] = []
    for req in dict.fromkeys(requested):  # de-duplicated, in order
        hit = by_name.get(req) or by_path.get(str(Path(req).expanduser().resolve()))
        if hit is None:
            missing.append(req)
        elif hit not in found:
            found.append(hit)
    if missing:
        examples = list(by_name)[:3]
        raise InvalidInputError(
            f"{len(missing)} of {len(dict.fromkeys(requested))} requested images are not in "
            f"{label}: {_listing(missing)} (ids look like: {', '.join(examples)})"
        )
    return found


def _held_out_files(
    items: list[tuple[str, int]],
    groups: dict[tuple[str, int], str],
    fraction: float,
    seed: int,
    exclude: set[tuple[str, int]],
) -> list[tuple[str, int]]:
    """Seeded draw of ``fraction`` of the items of each group (at least one per group of 2+)."""
    if not 0 <= fraction < 1:
        raise InvalidInputError(f"held_out_fraction must be in [0, 1), got {fraction}")
    if fraction == 0:
        return []
    rng = np.random.default_rng(seed)
    out: list[tuple[str, int]] = []
    for g in sorted(set(groups.values())):
        members = [it for it in items if groups[it] == g and it not in exclude]
        k = max(1, round(fraction * len(members))) if len(members) >= 2 else 0
        picks = rng.permutation(len(members))[:k]
        out += [members[p] for p in sorted(picks)]
    return out


# ------------------------------------------------------------------------------- make_split


def _test_part(cfg: DataConfig, n: int, size: int) -> dict[str, Any]:
    if cfg.test_set not in TEST_SOURCES:
        raise InvalidInputError(
            f"unknown data.test_set {cfg.test_set!r}; valid choices: {', '.join(TEST_SOURCES)}"
        )
    desc, entries = manifest_test_entries(cfg.test_set, cfg.test_max_side, cfg.root, n, size)
    return {"source": desc, "count": len(entries), "entries": entries}


def make_split(
    cfg: DataConfig,
    by: str,
    forget: Sequence[str],
    seed: int = 0,
    held_out: int = 32,
    held_out_fraction: float = 0.1,
    test_n: int = 16,
    test_size: int = 128,
    sources: tuple[CleanSource | None, dict[str, PairedImages]] | None = None,
) -> dict[str, Any]:
    """Build a split manifest (a dict; see :func:`save_manifest`).

    ``by``: one of :data:`SPLIT_KINDS`; ``forget``: task names / class names / image ids or
    paths. ``held_out`` (dead leaves) and ``held_out_fraction`` (files) size the test part of
    class and instance splits; ``test_n``/``test_size`` size a dead-leaves test set of a
    degradation split. ``sources`` reuses already built sources (their caches) for ``cfg``.
    Hashing generates every dead-leaves image of the pool (or reads every file).
    """
    if by not in SPLIT_KINDS:
        raise InvalidInputError(
            f"unknown split kind {by!r}; valid choices: {', '.join(SPLIT_KINDS)}"
        )
    forget = [forget] if isinstance(forget, str) else list(forget)
    if not forget:
        raise InvalidInputError(f"a {by} split needs at least one thing to forget")
    if by == "class" and cfg.source == "deadleaves" and not cfg.content_classes:
        from forgetir.data.deadleaves import CONTENT_CLASSES

        cfg = dataclasses.replace(cfg, content_classes=list(CONTENT_CLASSES))
    if cfg.root is not None:
        cfg = dataclasses.replace(cfg, root=str(Path(cfg.root).expanduser().resolve()))
    tasks = train_tasks(cfg)
    clean, pairs = sources if sources is not None else build_sources(cfg, tasks)
    items = _items(clean, pairs)
    label = f"the {cfg.source} training data" + (f" under {cfg.root}" if cfg.root else "")
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "kind": by,
        "seed": int(seed),
        "data": dataclasses.asdict(cfg),
        "source": {
            "clean": clean.describe() if clean is not None else None,
            "paired": {t: p.describe() for t, p in pairs.items()},
        },
    }
    if by == "degradation":
        f_tasks = resolve_tasks(forget, "--forget")
        outside = [t for t in f_tasks if t not in tasks]
        if outside:
            raise InvalidInputError(
                f"forget task(s) {', '.join(outside)} are not trained; trained tasks: "
                f"{', '.join(tasks)}"
            )
        r_tasks = [t for t in tasks if t not in f_tasks]
        if not r_tasks:
            raise InvalidInputError(f"forgetting {', '.join(f_tasks)} leaves no task to retain")

        def used(part_tasks: list[str]) -> list[tuple[str, int]]:
            synthetic = any(t not in pairs for t in part_tasks)
            return [(k, i) for k, i in items if (k == "clean" and synthetic) or k in part_tasks]

        manifest["forget"] = _part(f_tasks, None, _entries(used(f_tasks), clean, pairs))
        manifest["retain"] = _part(r_tasks, None, _entries(used(r_tasks), clean, pairs))
        manifest["test"] = _test_part(cfg, test_n, test_size)
        return manifest

    if by == "class":
        if clean is None or pairs:
            raise InvalidInputError(
                f"class splits need a clean source with classes (data.source deadleaves or "
                f"classes), not {cfg.source!r}"
            )
        present = sorted({c for i in range(len(clean)) if (c := clean.content_class(i))})
        unknown = [c for c in forget if c not in present]
        if unknown:
            raise InvalidInputError(
                f"unknown class(es) {', '.join(map(repr, unknown))}; valid choices: "
                f"{', '.join(present)}"
            )
        f_classes = list(dict.fromkeys(forget))
        r_classes = [c for c in present if c not in f_classes]
        if not r_classes:
            raise InvalidInputError(f"forgetting {', '.join(f_classes)} leaves no class to retain")
        groups = {it: clean.content_class(it[1]) or "" for it in items}
        test_items = (
            _held_out_files(items, groups, held_out_fraction, seed, set())
            if not isinstance(clean, DeadLeavesPool)
            else []
        )
        train = [it for it in items if it not in set(test_items)]
        f_items = [it for it in train if groups[it] in f_classes]
        r_items = [it for it in train if groups[it] not in f_classes]
        manifest["forget"] = _part(tasks, f_classes, _entries(f_items, clean, pairs))
        manifest["retain"] = _part(tasks, r_classes, _entries(r_items, clean, pairs))
        manifest["test"] = _held_out_part(clean, test_items, held_out, pairs)
        return manifest

    # instances
    f_items = _match(forget, items, clean, pairs, label)
    chosen = set(f_items)
    test_items: list[tuple[str, int]] = []
    if not isinstance(clean, DeadLeavesPool):
        groups = {it: it[0] for it in items}
        test_items = _held_out_files(items, groups, held_out_fraction, seed, chosen)
    excluded = chosen | set(test_items)
    r_items = [it for it in items if it not in excluded]
    if not r_items:
        raise InvalidInputError(
            "the deletion request covers every training image: nothing to retain"
        )
    manifest["forget"] = _part(tasks, None, _entries(f_items, clean, pairs))
    manifest["retain"] = _part(tasks, None, _entries(r_items, clean, pairs))
    manifest["test"] = _held_out_part(clean, test_items, held_out, pairs)
    return manifest


def _held_out_part(
    clean: CleanSource | None,
    test_items: list[tuple[str, int]],
    held_out: int,
    pairs: dict[str, PairedImages],
) -> dict[str, Any]:
    if isinstance(clean, DeadLeavesPool):
        if held_out < 1:
            raise InvalidInputError(
                f"held_out must be >= 1 for a dead-leaves split, got {held_out}"
            )
        pool = DeadLeavesPool(
            held_out, clean.image_size, clean.seed, clean.content_classes, namespace="test"
        )
        entries = pool.manifest_entries()
        return {"source": pool.describe(), "count": len(entries), "entries": entries}
    entries = _entries(test_items, clean, pairs)
    desc = {"kind": "held-out files", "description": "drawn from the training files, seeded"}
    return {"source": desc, "count": len(entries), "entries": entries}


# ------------------------------------------------------------------------------ save / load


def _validate(manifest: Any, where: str) -> dict[str, Any]:
    if not isinstance(manifest, dict):
        raise ManifestError(f"{where}: a split manifest must be a JSON object")
    if manifest.get("format") != FORMAT:
        raise ManifestError(f"{where}: not a forgetir split manifest (format != {FORMAT!r})")
    if manifest.get("version") != VERSION:
        raise ManifestError(
            f"{where}: manifest version {manifest.get('version')!r}; this forgetir reads {VERSION}"
        )
    if manifest.get("kind") not in SPLIT_KINDS:
        raise ManifestError(
            f"{where}: kind {manifest.get('kind')!r}; valid choices: {', '.join(SPLIT_KINDS)}"
        )
    missing = [k for k in ("seed", "data", "source", *_PARTS) if k not in manifest]
    if missing:
        raise ManifestError(f"{where}: missing key(s) {', '.join(missing)}")
    try:
        from_dict(DataConfig, manifest["data"], "data.")
    except ConfigError as e:
        raise ManifestError(f"{where}: invalid data section: {e}") from e
    for part in _PARTS:
        p = manifest[part]
        entries = p.get("entries") if isinstance(p, dict) else None
        if not isinstance(entries, list):
            raise ManifestError(f"{where}: {part} must be an object with an 'entries' list")
        if p.get("count") != len(entries):
            raise ManifestError(
                f"{where}: {part}.count is {p.get('count')!r} but it lists {len(entries)} entries"
            )
        for n, e in enumerate(entries):
            ok = isinstance(e, dict) and isinstance(e.get("id"), str)
            ok = ok and isinstance(e.get("sha256"), str) and len(e["sha256"]) == 64
            if not ok:
                raise ManifestError(
                    f"{where}: {part}.entries[{n}] needs an 'id' and a 64-hex 'sha256': {e!r}"
                )
    if manifest["kind"] != "degradation" and not manifest["forget"]["entries"]:
        raise ManifestError(f"{where}: the forget part lists no images")
    _check_consistent(manifest, where)
    return manifest


def _check_consistent(manifest: dict[str, Any], where: str) -> None:
    """A manifest that contradicts itself is refused: forget and retain share no task (a
    degradation split) and no image (class, instance splits; nor does either share one with
    the held-out test part), and every task they name is one the data section trains."""
    try:
        trained = train_tasks(from_dict(DataConfig, manifest["data"], "data."))
    except ConfigError as e:
        raise ManifestError(f"{where}: invalid data section: {e}") from e
    tasks = {}
    for part in ("forget", "retain"):
        names = manifest[part].get("tasks")
        if not isinstance(names, list) or not all(isinstance(t, str) for t in names):
            raise ManifestError(f"{where}: {part}.tasks must be a list of task names")
        outside = [t for t in names if t not in trained]
        if outside:
            raise ManifestError(
                f"{where}: {part}.tasks names {', '.join(outside)}, which the manifest's data "
                f"does not train (trained tasks: {', '.join(trained)})"
            )
        tasks[part] = names
    if manifest["kind"] == "degradation":
        if not tasks["forget"] or not tasks["retain"]:
            empty = "forget" if not tasks["forget"] else "retain"
            raise ManifestError(f"{where}: {empty}.tasks is empty")
        both = [t for t in tasks["forget"] if t in tasks["retain"]]
        if both:
            raise ManifestError(
                f"{where}: task(s) {', '.join(both)} are in both forget.tasks and retain.tasks"
            )
        return
    if manifest["kind"] == "class":
        classes = {p: manifest[p].get("classes") or [] for p in ("forget", "retain")}
        both = [c for c in classes["forget"] if c in classes["retain"]]
        if both:
            raise ManifestError(
                f"{where}: class(es) {', '.join(map(str, both))} are in both forget.classes "
                "and retain.classes"
            )

    def keys(part: str) -> dict[tuple[Any, str], str]:
        return {(e.get("task"), e["id"]): e["id"] for e in manifest[part]["entries"]}

    parts = {p: keys(p) for p in _PARTS}
    for a, b in (("forget", "retain"), ("forget", "test"), ("retain", "test")):
        both = [name for k, name in parts[a].items() if k in parts[b]]
        if both:
            raise ManifestError(
                f"{where}: {len(both)} image(s) are in both {a} and {b}: {_listing(both)}"
            )


def save_manifest(manifest: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Validate and write ``manifest`` as JSON, atomically (temp file + rename).

    Example:
        >>> import tempfile, os
        >>> from forgetir.config import DataConfig
        >>> m = make_split(DataConfig(pool_size=2, image_size=16), "instances", ["dl-000001"],
        ...                held_out=1)
        >>> p = save_manifest(m, os.path.join(tempfile.mkdtemp(), "split.json"))
        >>> load_manifest(p)["forget"]["entries"][0]["id"]
        'dl-000001'
    """
    path = Path(path)
    _validate(manifest, "manifest to save")
    text = json.dumps(manifest, indent=1, sort_keys=False) + "\n"
    atomic_write(path, text)
    return path


def load_manifest(path: str | os.PathLike[str], verify: bool = False) -> dict[str, Any]:
    """Read and validate a split manifest; with ``verify`` re-check every SHA-256."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"split manifest not found: {path}")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ManifestError(f"{path}: not valid JSON ({e})") from e
    _validate(manifest, str(path))
    if verify:
        verify_manifest(manifest, where=str(path))
    return manifest


def manifest_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a manifest file, to cite it in reports."""
    return sha256_file(path)


def _generated_hashes(desc: dict[str, Any]) -> dict[str, str] | None:
    """id -> sha256 of a generated source, rebuilt from its description (None: not generated)."""
    kind = desc.get("kind")
    if kind == "deadleaves":
        pool = DeadLeavesPool(
            desc["size"],
            desc["image_size"],
            desc["seed"],
            desc.get("content_classes"),
            namespace=desc.get("namespace", "train"),
        )
        return {pool.name(i): pool.sha256(i) for i in range(len(pool))}
    if kind in ("photos-test", "deadleaves-test"):
        src = kind.removesuffix("-test")
        _, entries = manifest_test_entries(
            src, desc.get("max_side"), None, desc.get("n", 16), desc.get("size", 128)
        )
        return {e["id"]: e["sha256"] for e in entries}
    return None


def verify_manifest(manifest: dict[str, Any], where: str = "manifest") -> None:
    """Re-hash every listed file (and regenerate generated images); error naming the altered.

    Example:
        >>> from forgetir.config import DataConfig
        >>> m = make_split(DataConfig(pool_size=2, image_size=16), "instances", ["dl-000000"],
        ...                held_out=1)
        >>> verify_manifest(m)
    """
    root = manifest["data"].get("root")
    base = Path(root) if root else Path.cwd()
    bad: list[str] = []
    descs = {
        "forget": manifest["source"].get("clean") or {},
        "retain": manifest["source"].get("clean") or {},
        "test": manifest["test"].get("source") or {},
    }
    generated_cache: dict[str, dict[str, str] | None] = {}
    for part in _PARTS:
        for e in manifest[part]["entries"]:
            if "path" in e:
                for key, hkey in (("path", "sha256"), ("target", "target_sha256")):
                    if key not in e:
                        continue
                    f = base / e[key]
                    if not f.is_file():
                        bad.append(f"{f} (missing)")
                    elif sha256_file(f) != e[hkey]:
                        bad.append(f"{f} (altered: SHA-256 differs)")
                continue
            key = json.dumps(descs[part], sort_keys=True)
            if key not in generated_cache:
                generated_cache[key] = _generated_hashes(descs[part])
            hashes = generated_cache[key]
            if hashes is None:
                bad.append(f"{e['id']} (cannot regenerate: source {descs[part].get('kind')!r})")
            elif hashes.get(e["id"]) != e["sha256"]:
                bad.append(f"{e['id']} (regenerated image differs)")
    if bad:
        raise ManifestError(f"{where}: {len(bad)} listed images fail verification: {_listing(bad)}")


# --------------------------------------------------------------------------------- datasets


def _part_sources(
    entries: list[dict[str, Any]], clean: CleanSource | None, pairs: dict[str, PairedImages]
) -> tuple[CleanSource | None, dict[str, PairedImages]]:
    index = {("clean", clean.name(i)): i for i in range(len(clean))} if clean is not None else {}
    for t, src in pairs.items():
        index.update({(t, src.name(i)): i for i in range(len(src))})
    chosen: dict[str, list[int]] = {}
    missing = []
    for e in entries:
        key = (e.get("task") if e.get("task") in pairs else "clean", e["id"])
        if key not in index:
            missing.append(e["id"])
        else:
            chosen.setdefault(key[0], []).append(index[key])
    if missing:
        raise ManifestError(
            f"{len(missing)} manifest images are not in the data any more: {_listing(missing)}"
        )
    sub_clean = SubsetSource(clean, chosen["clean"]) if "clean" in chosen else None
    sub_pairs = {}
    for t, idx in chosen.items():
        if t != "clean":
            src = pairs[t]
            sub_pairs[t] = PairedImages(
                [(src.inputs[i], src.targets[i]) for i in idx],
                src.root,
                src.label,
                kind=src.kind,
                task=t,
            )
    return sub_clean, sub_pairs


def build_split_datasets(
    manifest: dict[str, Any],
    patch_size: int | None = None,
    seed: int = 0,
    sources: tuple[CleanSource | None, dict[str, PairedImages]] | None = None,
) -> dict[str, TaskPatchDataset]:
    """Training datasets of a split: ``forget``, ``retain``, ``train`` (both) and, for class
    and instance splits, ``test`` (the held-out images, as patches, e.g. for membership tests).

    Each part gets its own seed derived from ``seed`` and the part's name, so that batch ``s``
    of the forget set and batch ``s`` of the retain set do not share image draws and crops.

    Example:
        >>> from forgetir.config import DataConfig
        >>> m = make_split(DataConfig(pool_size=3, image_size=32, patch_size=16), "instances",
        ...                ["dl-000002"], held_out=2)
        >>> ds = build_split_datasets(m)
        >>> len(ds["forget"].source), len(ds["retain"].source), len(ds["test"].source)
        (1, 2, 2)
    """
    _validate(manifest, "manifest")
    cfg = from_dict(DataConfig, manifest["data"], "data.")
    patch = int(patch_size or cfg.patch_size)
    tasks = train_tasks(cfg)
    clean, pairs = sources if sources is not None else build_sources(cfg, tasks)
    out: dict[str, TaskPatchDataset] = {}

    def dataset(part: str, src: Any, part_tasks: list[str], paired: dict) -> TaskPatchDataset:
        part_seed = item_seed(seed, zlib.crc32(part.encode()))
        return TaskPatchDataset(src, part_tasks, patch, part_seed, paired=paired)

    if manifest["kind"] == "degradation":
        for part in ("forget", "retain"):
            part_tasks = manifest[part]["tasks"]
            part_pairs = {t: p for t, p in pairs.items() if t in part_tasks}
            needs_clean = any(t not in pairs for t in part_tasks)
            out[part] = dataset(part, clean if needs_clean else None, part_tasks, part_pairs)
        out["train"] = dataset("train", clean, tasks, pairs)
        return out
    parts = {p: manifest[p]["entries"] for p in ("forget", "retain")}
    parts["train"] = parts["forget"] + parts["retain"]
    for part, entries in parts.items():
        sub_clean, sub_pairs = _part_sources(entries, clean, pairs)
        part_tasks = [t for t in tasks if t in sub_pairs or (t not in pairs and sub_clean)]
        out[part] = dataset(part, sub_clean, part_tasks, sub_pairs)
    test_entries = manifest["test"]["entries"]
    if test_entries:
        if isinstance(clean, DeadLeavesPool):
            d = manifest["test"]["source"]
            held = DeadLeavesPool(
                d["size"], d["image_size"], d["seed"], d.get("content_classes"), namespace="test"
            )
            out["test"] = dataset("test", held, tasks, {})
        else:
            sub_clean, sub_pairs = _part_sources(test_entries, clean, pairs)
            part_tasks = [t for t in tasks if t in sub_pairs or (t not in pairs and sub_clean)]
            out["test"] = dataset("test", sub_clean, part_tasks, sub_pairs)
    return out


# ------------------------------------------------------------------------------------- CLI


def read_id_list(path: str | os.PathLike[str]) -> list[str]:
    """Ids or paths, one per line (blank lines and ``#`` comments skipped); error if none."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"deletion list not found (or not a file): {path}")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputFileError(f"cannot read the deletion list {path} as text: {e}") from e
    ids = [s.strip() for s in lines]
    ids = [s for s in ids if s and not s.startswith("#")]
    if not ids:
        raise InputFileError(f"deletion list {path} names no images")
    return ids


def add_split_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Options of ``forgetir split`` (run it with :func:`split_command`)."""
    parser.add_argument("--by", required=True, choices=SPLIT_KINDS, help="kind of split")
    parser.add_argument(
        "--forget",
        nargs="+",
        default=[],
        metavar="NAME",
        help="tasks (degradation: dehaze, derain, denoise_15/25/50 or the family denoise), "
        "classes (class) or image ids/paths (instances)",
    )
    parser.add_argument(
        "--list",
        dest="id_list",
        metavar="FILE",
        help="instances: a file of image ids or paths to forget, one per line",
    )
    parser.add_argument("--source", choices=SOURCES, default=None, help="training data source")
    parser.add_argument("--root", default=None, help="dataset folder (non-synthetic sources)")
    parser.add_argument("--tasks", nargs="+", default=None, metavar="TASK", help="trained tasks")
    parser.add_argument("--pool-size", type=int, default=None, help="dead-leaves pool size")
    parser.add_argument("--pool-seed", type=int, default=None, help="dead-leaves pool seed")
    parser.add_argument("--image-size", type=int, default=None, help="dead-leaves image side")
    parser.add_argument("--content-classes", nargs="+", default=None, metavar="CLASS")
    parser.add_argument("--test-set", choices=TEST_SOURCES, default=None)
    parser.add_argument(
        "--held-out",
        type=int,
        default=32,
        help="class/instances on dead leaves: number of held-out test images",
    )
    parser.add_argument(
        "--held-out-fraction",
        type=float,
        default=0.1,
        help="class/instances on image files: share of files held out for testing",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the held-out draw")
    parser.add_argument("--out", required=True, help="where to write the manifest (JSON)")
    return parser


def split_command(args: argparse.Namespace, base: DataConfig | None = None) -> int:
    """Run ``forgetir split``: build the manifest the options describe and save it.

    ``base`` is the run's data config (a preset); options given on the command line override
    its fields.
    """
    from forgetir.atomic import check_output_file
    from forgetir.config import AT_LEAST_ONE, NON_NEGATIVE, RANGES, UNIT, check_range

    cfg = base or DataConfig()
    overrides = {
        "source": args.source,
        "root": args.root,
        "tasks": args.tasks,
        "pool_size": args.pool_size,
        "pool_seed": args.pool_seed,
        "image_size": args.image_size,
        "content_classes": args.content_classes,
        "test_set": args.test_set,
    }
    for key, value in overrides.items():
        check_range("--" + key.replace("_", "-"), value, RANGES.get(f"data.{key}"))
    check_range("--held-out", args.held_out, AT_LEAST_ONE)
    check_range("--held-out-fraction", args.held_out_fraction, UNIT)
    check_range("--seed", args.seed, NON_NEGATIVE)
    check_output_file(args.out)
    cfg = dataclasses.replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    forget = list(args.forget)
    if args.id_list:
        if args.by != "instances":
            raise InvalidInputError("--list is for --by instances (a deletion request)")
        forget += read_id_list(args.id_list)
    manifest = make_split(
        cfg,
        args.by,
        forget,
        seed=args.seed,
        held_out=args.held_out,
        held_out_fraction=args.held_out_fraction,
    )
    path = save_manifest(manifest, args.out)
    counts = ", ".join(f"{p} {manifest[p]['count']}" for p in _PARTS)
    print(f"wrote {path} ({args.by} split: {counts}; sha256 {manifest_sha256(path)[:16]}...)")
    return 0
