"""Copy trained runs into the package as fp16 safetensors (the ``shipped:*`` models).

Usage:
    python scripts/ship_models.py before=runs/ship/before ut-dehaze=runs/ship/ut-dehaze ...

Each shipped model keeps its training sidecar (exact command, seed, steps, wall time, config,
training-pool hash) and gets its metrics re-measured on the fp16 weights it actually ships,
beside the fp32 figures measured at the end of training.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import torch

from forgetir.checkpoint import load_model, save_model, sha256_file
from forgetir.data.testsets import build_test_sets
from forgetir.evaluate import describe_test_sets, evaluate_model
from forgetir.shipped import SHIPPED, WEIGHTS_DIR

KEEP = ("seed", "config", "tasks", "excluded", "step", "steps", "wall_time", "world_size")


def ship(name: str, run_dir: Path) -> Path:
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
    extra["converted_from"] = {"weights": src.name, "sha256": meta["sha256"], "dtype": "float32"}
    extra["metrics_fp32"] = meta["metrics"]
    save_model(
        model, out, dtype=torch.float16, command=meta["command"], metrics=meta["metrics"], **extra
    )
    # Re-measure what ships: fp16 weights loaded back as float32.
    shipped = load_model(out)
    del shipped.forgetir_meta
    sets = build_test_sets("photos", meta["metrics"]["tasks"].keys(), 256)
    metrics = dict(meta["metrics"])
    metrics["tasks"] = evaluate_model(shipped, sets, metrics["protocol"])
    metrics["test_set"] = describe_test_sets(sets)
    save_model(shipped, out, dtype=torch.float16, command=meta["command"], metrics=metrics, **extra)
    print(f"{name}: {out} ({out.stat().st_size / 1e6:.1f} MB, sha256 {sha256_file(out)[:12]})")
    return out


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        name, _, path = arg.partition("=")
        ship(name, Path(path))
