"""Training-pipeline throughput vs the tiny model's training and unlearning step rates.

Pipeline: ``TaskPatchDataset`` on a dead-leaves pool (128x128 images), all five tasks, 64x64
patches, batch 8, through ``make_train_loader`` with 0 and 1 DataLoader workers. The pool is
generated first (its per-image cost is printed separately: it is paid once per image per
process, then cached), so the pipeline figure is the steady state: crop, flip/rotation and the
synthetic degradation. Model: the shipped ``promptir-tiny`` BEFORE, a training step (forward,
L1 backward, AdamW) and the demo's unlearning step (``accurate-forgetting``: forget and retain
batches, Adam) at batch 8 on 64x64 patches, timed in turns. Prints samples/s of the pipeline,
steps/s of both steps, and the ratio pipeline / training step (above 1: the pipeline keeps up).

Run: PYTHONPATH=src python benchmarks/bench_pipeline.py [--batches 40] [--steps 10] [--threads 2]

Wall-clock medians over a few repeats; on a shared machine compare the ratios.
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


def model_rates(batch: int, patch: int, steps: int) -> dict[str, tuple[float, float]]:
    """Steps/s of a promptir-tiny training step and of an unlearning step, timed in turns.

    Training: forward, L1 backward, AdamW (the ``cpu`` preset's optimizer). Unlearning: the
    demo's step, ``accurate-forgetting`` (collapse target, 1:1:1) on a forget batch and a
    retain batch of ``batch`` patches each (two forwards, one backward of the summed loss,
    Adam). Both start from the shipped BEFORE model; steps alternate (train, unlearn, ...) so
    that load from other processes hits both alike. Returns ``{"wall": (train, unlearn),
    "cpu": (train, unlearn)}`` in steps/s of wall-clock and of process CPU time (steadier when
    other jobs compete for the cores).
    """
    from forgetir.checkpoint import load_model
    from forgetir.checkpoint.shipped import resolve_checkpoint
    from forgetir.methods import create_method

    def before() -> torch.nn.Module:
        model = load_model(resolve_checkpoint("shipped:before"))
        model.train()
        return model

    g = torch.Generator().manual_seed(0)

    def pair() -> dict:
        clean = torch.rand(batch, 3, patch, patch, generator=g)
        degraded = (0.6 * clean + 0.4 * torch.rand(batch, 3, 1, 1, generator=g)).clamp(0, 1)
        return {"degraded": degraded, "clean": clean}

    forget, retain = pair(), pair()
    trained = before()
    opt_t = torch.optim.AdamW(trained.parameters(), lr=1e-3, weight_decay=0.01)
    unlearned = before()
    method = create_method("accurate-forgetting", unlearned)
    opt_u = torch.optim.Adam(unlearned.parameters(), lr=2e-4, betas=(0.9, 0.999))

    def train_step() -> None:
        opt_t.zero_grad(set_to_none=True)
        torch.nn.functional.l1_loss(trained(retain["degraded"]), retain["clean"]).backward()
        opt_t.step()

    def unlearn_step() -> None:
        opt_u.zero_grad(set_to_none=True)
        method.loss(forget, retain)["loss"].backward()
        opt_u.step()

    wall = {"train": 0.0, "unlearn": 0.0}
    cpu = {"train": 0.0, "unlearn": 0.0}
    train_step(), unlearn_step()  # warm-up (allocations, first-call overheads)
    for _ in range(steps):
        for key, fn in (("train", train_step), ("unlearn", unlearn_step)):
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall[key] += time.perf_counter() - t0
            cpu[key] += time.process_time() - c0
    return {
        "wall": (steps / wall["train"], steps / wall["unlearn"]),
        "cpu": (steps / cpu["train"], steps / cpu["unlearn"]),
    }


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
    runs = [model_rates(args.batch, args.patch, args.steps) for _ in range(args.repeats)]
    rate = {
        (clock, i): statistics.median(r[clock][i] for r in runs)
        for clock in ("wall", "cpu")
        for i in (0, 1)
    }
    model = rate["wall", 0] * args.batch
    print(
        f"promptir-tiny (shipped BEFORE), batch {args.batch} of {args.patch}x{args.patch}, "
        f"{args.threads} threads, steps alternated; steps/s of wall time (of CPU time):"
    )
    for i, label in enumerate(
        ("training step (L1, AdamW)", "unlearning step (accurate-forgetting, 2 batches, Adam)")
    ):
        print(f"  {label:55s} {rate['wall', i]:6.2f} ({rate['cpu', i]:6.2f}) steps/s")
    print(
        f"  unlearning / training step rate: {rate['wall', 1] / rate['wall', 0]:.2f}x "
        f"({rate['cpu', 1] / rate['cpu', 0]:.2f}x of CPU time)"
    )
    for label, r in rates.items():
        print(f"ratio pipeline ({label}) / training step: {r / model:.1f}x")


if __name__ == "__main__":
    main()
