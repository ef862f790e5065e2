"""What an unlearning run starts from: its options checked, the run folder, the split and its
data, the parent (BEFORE) and UT models."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from forgetir.atomic import check_output_dir
from forgetir.checkpoint import sha256_file, weights_file
from forgetir.checkpoint.shipped import resolve_checkpoint, ut_name_for
from forgetir.config import DataConfig, check_fields
from forgetir.data.folders import PairedImages, _listing, image_folder
from forgetir.data.pipeline import build_sources, make_train_loader, train_tasks
from forgetir.data.pool import CleanSource, DeadLeavesPool
from forgetir.data.splits import (
    ManifestError,
    build_split_datasets,
    load_manifest,
    make_split,
    save_manifest,
)
from forgetir.data.testsets import MIXED, TEST_SOURCES, check_max_side
from forgetir.errors import InvalidInputError, RunExistsError
from forgetir.methods import get_method
from forgetir.metrics import PROTOCOLS
from forgetir.options import UnlearnOptions, option_name
from forgetir.records import ModelMeta
from forgetir.runs.folder import RUN_JSON, SPLIT_JSON
from forgetir.runs.fresh import prepare_checkpoint
from forgetir.runs.testbed import load_eval_model, model_meta, parent_data_config
from forgetir.runtime.process import resolve_device
from forgetir.scoring.inference import autocast_dtype, tiling_options


def check_options(opts: UnlearnOptions) -> UnlearnOptions:
    """Refuse, before any work, options out of range or not finite (the valid range in the
    message), an unknown method, target, protocol or test set, and method hyperparameters the
    method does not take or that are out of its range."""
    check_fields(opts, option_name)
    for name, value, valid in (
        ("--protocol", opts.protocol, PROTOCOLS),
        ("--test-set", opts.test_set, TEST_SOURCES),
    ):
        if value not in valid:
            raise InvalidInputError(f"{name}: invalid value {value!r}; valid: {', '.join(valid)}")
    if opts.clean_source not in (None, "deadleaves") and not Path(opts.clean_source).is_dir():
        raise InvalidInputError(
            f"--clean-source {opts.clean_source!r}: not 'deadleaves' and not a folder of images"
        )
    if opts.test_set in ("photos", MIXED):
        check_max_side(opts.test_max_side, option_name("test_max_side"))
    tiling_options(opts.tile, opts.tile_overlap)  # the model's own multiple: once it is loaded
    autocast_dtype(opts.precision, resolve_device("auto"))  # unknown, or fp16 on a CPU
    method = get_method(opts.method)
    method.check_target(opts.target)
    method.parse_config(opts.hparams)
    return opts


def check_ut_is_not_parent(checkpoint: Any, ut: Any) -> None:
    """Refuse a UT that is the parent itself (the same weights file content): UT is the model
    retrained without the forget data, and every figure is read against it."""
    if ut is None or is_live(ut) or is_live(checkpoint):
        return
    parent_sha = sha256_file(weights_file(resolve_checkpoint(checkpoint)))
    if sha256_file(weights_file(resolve_checkpoint(ut))) == parent_sha:
        raise InvalidInputError(
            f"--ut {ut} is the parent checkpoint {checkpoint} itself (same SHA-256 "
            f"{parent_sha[:16]}…): give a model retrained without the forget data"
        )


def check_run_folder(out: Path) -> None:
    """A new run needs a new (or empty) folder that can be written: refused before any work."""
    check_output_dir(out)
    if (out / RUN_JSON).exists():
        raise RunExistsError(f"--out {out} already holds an unlearning run; choose another --out")
    if out.is_dir() and any(out.iterdir()):
        raise RunExistsError(
            f"--out {out} is not empty ({', '.join(sorted(p.name for p in out.iterdir())[:5])}); "
            "a run goes into a new or empty folder: choose another --out"
        )


def clean_source_images(source: str, data: DataConfig, seed: int = 0) -> Any:
    """Clean images for unlearning without the training data (``--clean-source``).

    ``"deadleaves"``: a fresh dead-leaves pool (``data.pool_size`` images, pool seed
    ``data.pool_seed + 1_000_003 + seed``, so never the pool BEFORE was trained on); anything
    else: a folder of the user's images. Every task is then synthesised on these images.

    Example:
        >>> clean_source_images("deadleaves", DataConfig(pool_size=2, image_size=32)).ids
        ['dl-000000', 'dl-000001']
    """
    if source == "deadleaves":
        pool_seed = data.pool_seed + 1_000_003 + seed
        return DeadLeavesPool(data.pool_size, data.image_size, pool_seed, data.content_classes)
    if not Path(source).is_dir():
        raise InvalidInputError(
            f"--clean-source {source!r}: not 'deadleaves' and not a folder of images"
        )
    return image_folder(source)


def loader_pair(
    datasets: dict[str, Any], method: Any, batch: int, seed: int, rank: int = 0, world: int = 1
) -> Any:
    """``batches(start)``: dicts of the forget and/or retain batches the method needs; under
    torchrun ``batch`` is this ``rank``'s share and each step's ``world`` shares together are
    the one-process batch (:class:`~forgetir.data.pipeline.StepSampler`)."""

    def batches(start: int) -> Any:
        parts = []
        for name, needed in (("forget", method.needs_forget), ("retain", method.needs_retain)):
            if needed:
                loader = make_train_loader(
                    datasets[name], batch, start_step=start, rank=rank, world_size=world, seed=seed
                )
                parts.append((name, loader))
        iters = {name: iter(loader) for name, loader in parts}
        while True:
            try:
                yield {name: next(it) for name, it in iters.items()}
            except StopIteration:
                return

    return batches


def _split(
    parent_data: DataConfig,
    forget: list[str] | None,
    manifest_path: str | None,
    out: Path,
    sources: tuple[CleanSource | None, dict[str, PairedImages]],
) -> tuple[dict[str, Any], Path]:
    if manifest_path:
        manifest = load_manifest(manifest_path, verify=True)
    else:
        manifest = make_split(parent_data, "degradation", forget or [], sources=sources)
    return manifest, save_manifest(manifest, out / SPLIT_JSON)


def parent_sources(
    parent_data: DataConfig, parent_path: Path, parent: ModelMeta | None
) -> tuple[CleanSource | None, dict[str, PairedImages]]:
    """The parent's training sources; a dead-leaves pool takes its image hashes from the
    parent's training-pool manifest (``train_pool`` in the sidecar) when that file is intact
    (its SHA-256 as recorded) and describes the same pool: hashing renders every image."""
    clean, pairs = build_sources(parent_data, train_tasks(parent_data))
    record = (parent.raw.get("train_pool") if parent else None) or {}
    pool_file = parent_path.parent / str(record.get("file", ""))
    if isinstance(clean, DeadLeavesPool) and record.get("file") and pool_file.is_file():
        if sha256_file(pool_file) == record.get("sha256"):
            clean.adopt_hashes(json.loads(pool_file.read_text()).get("clean") or {})
    return clean, pairs


def _check_split_fits_parent(
    manifest: dict[str, Any], parent: ModelMeta | None, where: str
) -> None:
    """The tasks a split forgets and retains must be tasks the parent was trained on."""
    trained = (parent.raw.get("tasks") if parent else None) or train_tasks(
        parent_data_config(parent)
    )
    for part in ("forget", "retain"):
        outside = [t for t in manifest[part].get("tasks") or [] if t not in trained]
        if outside:
            raise ManifestError(
                f"{where}: {part}.tasks names {', '.join(outside)}, which the parent model was "
                f"not trained on (its tasks: {', '.join(trained)})"
            )


def _check_parent_trained_on(
    manifest: dict[str, Any],
    parent: ModelMeta | None,
    sources: tuple[CleanSource | None, dict[str, PairedImages]],
    where: str,
) -> None:
    """An instances split forgets images the parent was trained on: each forgotten id is in
    the parent's recorded training data with the same bytes (SHA-256). A parent without a
    record of its data (a published checkpoint) is taken at its word."""
    if manifest["kind"] != "instances" or parent is None or not parent.data_config:
        return
    clean, pairs = sources
    index = {("clean", clean.name(i)): (clean, i) for i in range(len(clean))} if clean else {}
    for task, src in pairs.items():
        index.update({(task, src.name(i)): (src, i) for i in range(len(src))})
    unseen = []
    for e in manifest["forget"]["entries"]:
        hit = index.get((e.get("task") if e.get("task") in pairs else "clean", e["id"]))
        if hit is None or hit[0].sha256(hit[1]) != e["sha256"]:
            unseen.append(e["id"] + ("" if hit is None else " (other bytes)"))
    if unseen:
        raise ManifestError(
            f"{where}: {len(unseen)} forgotten image(s) are not in the data the parent model "
            f"was trained on: {_listing(unseen)}; make the split from the parent's data "
            "(forgetir split with its data options)"
        )


def _tasks_of(manifest: dict[str, Any]) -> tuple[list[str], list[str]]:
    if manifest["kind"] == "degradation":
        return list(manifest["forget"]["tasks"]), list(manifest["retain"]["tasks"])
    return [], []


def is_live(spec: Any) -> bool:
    """A model that becomes a checkpoint only inside the run: a live module or ``fresh:NAME``."""
    return isinstance(spec, nn.Module) or (isinstance(spec, str) and spec.startswith("fresh:"))


def final_path(path: Path, work: Path, out: Path) -> str:
    """Where ``path`` will be once the run folder ``work`` has been moved to ``out``."""
    path = Path(path)
    return str(out / path.relative_to(work)) if path.is_relative_to(work) else str(path)


@dataclass
class Inputs:
    """The models, split and data of one unlearning run, loaded."""

    checkpoint: Any  # the parent's checkpoint spec (a live or fresh one saved into the run)
    ut: Any  # the UT's checkpoint spec, or None
    parent_path: Path
    parent_meta: ModelMeta | None
    before: nn.Module
    model: nn.Module  # BEFORE's copy that unlearns
    ut_model: nn.Module | None
    manifest: dict[str, Any]
    split_path: Path
    forget_tasks: list[str]
    retain_tasks: list[str]
    datasets: dict[str, Any]


def load_inputs(
    checkpoint: Any,
    ut: Any,
    work: Path,
    opts: UnlearnOptions,
    forget: list[str] | None,
    split: str | None,
    arch: str | None,
    data: dict[str, Any] | None,
) -> Inputs:
    """Load BEFORE (and its copy), write the split manifest into ``work``, build the forget and
    retain data, and load UT (the shipped one of a degradation split of ``shipped:before``)."""
    # A live nn.Module (forgetir.unlearn_model) or "fresh:MODEL" becomes a checkpoint in the run.
    checkpoint = prepare_checkpoint(checkpoint, work, opts.seed, data=data)
    ut = prepare_checkpoint(ut, work, opts.seed, "ut")
    parent_path = resolve_checkpoint(checkpoint)
    before = load_eval_model(checkpoint, arch)
    model = copy.deepcopy(before)
    parent_meta = model_meta(parent_path)
    parent_data = parent_data_config(parent_meta)
    parent_data.patch_size = opts.patch_size
    sources = parent_sources(parent_data, parent_path, parent_meta)
    manifest, split_path = _split(parent_data, forget, split, work, sources)
    _check_split_fits_parent(manifest, parent_meta, split or "the split")
    _check_parent_trained_on(manifest, parent_meta, sources, split or "the split")
    forget_tasks, retain_tasks = _tasks_of(manifest)
    if split or opts.clean_source is not None:  # another split's data, or data-free
        sources = None
    if opts.clean_source is not None:
        sources = (clean_source_images(opts.clean_source, parent_data, opts.seed), {})
    datasets = build_split_datasets(manifest, opts.patch_size, seed=opts.seed, sources=sources)
    for dataset in datasets.values():
        # Flips/rotations as BEFORE was trained: a model trained on each image in one orientation
        # (data.augment=false) has memorised that orientation, and only that one is its data.
        dataset.augment = parent_data.augment
    if ut is None and forget_tasks:
        ut = ut_name_for(forget_tasks, str(checkpoint))  # a shipped BEFORE's own UT, if any
    # A published UT .ckpt needs --arch.
    ut_model = load_eval_model(ut, arch) if ut is not None else None
    return Inputs(
        checkpoint, ut, parent_path, parent_meta, before, model, ut_model,
        manifest, split_path, forget_tasks, retain_tasks, datasets,
    )  # fmt: skip
