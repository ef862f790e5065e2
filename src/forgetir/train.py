"""``forgetir train``: train an all-in-one restoration model (BEFORE), or the model retrained
without some tasks (UT, ``--exclude dehaze``), with the official recipe's L1 loss.

A run folder holds ``model.safetensors`` + ``model.json`` (the sidecar: exact command, seed,
steps, wall time, resolved config, final metrics on the test sets with the degraded-input row,
tasks trained, and the SHA-256 of ``train_pool.json``), ``config.yaml`` (the resolved config),
``train_pool.json`` (every training image's id and SHA-256), ``log.csv``, ``tb/`` and
``resume.pt``. ``--resume`` continues a killed run exactly.

Multi-GPU / multi-node: launch the same command under torchrun (see :mod:`forgetir.engine`);
``train.batch_size`` stays the global batch::

    torchrun --standalone --nproc_per_node 4 -m forgetir.cli train --config paper \\
        data.root=/data/promptir --out runs/promptir

Example:
    >>> import tempfile
    >>> from forgetir.config import load_config
    >>> cfg = load_config("cpu", ["train.steps=2", "train.batch_size=2", "data.pool_size=2",
    ...     "data.image_size=32", "data.patch_size=32", "data.test_max_side=32",
    ...     "data.tasks=[denoise_25]"])
    >>> with tempfile.TemporaryDirectory() as d:
    ...     path = run_train(cfg, d, quiet=True)
    ...     path.name
    'model.safetensors'
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from forgetir.atomic import atomic_json, check_output_dir
from forgetir.checkpoint import TORCH_SUFFIXES, load_model, save_model, sha256_file
from forgetir.checkpoint.shipped import resolve_checkpoint
from forgetir.config import ConfigError, RunConfig, save_config, to_dict
from forgetir.data.datasets import build_train_dataset
from forgetir.data.pipeline import make_train_loader, train_tasks
from forgetir.data.testsets import build_test_sets
from forgetir.engine import RESUME_NAME, RESUME_NEXT_NAME, Engine, FitResult
from forgetir.models import create_model
from forgetir.runs.lock import hold
from forgetir.scoring.evaluate import (
    INPUT_ROW,
    describe_test_sets,
    evaluate_degraded_input,
    evaluate_model,
    format_table,
)

POOL_MANIFEST = "train_pool.json"
CONFIG_NAME = "config.yaml"


def build_model(cfg: RunConfig) -> nn.Module:
    """``cfg.model``: a fresh ``create_model(name, **args)`` or the weights in ``checkpoint``.

    Example:
        >>> build_model(RunConfig()).forgetir_spec["name"]
        'promptir-tiny'
    """
    if cfg.model.checkpoint:
        # "shipped:NAME" fine-tunes a packaged model (the scenario models' recorded recipes)
        path = resolve_checkpoint(cfg.model.checkpoint)
        arch = cfg.model.name if path.suffix in TORCH_SUFFIXES else None
        return load_model(path, arch=arch, **cfg.model.args).train()
    try:
        return create_model(cfg.model.name, **cfg.model.args)
    except (TypeError, ValueError) as e:  # the registry's own errors are ValueErrors too
        raise ConfigError(
            f"model.name={cfg.model.name!r} model.args={cfg.model.args}: cannot build it ({e})"
        ) from None


def l1_loss(batch: Mapping[str, Any], step: int, model: nn.Module) -> dict[str, torch.Tensor]:
    """The official training loss: mean absolute error between restored and clean patches."""
    restored = model(batch["degraded"])
    return {"loss": F.l1_loss(restored.float(), batch["clean"].float())}


def _source_record(src: Any) -> dict[str, Any]:
    return {"describe": src.describe(), "entries": [src.entry(i) for i in range(len(src))]}


def write_pool_manifest(dataset: Any, path: Path, seed: int) -> dict[str, Any]:
    """``train_pool.json``: the clean images (and real pairs) training drew from, by id and
    SHA-256; returns the sidecar's reference to it (file, sha256, image count)."""
    record: dict[str, Any] = {"tasks": list(dataset.tasks), "seed": seed}
    n = 0
    if dataset.source is not None:
        record["clean"] = _source_record(dataset.source)
        n += len(dataset.source)
    record["paired"] = {t: _source_record(p) for t, p in dataset.paired.items()}
    n += sum(len(p) for p in dataset.paired.values())
    atomic_json(path, record, indent=1)
    return {"file": path.name, "sha256": sha256_file(path), "images": n}


def _test_sets(cfg: RunConfig) -> dict[str, Any]:
    return build_test_sets(cfg.data.test_set, cfg.data.tasks, cfg.data.test_max_side, cfg.data.root)


