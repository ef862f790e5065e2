"""Training-pipeline throughput vs the tiny model's training-step rate (is data the bottleneck?).

Pipeline: ``TaskPatchDataset`` on a dead-leaves pool (128x128 images), all five tasks, 64x64
patches, batch 8, through ``make_train_loader`` with 0 and 1 DataLoader workers. The pool is
generated first (its per-image cost is printed separately: it is paid once per image per
process, then cached), so the pipeline figure is the steady state: crop, flip/rotation and the
synthetic degradation. Model: ``promptir-tiny`` forward + L1 backward + AdamW step at batch 8
on 64x64 patches. Prints samples/s of each and the ratio pipeline / model (above 1: the
pipeline keeps up).

Run: PYTHONPATH=src python benchmarks/bench_pipeline.py [--batches 40] [--steps 10] [--threads 2]

Wall-clock medians over a few repeats; on a shared machine compare the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from forgetir.data.pipeline import TaskPatchDataset, make_train_loader
from forgetir.data.pool import DeadLeavesPool
from forgetir.degradations import TASKS


def pipeline_rate(ds: TaskPatchDataset, batch: int, batches: int, workers: int) -> float:
    """Samples/s of the loader after a warm-up of two batches (worker start-up excluded)."""
    loader = make_train_loader(ds, batch, workers=workers, total_steps=batches + 2)
    it = iter(loader)
    next(it), next(it)
    t0 = time.perf_counter()
    n = 0
    for b in it:
        n += b["degraded"].shape[0]
    return n / (time.perf_counter() - t0)


def model_rate(batch: int, patch: int, steps: int) -> float:
    """Samples/s of promptir-tiny training steps (forward, L1 backward, AdamW)."""
    from forgetir.models import create_model

    model = create_model("promptir-tiny")
    opt = torch.optim.AdamW(model.parameters(), lr=2e-4, weight_decay=0.01)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, patch, patch, generator=g)
    y = torch.rand(batch, 3, patch, patch, generator=g)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.l1_loss(model(x), y)
        loss.backward()
        opt.step()

    step()  # warm-up (allocations, first-call overheads)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool-size", type=int, default=32)
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--patch", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--batches", type=int, default=40, help="loader batches timed per repeat")
    ap.add_argument("--steps", type=int, default=10, help="model steps timed per repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (main)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    pool = DeadLeavesPool(args.pool_size, args.image_size, seed=0)
    t0 = time.perf_counter()
    pool.materialize()
    gen = (time.perf_counter() - t0) / args.pool_size
    print(
        f"dead-leaves generation: {gen * 1000:.0f} ms per {args.image_size}x{args.image_size}"
        f" image (once per image per process; {args.pool_size} images)"
    )

    ds = TaskPatchDataset(pool, list(TASKS), args.patch, seed=0)
    print(f"pipeline: {args.patch}x{args.patch} patches, batch {args.batch}, tasks {TASKS}")
    rates = {}
    # 0 workers: items are made in the main process with its thread count; the worker process
    # runs one intra-op thread (worker_init_fn), which suits these small per-item ops.
    for label, workers, threads in (
        (f"0 workers, {args.threads} threads", 0, args.threads),
        ("0 workers, 1 thread", 0, 1),
        ("1 worker", 1, args.threads),
    ):
        torch.set_num_threads(threads)
        runs = [pipeline_rate(ds, args.batch, args.batches, workers) for _ in range(args.repeats)]
        rates[label] = statistics.median(runs)
        print(f"pipeline, {label:22s}: {rates[label]:8.1f} samples/s")
    torch.set_num_threads(args.threads)
    try:
        runs = [model_rate(args.batch, args.patch, args.steps) for _ in range(args.repeats)]
    except ImportError as e:  # models not installed in this checkout
        print(f"model step rate: unavailable ({e})")
        return
    model = statistics.median(runs)
    print(
        f"promptir-tiny train step, batch {args.batch}: {model:8.1f} samples/s "
        f"({model / args.batch:.2f} steps/s, {args.threads} threads)"
    )
    for label, r in rates.items():
        print(f"ratio pipeline ({label}) / model: {r / model:.1f}x")


if __name__ == "__main__":
    main()
