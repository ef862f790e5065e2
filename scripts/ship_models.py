"""Copy trained runs into the package as fp16 safetensors (the ``shipped:*`` models).

Usage:
    python scripts/ship_models.py before=runs/ship/before ut-dehaze=runs/ship/ut-dehaze ...
    python scripts/ship_models.py --remeasure [NAME ...]   # sidecar metrics of shipped models
    python scripts/ship_models.py mem-before=runs/mem-before@runs/mem-split.json ...

``NAME=RUN@SPLIT`` ships a scenario model with the split manifest that defines its scenario
(e.g. the members / deleted / non-members of the deletion request a memorising BEFORE was
fine-tuned on) as ``NAME.split.json``, recorded in the sidecar as ``scenario_split``.

Each shipped model keeps its training sidecar (exact command, seed, steps, wall time, config,
training-pool hash) and gets its metrics re-measured on the fp16 weights it actually ships, at
the README's photo size (longest side <= 256): the model rows *and* the degraded-input row, so
both come from the same photos. The fp32 figures measured at the end of training stay beside
them (``metrics_fp32``), with their own test-set label (training may evaluate at another size).
``--remeasure`` redoes only that measurement for models already shipped (weights unchanged).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import torch

from forgetir.atomic import atomic_write
from forgetir.checkpoint import load_model, save_model, sha256_file
from forgetir.checkpoint.shipped import SHIPPED, WEIGHTS_DIR
from forgetir.data.testsets import build_test_sets
from forgetir.scoring.evaluate import describe_test_sets, evaluate_degraded_input, evaluate_model

KEEP = ("seed", "config", "tasks", "excluded", "step", "steps", "wall_time", "world_size")
# Longest photo side of the shipped metrics (the README's tables use the same).
MAX_SIDE = 256


def measure(model: torch.nn.Module, metrics: dict) -> dict:
    """``metrics`` with its model rows, input row and test-set label measured afresh on the
    shipped photos at ``MAX_SIDE``, so that all rows come from the same images."""
    sets = build_test_sets("photos", list(metrics["tasks"]), MAX_SIDE)
    out = dict(metrics)
    out["tasks"] = evaluate_model(model, sets, metrics["protocol"], quiet=True)
    out["input"] = evaluate_degraded_input(sets, metrics["protocol"])
    out["test_set"] = describe_test_sets(sets)
    return out


def _scenario_split(name: str, path: Path) -> dict:
    """Copy a scenario's split manifest beside the weights; its record for the sidecar."""
    dst = WEIGHTS_DIR / f"{name}.split.json"
    shutil.copyfile(path, dst)
    manifest = json.loads(dst.read_text())
    counts = {p: manifest[p]["count"] for p in ("forget", "retain", "test") if p in manifest}
    return {"file": dst.name, "sha256": sha256_file(dst), "kind": manifest["kind"], **counts}


def ship(name: str, run_dir: Path, scenario_split: Path | None = None) -> Path:
    if name not in SHIPPED:
        raise SystemExit(f"unknown shipped name {name!r}; valid: {', '.join(SHIPPED)}")
    src = run_dir / "model.safetensors"
    model = load_model(src)
    meta = model.forgetir_meta
    del model.forgetir_meta  # the fp32 run folder is not a parent users can resolve
    pool_src = run_dir / meta["train_pool"]["file"]
    pool_dst = WEIGHTS_DIR / f"{name}.pool.json"
    shutil.copyfile(pool_src, pool_dst)
    out = WEIGHTS_DIR / f"{name}.safetensors"
    extra = {k: meta[k] for k in KEEP if k in meta}
    extra["train_pool"] = {**meta["train_pool"], "file": pool_dst.name}
    split = (meta.get("config") or {}).get("data", {}).get("split")
    if split:
        # A UT of a class or instance split: ship the manifest it was trained on (its retain
        # part) so that the split being forgotten is provably the one it left out.
        split_dst = WEIGHTS_DIR / f"{name}.split.json"
        shutil.copyfile(split, split_dst)
        extra["train_split"] = {
            "file": split_dst.name,
            "sha256": sha256_file(split_dst),
            "part": meta["config"]["data"]["part"],
        }
    if scenario_split is not None:
        extra["scenario_split"] = _scenario_split(name, scenario_split)
    extra["converted_from"] = {"weights": src.name, "sha256": meta["sha256"], "dtype": "float32"}
    extra["metrics_fp32"] = meta["metrics"]
    save_model(
        model, out, dtype=torch.float16, command=meta["command"], metrics=meta["metrics"], **extra
    )
    # Re-measure what ships: fp16 weights loaded back as float32.
    shipped = load_model(out)
    del shipped.forgetir_meta
    metrics = measure(shipped, meta["metrics"])
    save_model(shipped, out, dtype=torch.float16, command=meta["command"], metrics=metrics, **extra)
    print(f"{name}: {out} ({out.stat().st_size / 1e6:.1f} MB, sha256 {sha256_file(out)[:12]})")
    return out


def remeasure(name: str) -> Path:
    """Re-measure the sidecar metrics of an already shipped model (its weights untouched)."""
    path = WEIGHTS_DIR / f"{name}.json"
    sidecar = json.loads(path.read_text())
    model = load_model(WEIGHTS_DIR / f"{name}.safetensors")
    sidecar["metrics"] = measure(model, sidecar["metrics"])
    atomic_write(path, (json.dumps(sidecar, indent=2) + "\n").encode())
    print(f"{name}: re-measured {path}")
    return path


if __name__ == "__main__":
    if sys.argv[1:2] == ["--remeasure"]:
        for name in sys.argv[2:] or list(SHIPPED):
            remeasure(name)
        sys.exit(0)
    for arg in sys.argv[1:]:
        name, _, path = arg.partition("=")
        run, _, split_path = path.partition("@")
        ship(name, Path(run), Path(split_path) if split_path else None)