def run_train(
    cfg: RunConfig,
    out_dir: str | Path,
    resume: bool = False,
    command: str = "",
    quiet: bool = False,
    protocol: str = "promptir",
) -> Path:
    """Train ``cfg`` into ``out_dir``; return the final ``model.safetensors``.

    The loss is L1 (official recipe). ``cfg.data.exclude`` drops tasks (the UT model), all else
    identical. At the end the model is evaluated on ``cfg.data.test_set`` for every task of
    ``cfg.data.tasks`` (excluded ones too: that is where UT is compared) and the metrics,
    with the degraded-input row, go into the sidecar.
    """
    out = Path(out_dir)
    check_output_dir(out)  # before any work: a file in its place, not writable...
    tasks = train_tasks(cfg.data)  # validates tasks/exclude before any work
    torch.manual_seed(cfg.train.seed)  # the model's initial weights
    model = build_model(cfg)
    config = to_dict(cfg)
    meta = {
        "command": command or None,
        "seed": cfg.train.seed,
        "config": config,
        "tasks": tasks,
        "excluded": [t for t in cfg.data.tasks if t not in tasks],
    }
    # What a resumed run must match: the config and, with data.split, the manifest's bytes
    # (an edited manifest would change the images trained on mid-run).
    identity = config
    if cfg.data.split:
        identity = {**config, "inputs": {"data.split sha256": sha256_file(cfg.data.split)}}
    engine = Engine(model, cfg.optim, cfg.train, out, config=identity, meta=meta, quiet=quiet)
    existing = _entries(out)
    # One process trains into a folder at a time (the main rank holds its lock): a second
    # `forgetir train --out` the same folder is refused, naming the first.
    lock = hold(out) if engine.is_main else contextlib.nullcontext()
    try:
        with lock:
            try:
                path = _train_and_save(engine, cfg, out, resume, meta, quiet, protocol)
                engine.barrier()
                return path
            except BaseException:
                if engine.is_main:
                    _remove_unresumable(out, existing)
                raise
    finally:
        engine.close()


def _train_and_save(
    engine: Engine,
    cfg: RunConfig,
    out: Path,
    resume: bool,
    meta: dict[str, Any],
    quiet: bool,
    protocol: str,
) -> Path:
    """Fit (with the periodic evaluation), then on rank 0 evaluate and save the model."""
    engine.check_out_dir(resume)
    dataset = build_train_dataset(cfg.data, seed=cfg.train.seed)
    per_rank = engine.local_batch_size()
    if engine.is_main and not (resume and (out / CONFIG_NAME).exists()):
        # A resumed run keeps its file until fit() has checked the config still matches.
        save_config(cfg, out / CONFIG_NAME)

    def batches(start: int) -> Any:
        return make_train_loader(
            dataset,
            per_rank,
            start_step=start,
            workers=cfg.data.workers,
            rank=engine.rank,
            world_size=engine.world_size,
            seed=cfg.train.seed,
            pin_memory=engine.device.type == "cuda",
        )

    test_sets = _test_sets(cfg) if engine.is_main else {}
    source = describe_test_sets(test_sets) if test_sets else ""

    def periodic_eval(net: nn.Module, step: int) -> dict[str, Any]:
        res = evaluate_model(net, test_sets, protocol, engine.device)
        return {t: {"psnr": m["psnr"], "ssim": m["ssim"]} for t, m in res.items()}

    result: FitResult = engine.fit(
        l1_loss,
        batches,
        resume=resume,
        evaluate_fn=periodic_eval if cfg.train.eval_every else None,
    )
    path = out / "model.safetensors"
    if engine.is_main:
        path = _save_trained(
            engine, cfg, out, dataset, test_sets, source, result, meta, quiet, protocol
        )
    return path


def _save_trained(
    engine: Engine,
    cfg: RunConfig,
    out: Path,
    dataset: Any,
    test_sets: dict[str, Any],
    source: str,
    result: FitResult,
    meta: dict[str, Any],
    quiet: bool,
    protocol: str,
) -> Path:
    """Evaluate the trained model (and the degraded input) on ``test_sets`` (described by
    ``source``), save it with its metrics and print the table."""
    rows = {
        INPUT_ROW: evaluate_degraded_input(test_sets, protocol),
        "model": evaluate_model(engine.raw, test_sets, protocol, engine.device),
    }
    save_config(cfg, out / CONFIG_NAME)
    pool = write_pool_manifest(dataset, out / POOL_MANIFEST, cfg.train.seed)
    metrics = {
        "protocol": protocol,
        "test_set": source,
        "tasks": rows["model"],
        INPUT_ROW: rows[INPUT_ROW],
    }
    path = save_model(
        engine.raw,
        out / "model.safetensors",
        **meta,
        metrics=metrics,
        step=result.step,
        steps=cfg.train.steps,
        wall_time=round(result.total_time, 3),
        stopped_early=result.stopped_early,
        skipped_steps=result.skipped_steps,
        world_size=engine.world_size,
        train_pool=pool,
        final_logs=result.logs,
    )
    if not quiet:
        name = "UT (no " + ", ".join(meta["excluded"]) + ")" if meta["excluded"] else "model"
        rows[name] = rows.pop("model")
        print(format_table(rows, protocol, source))
        print(f"saved {path} ({result.step} steps, {result.total_time:.1f} s)")
    return path


def _entries(folder: Path) -> set[str] | None:
    """Names in ``folder`` now (None: the folder does not exist yet)."""
    return {p.name for p in folder.iterdir()} if folder.is_dir() else None


def _remove_unresumable(out: Path, existing: set[str] | None) -> None:
    """After a failed run: unless it left a checkpoint to ``--resume`` from, remove what it
    wrote (config.yaml, log.csv, tb/...) and the folder if it made it, so that nothing that
    looks like a result stays behind."""
    if not out.is_dir() or any((out / n).exists() for n in (RESUME_NAME, RESUME_NEXT_NAME)):
        return
    for p in out.iterdir():
        if existing is None or p.name not in existing:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
    if existing is None:
        with contextlib.suppress(OSError):
            out.rmdir()
