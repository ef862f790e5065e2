"""Training datasets: a run's (its whole data config, ``exclude`` honoured, or one part of a
split manifest: ``data.split``/``data.part``) and the parts of a split."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

from forgetir.config import ConfigError, DataConfig, from_dict
from forgetir.data.folders import PairedImages, _listing, _rel
from forgetir.data.manifest import ManifestError, load_manifest, validate_manifest
from forgetir.data.pipeline import TaskPatchDataset, build_sources, item_seed, train_tasks
from forgetir.data.pool import CleanSource, DeadLeavesPool, SubsetSource


def build_train_dataset(cfg: DataConfig, seed: int) -> TaskPatchDataset:
    """The training dataset a run's data config describes (``exclude`` honoured: the UT model).

    Example:
        >>> ds = build_train_dataset(DataConfig(pool_size=4, image_size=32, patch_size=16,
        ...                                     exclude=["denoise"]), seed=0)
        >>> ds.tasks
        ['dehaze', 'derain']
    """
    tasks = train_tasks(cfg)
    if cfg.workers < 0:
        raise ConfigError(f"data.workers must be >= 0, got {cfg.workers}")
    if cfg.split:
        return _split_part(cfg, seed)
    clean, pairs = build_sources(cfg, tasks)
    return TaskPatchDataset(clean, tasks, cfg.patch_size, seed, paired=pairs, augment=cfg.augment)


# Fields of the data config that decide which images exist: a split's must equal the run's.
_SPLIT_DATA_FIELDS = ("source", "tasks", "pool_size", "pool_seed", "image_size", "content_classes")


def _split_part(cfg: DataConfig, seed: int) -> TaskPatchDataset:
    """``data.part`` of the split manifest ``data.split`` (hashes re-verified), e.g. the
    retain images of a class split: what the UT of that split is trained on."""
    manifest = load_manifest(cfg.split, verify=True)
    theirs = manifest["data"]
    differ = [f for f in _SPLIT_DATA_FIELDS if f in theirs and theirs[f] != getattr(cfg, f)]
    if cfg.root and theirs.get("root") and Path(theirs["root"]) != Path(cfg.root).resolve():
        differ.append("root")
    if differ:
        raise ConfigError(
            f"data.split={cfg.split} was made for other data: "
            + "; ".join(
                f"data.{f} is {getattr(cfg, f)!r} here, {theirs.get(f)!r} in the manifest"
                for f in differ
            )
        )
    if manifest["kind"] == "degradation":
        raise ConfigError(
            f"data.split={cfg.split} is a degradation split: train without those tasks with "
            "data.exclude (--exclude) instead"
        )
    dataset = build_split_datasets(manifest, cfg.patch_size, seed=seed)[cfg.part]
    dataset.augment = cfg.augment  # a training choice of the run, not part of the split
    return dataset


def _part_sources(
    entries: list[dict[str, Any]], clean: CleanSource | None, pairs: dict[str, PairedImages]
) -> tuple[CleanSource | None, dict[str, PairedImages]]:
    index = {("clean", clean.name(i)): i for i in range(len(clean))} if clean is not None else {}
    for t, src in pairs.items():
        index.update({(t, src.name(i)): i for i in range(len(src))})
    chosen: dict[str, list[int]] = {}
    missing, rebound = [], []
    for e in entries:
        key = (e.get("task") if e.get("task") in pairs else "clean", e["id"])
        if key not in index:
            missing.append(e["id"])
            continue
        # The target hashed (manifest "target") must be the one this id trains against.
        src = pairs.get(key[0])
        if (
            src is not None
            and "target" in e
            and e["target"] != _rel(src.targets[index[key]], src.root)
        ):
            rebound.append(f"{e['id']} (target {e['target']!r})")
        chosen.setdefault(key[0], []).append(index[key])
    if missing:
        raise ManifestError(
            f"{len(missing)} manifest images are not in the data any more: {_listing(missing)}"
        )
    if rebound:
        raise ManifestError(
            f"{len(rebound)} manifest entries name a target file their image is not paired "
            f"with in the data: {_listing(rebound)}"
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
        >>> from forgetir.data.splits import make_split
        >>> m = make_split(DataConfig(pool_size=3, image_size=32, patch_size=16), "instances",
        ...                ["dl-000002"], held_out=2)
        >>> ds = build_split_datasets(m)
        >>> len(ds["forget"].source), len(ds["retain"].source), len(ds["test"].source)
        (1, 2, 2)
    """
    validate_manifest(manifest, "manifest")
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
