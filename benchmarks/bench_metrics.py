"""Batched torch PSNR+SSIM vs a per-image scikit-image loop on the same images.

Seven 320x480 RGB crops of scikit-image's bundled photos, each paired with a noisy copy
(Gaussian noise sigma 0.05, fixed seed). The two paths are timed in turns (torch, skimage,
torch, ...) in process CPU time, so that load on a shared machine hits both alike; prints the
median times, the median per-turn ratio skimage/torch (higher is faster for us), for PSNR+SSIM
together and SSIM alone, and the largest disagreement with scikit-image (~1e-13).

Run: PYTHONPATH=src python benchmarks/bench_metrics.py [--repeats 9] [--device cpu] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from forgetir.metrics import describe_protocol, psnr_ssim, ssim

# (photo, top, left) of each 320x480 crop.
CROPS = [
    ("astronaut", 0, 0),
    ("astronaut", 192, 32),
    ("coffee", 40, 60),
    ("rocket", 100, 150),
    ("immunohistochemistry", 100, 20),
    ("hubble_deep_field", 300, 400),
    ("retina", 500, 500),
]
SKIMAGE_KWARGS = {
    "promptir": {},
    "gaussian": {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False},
}


def load_pairs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return (pred, target) as float64 arrays of shape (7, 320, 480, 3) in [0, 1]."""
    rng = np.random.default_rng(seed)
    targets = np.stack(
        [getattr(data, name)()[t : t + 320, l : l + 480, :3] / 255.0 for name, t, l in CROPS]
    )
    preds = np.clip(targets + rng.normal(0.0, 0.05, targets.shape), 0.0, 1.0)
    return preds, targets


def skimage_loop(preds: np.ndarray, targets: np.ndarray, protocol: str) -> np.ndarray:
    out = []
    for p, t in zip(preds, targets, strict=True):
        out.append(
            (
                peak_signal_noise_ratio(t, p, data_range=1),
                structural_similarity(
                    t, p, channel_axis=-1, data_range=1, **SKIMAGE_KWARGS[protocol]
                ),
            )
        )
    return np.array(out)


def alternated(fn_a, fn_b, repeats: int) -> tuple[list[float], list[float]]:
    """Process-CPU seconds of ``fn_a`` and ``fn_b`` timed in turns (A, B, A, B, ...).

    Alternating makes a load that comes and goes on a shared machine hit both alike, and CPU
    time leaves out the waits for a core.
    """
    times_a, times_b = [], []
    for _ in range(repeats):
        for fn, times in ((fn_a, times_a), (fn_b, times_b)):
            start = time.process_time()
            fn()
            times.append(time.process_time() - start)
    return times_a, times_b


def report(label: str, t_torch: list[float], t_sk: list[float]) -> None:
    """Median CPU times and the median of the per-turn ratios skimage/torch."""
    ratios = [s / t for s, t in zip(t_sk, t_torch, strict=True)]
    print(
        f"  {label}: torch batched {statistics.median(t_torch) * 1000:.1f} ms CPU, "
        f"scikit-image loop {statistics.median(t_sk) * 1000:.1f} ms CPU, "
        f"skimage/torch = {statistics.median(ratios):.2f}x "
        f"(per-turn ratios {min(ratios):.2f}-{max(ratios):.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (scikit-image uses one)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    preds, targets = load_pairs()
    device = torch.device(args.device)
    # Contiguous float32 (B, C, H, W), as a model gives; the metrics work in float64 inside.
    pred_t = torch.from_numpy(preds).permute(0, 3, 1, 2).float().contiguous().to(device)
    target_t = torch.from_numpy(targets).permute(0, 3, 1, 2).float().contiguous().to(device)

    def run_torch(protocol: str) -> tuple[torch.Tensor, torch.Tensor]:
        p, s = psnr_ssim(pred_t, target_t, protocol)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return p, s

    print(
        f"{len(CROPS)} images 320x480 RGB, torch {torch.__version__} on {device}, "
        f"{torch.get_num_threads()} threads, median of {args.repeats}"
    )
    for protocol in ("promptir", "gaussian", "pyiqa"):
        print(describe_protocol(protocol))
        run_torch(protocol)  # warm-up
        if protocol not in SKIMAGE_KWARGS:
            t_torch, _ = alternated(lambda p=protocol: run_torch(p), lambda: None, args.repeats)
            print(
                f"  torch batched: {statistics.median(t_torch) * 1000:.1f} ms CPU"
                " (no scikit-image equivalent)"
            )
            continue
        # scikit-image sees the same float32 values, promoted to float64 as the metrics do.
        p64 = pred_t.double().permute(0, 2, 3, 1).cpu().numpy()
        t64 = target_t.double().permute(0, 2, 3, 1).cpu().numpy()
        ref = skimage_loop(p64, t64, protocol)  # warm-up and reference values
        both = alternated(
            lambda p=protocol: run_torch(p),
            lambda p=protocol, a=p64, b=t64: skimage_loop(a, b, p),
            args.repeats,
        )
        report("PSNR+SSIM", *both)
        kw = SKIMAGE_KWARGS[protocol]
        ssim_only = alternated(
            lambda p=protocol: ssim(pred_t, target_t, p),
            lambda kw=kw, a=p64, b=t64: [
                structural_similarity(t, p, channel_axis=-1, data_range=1, **kw)
                for p, t in zip(a, b, strict=True)
            ],
            args.repeats,
        )
        report("SSIM only", *ssim_only)
        p, s = run_torch(protocol)
        diff_p = np.abs(p.cpu().numpy() - ref[:, 0]).max()
        diff_s = np.abs(s.cpu().numpy() - ref[:, 1]).max()
        print(
            f"  mean PSNR {p.mean().item():.4f} dB, mean SSIM {s.mean().item():.6f}; "
            f"max |diff| vs skimage: PSNR {diff_p:.2e}, SSIM {diff_s:.2e}"
        )


if __name__ == "__main__":
    main()
