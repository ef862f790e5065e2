"""Draw docs/degradations.png: every task applied to a shipped photo, plus dead-leaves samples.

Also prints, for every task, the PSNR of the degraded image against the clean one on each
shipped photo (seed = the photo's index), so the strength of each degradation is on record.

Run:  PYTHONPATH=src python scripts/make_degradation_figure.py [--photo chelsea] [--out PATH]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from forgetir.data.deadleaves import (  # noqa: E402
    CONTENT_CLASSES,
    image_seed,
    leaf_depth,
    render_dead_leaves,
)
from forgetir.data.photos import SHIPPED_PHOTOS, load_photo  # noqa: E402
from forgetir.degradations import degrade, list_tasks  # noqa: E402
from forgetir.degradations.haze import add_haze  # noqa: E402


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two images in [0,1] (data range 1)."""
    mse = float(((a - b) ** 2).mean())
    return float("inf") if mse == 0 else -10.0 * torch.log10(torch.tensor(mse)).item()


def as_hwc(x: torch.Tensor):
    return x.squeeze(0).permute(1, 2, 0).clamp(0, 1).numpy()


def psnr_table(max_side: int | None) -> None:
    tasks = list_tasks()
    print(f"PSNR (dB) of degraded vs clean, shipped photos (max_side={max_side}):")
    print(f"{'photo':<18}" + "".join(f"{t:>12}" for t in tasks))
    sums = dict.fromkeys(tasks, 0.0)
    for i, name in enumerate(SHIPPED_PHOTOS):
        clean = load_photo(name, max_side=max_side)
        row = []
        for t in tasks:
            value = psnr(degrade(t, clean, i)[0], clean)
            sums[t] += value
            row.append(value)
        print(f"{name:<18}" + "".join(f"{v:>12.2f}" for v in row))
    print(f"{'mean':<18}" + "".join(f"{sums[t] / len(SHIPPED_PHOTOS):>12.2f}" for t in tasks))


def draw(photo: str, out: Path, seed: int, dpi: int = 72) -> None:
    clean = load_photo(photo)
    panels = [("clean: " + photo, clean)]
    for t in list_tasks():
        y, _ = degrade(t, clean, seed)
        panels.append((f"{t}  {psnr(y, clean):.1f} dB", y))
    leaves = []
    for k, cls in enumerate(CONTENT_CLASSES):
        render = render_dead_leaves(image_seed(0, k), 128, cls)
        leaves.append((f"dead leaves: {cls}", render.image[None]))
    render = render_dead_leaves(image_seed(0, 0), 128, "disks")
    hazy, _ = add_haze(render.image[None], seed, depth=leaf_depth(render))
    leaves.append(("disks + haze (leaf depth)", hazy))

    ncol = 4
    rows = [panels[i : i + ncol] for i in range(0, len(panels), ncol)] + [leaves]
    fig, axes = plt.subplots(len(rows), ncol, figsize=(4 * ncol, 3.2 * len(rows)))
    for r, row in enumerate(rows):
        for c in range(ncol):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(row):
                title, img = row[c]
                ax.imshow(as_hwc(img), interpolation="nearest")
                ax.set_title(title, fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    # write next to the target, then rename: never leave a half-written figure
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=out.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=dpi)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; give the usual mode
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    plt.close(fig)
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", default="chelsea", choices=SHIPPED_PHOTOS)
    parser.add_argument("--out", type=Path, default=Path("docs/degradations.png"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-table", action="store_true", help="skip the PSNR table")
    args = parser.parse_args()
    draw(args.photo, args.out, args.seed)
    if not args.no_table:
        psnr_table(None)


if __name__ == "__main__":
    main()
