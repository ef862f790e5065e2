"""Batched torch PSNR+SSIM vs a per-image scikit-image loop on the same images.

Seven 320x480 RGB crops of scikit-image's bundled photos, each paired with a noisy copy
(Gaussian noise sigma 0.05, fixed seed). Prints the median wall and CPU time of each path, the
ratios, and the largest disagreement between the two (which should be ~1e-12).

Run: PYTHONPATH=src python benchmarks/bench_metrics.py [--repeats 5] [--device cpu] [--threads 1]

On a busy shared machine trust the CPU-time ratio (with --threads 1) over wall times.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from forgetir.metrics import describe_protocol, psnr_ssim

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


def median_time(fn, repeats: int) -> tuple[float, float]:
    """Median (wall, process CPU) seconds; CPU time is steadier on a busy shared machine."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
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
        t_torch = median_time(lambda protocol=protocol: run_torch(protocol), args.repeats)
        if protocol not in SKIMAGE_KWARGS:
            print(
                f"  torch batched: {t_torch[0] * 1000:.1f} ms wall, {t_torch[1] * 1000:.1f} ms CPU"
                " (no scikit-image equivalent)"
            )
            continue
        # scikit-image sees the same float32 values, promoted to float64 as the metrics do.
        p64 = pred_t.double().permute(0, 2, 3, 1).cpu().numpy()
        t64 = target_t.double().permute(0, 2, 3, 1).cpu().numpy()
        ref = skimage_loop(p64, t64, protocol)  # warm-up and reference values
        t_sk = median_time(
            lambda a=p64, b=t64, protocol=protocol: skimage_loop(a, b, protocol), args.repeats
        )
        p, s = run_torch(protocol)
        diff_p = np.abs(p.cpu().numpy() - ref[:, 0]).max()
        diff_s = np.abs(s.cpu().numpy() - ref[:, 1]).max()
        print(
            f"  wall: torch batched {t_torch[0] * 1000:.1f} ms, scikit-image loop "
            f"{t_sk[0] * 1000:.1f} ms, skimage/torch = {t_sk[0] / t_torch[0]:.2f}x"
        )
        print(
            f"  CPU:  torch batched {t_torch[1] * 1000:.1f} ms, scikit-image loop "
            f"{t_sk[1] * 1000:.1f} ms, skimage/torch = {t_sk[1] / t_torch[1]:.2f}x"
        )
        print(
            f"  mean PSNR {p.mean().item():.4f} dB, mean SSIM {s.mean().item():.6f}; "
            f"max |diff| vs skimage: PSNR {diff_p:.2e}, SSIM {diff_s:.2e}"
        )


if __name__ == "__main__":
    main()
