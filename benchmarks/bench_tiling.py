"""Tiled vs whole-image inference: peak memory, time and PSNR, in fp32 and bf16 autocast.

For each image size S, the shipped photo ``astronaut`` resized to S x S (bicubic) with
Gaussian noise sigma 25 (seed 0) is restored by the model (default ``shipped:before``,
promptir-tiny) whole and in tiles (``--tiles``, ``--overlap``), in each ``--precision``,
through :func:`forgetir.scoring.inference.forward` (what ``forgetir eval --tile --precision`` runs).
Printed per run: wall time, peak memory, PSNR against the clean image, and the gap to the
whole-image fp32 PSNR.

Peak memory, and what it measures:

- on a GPU: ``torch.cuda.max_memory_allocated`` during the forward, minus what was allocated
  before it (model and input): the forward's own peak of tensor memory;
- on the CPU: the process's peak resident set (``VmHWM`` of ``/proc/self/status``) during
  the forward minus its resident set just before, in a fresh process per run, with the peak
  reset first (``/proc/self/clear_refs``): the memory the forward made the process take from
  the operating system (tensors, allocator overhead, and pages glibc keeps).

Run: PYTHONPATH=src python benchmarks/bench_tiling.py --threads 1
     [--model shipped:before | --model promptir] [--sizes 256 512 1024] [--tiles 128 256]
     [--overlap 32] [--precision fp32 bf16] [--device auto]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from forgetir.checkpoint import load_model
from forgetir.checkpoint.shipped import resolve_checkpoint
from forgetir.data.photos import load_photo
from forgetir.metrics import psnr
from forgetir.models import create_model
from forgetir.scoring.inference import forward

MIB = 2**20


def _model(name: str, device: torch.device) -> torch.nn.Module:
    if name.startswith("shipped:") or Path(name).exists():
        model = load_model(resolve_checkpoint(name))
    else:  # a registered architecture at its published size, untrained (time and memory only)
        torch.manual_seed(0)
        model = create_model(name)
    return model.to(device).eval()


def _images(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    clean = F.interpolate(load_photo("astronaut"), size=(size, size), mode="bicubic")
    clean = clean.clamp(0, 1)
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    return clean, (clean + 25 / 255 * noise).clamp(0, 1)


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {key}")


def run_one(spec: dict[str, Any]) -> dict[str, Any]:
    """One restoration as ``spec`` says; its time, peak memory and PSNR."""
    device = torch.device(spec["device"])
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    model = _model(spec["model"], device)
    clean, noisy = _images(spec["size"])
    noisy = noisy.to(device)
    tile, overlap, precision = spec["tile"], spec["overlap"], spec["precision"]
    with torch.no_grad():
        # warm-up (kernels, lazy init) on a 16 x 16 crop: too small to pre-grow the heap
        forward(model, noisy[..., :16, :16], precision=precision)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            before = torch.cuda.memory_allocated(device)
        else:
            Path("/proc/self/clear_refs").write_text("5")  # peak RSS := current RSS
            before = _status_kib("VmRSS") * 1024
        t0 = time.perf_counter()
        out = forward(model, noisy, tile, overlap, precision)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        wall = time.perf_counter() - t0
        if device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(device) - before
        else:
            peak = _status_kib("VmHWM") * 1024 - before
    return {
        **spec,
        "wall_s": wall,
        "peak_mib": peak / MIB,
        "psnr": float(psnr(out.cpu().clamp(0, 1), clean)),
    }


def _in_fresh_process(spec: dict[str, Any]) -> dict[str, Any]:
    """CPU runs each get a fresh process: a process's peak RSS cannot go down again, and
    memory freed by an earlier run would hide this run's."""
    cmd = [sys.executable, __file__, "--child", json.dumps(spec)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"run {spec} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="shipped:before")
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    ap.add_argument("--tiles", type=int, nargs="+", default=[128, 256])
    ap.add_argument("--overlap", type=int, default=32)
    ap.add_argument("--precision", nargs="+", default=["fp32", "bf16"])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_one(json.loads(args.child))))
        return
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    measured = (
        "torch.cuda.max_memory_allocated during the forward, minus the allocation before it"
        if device.startswith("cuda")
        else "peak RSS (VmHWM) of a fresh process during the forward, minus its RSS before it"
    )
    print(f"model {args.model}, device {device}, threads {args.threads or 'default'}")
    print(f"peak memory: {measured}")
    print(f"image: astronaut resized to S x S, Gaussian noise sigma 25; overlap {args.overlap}")
    print()
    ref = f"gap to whole {args.precision[0]} (dB)"
    print(f"| size | tiles | precision | time (s) | peak (MiB) | PSNR (dB) | {ref} |")
    print("|---|---|---|---|---|---|---|")
    for size in args.sizes:
        base = None
        for precision in args.precision:
            for tile in [None, *[t for t in args.tiles if t < size]]:
                spec = {
                    "model": args.model, "device": device, "threads": args.threads,
                    "size": size, "tile": tile, "overlap": args.overlap, "precision": precision,
                }  # fmt: skip
                r = run_one(spec) if device.startswith("cuda") else _in_fresh_process(spec)
                if base is None:  # the first run of a size: whole image, first precision
                    base = r["psnr"]
                tiles = "whole" if tile is None else f"{tile} (overlap {args.overlap})"
                print(
                    f"| {size} | {tiles} | {precision} | {r['wall_s']:.2f} | "
                    f"{r['peak_mib']:.0f} | {r['psnr']:.3f} | {r['psnr'] - base:+.4f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
