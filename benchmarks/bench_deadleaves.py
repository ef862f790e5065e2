"""Dead-leaves generation speed on one CPU thread (goal: >= 100 images/s at 128x128).

Prints images/s per content class, from wall time and from this process's CPU time (the
second is the fairer figure on a machine shared with other work).

Run:  PYTHONPATH=src python benchmarks/bench_deadleaves.py [--size 128] [--n 200]
"""

from __future__ import annotations

import argparse
import time

import torch

from forgetir.data.deadleaves import CONTENT_CLASSES, dead_leaves, image_seed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--n", type=int, default=200, help="images per content class")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for i in range(5):  # warm-up: first calls pay for allocations
        dead_leaves(image_seed(99, i), args.size)
    print(f"dead leaves {args.size}x{args.size}, 1 thread, {args.n} images per class")
    total_wall = total_cpu = 0.0
    for cls in CONTENT_CLASSES:
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(args.n):
            dead_leaves(image_seed(0, i), args.size, cls)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        total_wall, total_cpu = total_wall + wall, total_cpu + cpu
        print(f"{cls:<8} {args.n / wall:8.1f} images/s (wall) {args.n / cpu:8.1f} images/s (cpu)")
    n_all = args.n * len(CONTENT_CLASSES)
    wall_rate, cpu_rate = n_all / total_wall, n_all / total_cpu
    print(f"{'all':<8} {wall_rate:8.1f} images/s (wall) {cpu_rate:8.1f} images/s (cpu)")


if __name__ == "__main__":
    main()
