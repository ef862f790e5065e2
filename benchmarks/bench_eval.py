"""evaluate_model's metric step vs a per-image scikit-image loop, on the same restored outputs.

The default evaluation of the cpu scale: the 7 shipped photos (longest side 256), all five
tasks (35 images), restored once by an untrained ``promptir-tiny``. Then, on those outputs:

- forgetir: :func:`forgetir.scoring.evaluate.score_images` per task (what ``evaluate_model``
  runs after
  the forward pass: batched torch PSNR/SSIM, equal sizes grouped);
- reference: a loop calling scikit-image's ``peak_signal_noise_ratio`` and
  ``structural_similarity`` (``channel_axis``, ``data_range=1``: the ``promptir`` protocol)
  image by image.

Prints the median wall and CPU times, their ratios, the largest disagreement of the per-task
means, and the model's forward time for context.

Run: PYTHONPATH=src python benchmarks/bench_eval.py [--repeats 5] [--threads 1] [--max-side 256]

On a busy shared machine trust the CPU-time ratio (with --threads 1) over wall times.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from forgetir.data.testsets import build_test_sets
from forgetir.metrics import describe_protocol
from forgetir.models import create_model
from forgetir.scoring.evaluate import restore, score_images


def _skimage_scores(preds: list[torch.Tensor], clean: list[torch.Tensor]) -> dict[str, float]:
    ps, ss = [], []
    for pred, target in zip(preds, clean, strict=True):
        p = pred[0].clamp(0, 1).permute(1, 2, 0).double().numpy()
        t = target[0].permute(1, 2, 0).double().numpy()
        ps.append(peak_signal_noise_ratio(t, p, data_range=1))
        ss.append(structural_similarity(t, p, channel_axis=2, data_range=1))
    return {"psnr": float(np.mean(ps)), "ssim": float(np.mean(ss))}


def _time(fn: Callable[[], object], repeats: int) -> tuple[float, float, object]:
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    ap.add_argument("--max-side", type=int, default=256)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    sets = build_test_sets("photos", max_side=args.max_side)
    torch.manual_seed(0)
    model = create_model("promptir-tiny")
    t0 = time.perf_counter()
    outputs = {task: restore(model, ts.degraded) for task, ts in sets.items()}
    forward = time.perf_counter() - t0
    n = sum(len(ts) for ts in sets.values())
    pixels = sum(x.numel() // 3 for ts in sets.values() for x in ts.clean)

    def ours() -> dict[str, dict[str, float]]:
        return {t: score_images(outputs[t], ts.clean) for t, ts in sets.items()}

    def reference() -> dict[str, dict[str, float]]:
        return {t: _skimage_scores(outputs[t], ts.clean) for t, ts in sets.items()}

    ours()  # warm-up (first-call allocations, lazy imports)
    w_ours, c_ours, r_ours = _time(ours, args.repeats)
    w_ref, c_ref, r_ref = _time(reference, args.repeats)
    diff = max(abs(r_ours[t][k] - r_ref[t][k]) for t in sets for k in ("psnr", "ssim"))

    print(f"{describe_protocol('promptir')}")
    print(
        f"{n} images ({len(sets)} tasks x {n // len(sets)} photos, longest side "
        f"{args.max_side}, {pixels / 1e6:.2f} Mpixel), torch threads {torch.get_num_threads()}, "
        f"median of {args.repeats}"
    )
    print(f"model forward (promptir-tiny, once):  {forward:7.3f} s wall")
    print(f"forgetir score_images:                {w_ours:7.3f} s wall {c_ours:7.3f} s CPU")
    print(f"scikit-image per-image loop:          {w_ref:7.3f} s wall {c_ref:7.3f} s CPU")
    print(f"speed-up: {w_ref / w_ours:.1f}x wall, {c_ref / c_ours:.1f}x CPU")
    print(f"largest |difference| of a per-task mean PSNR/SSIM: {diff:.2e}")


if __name__ == "__main__":
    main()
