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
hash (an altered file is an error naming it). This module makes splits (and runs
``forgetir split``); the manifest format, validation and I/O live in
:mod:`forgetir.data.manifest`, the datasets in :mod:`forgetir.data.datasets` (both re-exported
here).

Example:
    >>> from forgetir.config import DataConfig
    >>> cfg = DataConfig(pool_size=3, image_size=32, test_set="deadleaves")
    >>> m = make_split(cfg, "degradation", ["dehaze"], test_n=1, test_size=32)
    >>> m["forget"]["tasks"], m["retain"]["tasks"][:2], m["forget"]["count"]
    (['dehaze'], ['derain', 'denoise_15'], 3)
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from forgetir.config import DataConfig
from forgetir.data.datasets import build_split_datasets
from forgetir.data.deadleaves import CONTENT_CLASSES
from forgetir.data.folders import PairedImages
from forgetir.data.manifest import (
    FORMAT,
    SPLIT_KINDS,
    VERSION,
    ManifestError,
    load_manifest,
    manifest_sha256,
    save_manifest,
    validate_manifest,
    verify_manifest,
)
from forgetir.data.pipeline import build_sources, resolve_tasks, train_tasks
from forgetir.data.pool import CleanSource, DeadLeavesPool
from forgetir.data.split_items import (
    all_items,
    held_out_files,
    item_entries,
    match_requested,
    part_record,
)
from forgetir.data.testsets import TEST_SOURCES, manifest_test_entries
from forgetir.errors import InputFileError, InvalidInputError, MissingInputError

__all__ = [
    "FORMAT",
    "SPLIT_KINDS",
    "VERSION",
    "ManifestError",
    "build_split_datasets",
    "load_manifest",
    "make_split",
    "manifest_sha256",
    "read_id_list",
    "save_manifest",
    "verify_manifest",
]


# ------------------------------------------------------------------------------- make_split


def _test_part(cfg: DataConfig, n: int, size: int) -> dict[str, Any]:
    if cfg.test_set not in TEST_SOURCES:
        raise InvalidInputError(
            f"unknown data.test_set {cfg.test_set!r}; valid choices: {', '.join(TEST_SOURCES)}"
        )
    desc, entries = manifest_test_entries(cfg.test_set, cfg.test_max_side, cfg.root, n, size)
    return {"source": desc, "count": len(entries), "entries": entries}


@dataclasses.dataclass
class _Data:
    """The training data a split divides: its config, tasks, sources and items."""

    cfg: DataConfig
    tasks: list[str]
    clean: CleanSource | None
    pairs: dict[str, PairedImages]
    items: list[tuple[str, int]]

    def entries(self, items: Sequence[tuple[str, int]]) -> list[dict[str, Any]]:
        return item_entries(items, self.clean, self.pairs)


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
        cfg = dataclasses.replace(cfg, content_classes=list(CONTENT_CLASSES))
    if cfg.root is not None:
        cfg = dataclasses.replace(cfg, root=str(Path(cfg.root).expanduser().resolve()))
    tasks = train_tasks(cfg)
    clean, pairs = sources if sources is not None else build_sources(cfg, tasks)
    data = _Data(cfg, tasks, clean, pairs, all_items(clean, pairs))
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
        manifest.update(_degradation_parts(data, forget, test_n, test_size))
    elif by == "class":
        manifest.update(_class_parts(data, forget, seed, held_out, held_out_fraction))
    else:
        manifest.update(_instance_parts(data, forget, seed, held_out, held_out_fraction))
    return validate_manifest(
        manifest, f"the {by} split"
    )  # e.g. a retained copy of a forgotten image


def _degradation_parts(
    data: _Data, forget: list[str], test_n: int, test_size: int
) -> dict[str, Any]:
    """Forget some tasks, retain the others; the test part is the evaluation test set's."""
    tasks, items, pairs = data.tasks, data.items, data.pairs
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

    return {
        "forget": part_record(f_tasks, None, data.entries(used(f_tasks))),
        "retain": part_record(r_tasks, None, data.entries(used(r_tasks))),
        "test": _test_part(data.cfg, test_n, test_size),
    }


def _class_parts(
    data: _Data, forget: list[str], seed: int, held_out: int, held_out_fraction: float
) -> dict[str, Any]:
    """Forget the images of some content classes; held-out images of every class to test."""
    clean, items = data.clean, data.items
    if clean is None or data.pairs:
        raise InvalidInputError(
            f"class splits need a clean source with classes (data.source deadleaves or "
            f"classes), not {data.cfg.source!r}"
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
        held_out_files(items, groups, held_out_fraction, seed, set())
        if not isinstance(clean, DeadLeavesPool)
        else []
    )
    train = [it for it in items if it not in set(test_items)]
    f_items = [it for it in train if groups[it] in f_classes]
    r_items = [it for it in train if groups[it] not in f_classes]
    return {
        "forget": part_record(data.tasks, f_classes, data.entries(f_items)),
        "retain": part_record(data.tasks, r_classes, data.entries(r_items)),
        "test": _held_out_part(clean, test_items, held_out, data.pairs),
    }


def _instance_parts(
    data: _Data, forget: list[str], seed: int, held_out: int, held_out_fraction: float
) -> dict[str, Any]:
    """Forget an explicit list of images (a deletion request); held-out non-members to test."""
    cfg, clean, items = data.cfg, data.clean, data.items
    label = f"the {cfg.source} training data" + (f" under {cfg.root}" if cfg.root else "")
    f_items = match_requested(forget, items, clean, data.pairs, label)
    chosen = set(f_items)
    test_items: list[tuple[str, int]] = []
    if not isinstance(clean, DeadLeavesPool):
        groups = {it: it[0] for it in items}
        test_items = held_out_files(items, groups, held_out_fraction, seed, chosen)
    excluded = chosen | set(test_items)
    r_items = [it for it in items if it not in excluded]
    if not r_items:
        raise InvalidInputError(
            "the deletion request covers every training image: nothing to retain"
        )
    return {
        "forget": part_record(data.tasks, None, data.entries(f_items)),
        "retain": part_record(data.tasks, None, data.entries(r_items)),
        "test": _held_out_part(clean, test_items, held_out, data.pairs),
    }


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
    entries = item_entries(test_items, clean, pairs)
    desc = {"kind": "held-out files", "description": "drawn from the training files, seeded"}
    return {"source": desc, "count": len(entries), "entries": entries}


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
