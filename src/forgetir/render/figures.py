"""Pictures of a run: image grids (degraded | BEFORE | unlearned | UT | ground truth) and the
report's plots (loss curves, quality bars, relearning curves, membership losses, sweeps), each
returned as PNG bytes or written as a PNG file. matplotlib's object API only (no pyplot state),
so figures are safe to make from any thread.

Example:
    >>> import tempfile, torch
    >>> with tempfile.TemporaryDirectory() as d:
    ...     write_image_grid(f"{d}/g.png", [("derain", [torch.rand(3, 8, 8)])], ["input"]).suffix
    '.png'
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from forgetir.atomic import atomic_write
from forgetir.errors import InputFileError
from forgetir.runtime.progress import Progress, is_quiet

ROW_NAMES = {"input": "degraded input"}


def num(v: Any) -> float | None:
    """A JSON number, or the strings "inf"/"nan" the writers use for non-finite values."""
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def column(task: str) -> str:
    return f"denoise σ{task.removeprefix('denoise_')}" if task.startswith("denoise_") else task


# ------------------------------------------------------------------------------ image grids


def _as_image(x: torch.Tensor | np.ndarray) -> np.ndarray:
    t = torch.as_tensor(x).detach().float().cpu()
    if t.ndim == 4:
        if t.shape[0] != 1:
            raise ValueError(f"grid images must be single images, got a batch {tuple(t.shape)}")
        t = t[0]
    if t.ndim == 3:
        if t.shape[0] not in (1, 3):
            raise ValueError(f"grid images must have 1 or 3 channels, got {tuple(t.shape)}")
        t = t.permute(1, 2, 0)
        if t.shape[-1] == 1:
            t = t[..., 0]
    elif t.ndim != 2:
        raise ValueError(f"grid images must be (1,C,H,W), (C,H,W) or (H,W); got {tuple(t.shape)}")
    return t.clamp(0, 1).numpy()


def _figure(width: float, height: float) -> Any:
    # Figure without pyplot: no global backend state, safe in libraries and threads.
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def write_image_grid(
    path: str | Path,
    rows: Sequence[tuple[str, Sequence[torch.Tensor | np.ndarray | None]]],
    col_titles: Sequence[str],
    title: str | None = None,
    tile_inches: float = 2.0,
) -> Path:
    """Write a PNG grid: one row per ``(label, images)``, one column per title; ``None`` leaves
    a cell blank. Images are (1,C,H,W), (C,H,W) or (H,W) in [0,1]. Written atomically.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     write_image_grid(f"{d}/grid.png", [("derain", [torch.rand(3, 8, 8), None])],
        ...                      ["input", "UT"]).name
        'grid.png'
    """
    if not rows:
        raise ValueError("write_image_grid: rows is empty")
    n_cols = len(col_titles)
    for label, images in rows:
        if len(images) != n_cols:
            raise ValueError(
                f"write_image_grid: row {label!r} has {len(images)} images for {n_cols} columns"
            )
    fig = _figure(tile_inches * n_cols, tile_inches * len(rows) + (0.4 if title else 0))
    axes = fig.subplots(len(rows), n_cols, squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c, img in enumerate(images):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if img is not None:
                arr = _as_image(img)
                ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None, vmin=0, vmax=1)
            else:
                for side in ax.spines.values():
                    side.set_visible(False)
            if r == 0:
                ax.set_title(col_titles[c], fontsize=10)
            if c == 0:
                ax.set_ylabel(label, fontsize=10)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return atomic_write(Path(path), _png(fig))


def write_model_grid(
    path: str | Path,
    models: Mapping[str, torch.nn.Module | None],
    test_sets: Mapping[str, Any],
    forget_tasks: Sequence[str] = (),
    index: int = 0,
    quiet: bool | None = None,
    outputs: Mapping[str, Mapping[str, torch.Tensor]] | None = None,
) -> Path:
    """Grid of image ``index`` of every test set: degraded input | each model | ground truth,
    one row per task, forget and retain tasks labelled (a ``None`` model leaves its column blank).
    ``outputs[label][task]``, where given, is that model's output for the image (already
    restored by the evaluation), so it is not restored again.
    Progress per row shows after 2 s unless ``quiet`` (None: see :mod:`forgetir.runtime.progress`).

    Example:
        >>> import tempfile
        >>> from forgetir.data.testsets import build_test_sets
        >>> sets = build_test_sets("deadleaves", tasks=("dehaze", "derain"), n=1, size=32)
        >>> with tempfile.TemporaryDirectory() as d:
        ...     write_model_grid(f"{d}/g.png", {"BEFORE": torch.nn.Identity()}, sets,
        ...                      ["dehaze"]).name
        'g.png'
    """
    from forgetir.scoring.evaluate import restore

    rows = []
    with Progress(
        len(test_sets), 0, not is_quiet(quiet), "image grid", delay=None, unit="rows"
    ) as bar:
        for i, (task, ts) in enumerate(test_sets.items(), 1):
            if not 0 <= index < len(ts.degraded):
                raise ValueError(f"image index {index} out of range for test set {task!r}")
            x = ts.degraded[index]
            known = {k: v[task] for k, v in (outputs or {}).items() if task in v}
            outs = [
                known[k] if k in known else restore(m, [x])[0] if m is not None else None
                for k, m in models.items()
            ]
            role = "forget" if task in forget_tasks else "retain"
            rows.append((f"{column(task)} ({role})", [x, *outs, ts.clean[index]]))
            bar.update(i, task)
    cols = ["degraded input", *models, "ground truth"]
    name = test_sets[next(iter(test_sets))].names[index] if test_sets else ""
    return write_image_grid(path, rows, cols, title=f"test image {name}" if name else None)


# ------------------------------------------------------------------------------ figures


def _palette(label: str) -> str:
    return {"input": "#999999", "BEFORE": "#1f77b4", "unlearned": "#d62728", "UT": "#2ca02c"}.get(
        label, "#9467bd"
    )


def loss_figure(log: Mapping[str, list[tuple[float, float]]]) -> bytes | None:
    skip = {"step", "time", "lr"}
    losses = [c for c in log if c not in skip and "loss" in c]
    others = [c for c in log if c not in skip and c not in losses]
    panels = [("loss terms", losses), ("other logged values", others), ("learning rate", ["lr"])]
    panels = [(t, [c for c in cs if c in log]) for t, cs in panels]
    panels = [(t, cs) for t, cs in panels if cs]
    if not panels:
        return None
    fig = _figure(5.0 * len(panels), 3.4)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, cols) in zip(axes, panels, strict=True):
        for c in cols:
            xs, ys = zip(*log[c], strict=True)
            ax.plot(xs, ys, label=c, lw=1.2)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def quality_figure(rows: Mapping[str, Mapping[str, Any]], tasks: list[str], forget: set) -> bytes:
    labels = list(rows)
    fig = _figure(max(6.0, 1.3 * len(tasks) + 2), 3.6)
    ax = fig.subplots()
    width = 0.8 / max(1, len(labels))
    for i, label in enumerate(labels):
        vals = [num((rows[label].get(t) or {}).get("psnr")) for t in tasks]
        vals = [v if v is not None and math.isfinite(v) else 0.0 for v in vals]
        xs = [j + (i - (len(labels) - 1) / 2) * width for j in range(len(tasks))]
        ax.bar(xs, vals, width, label=ROW_NAMES.get(label, label), color=_palette(label))
    ax.set_xticks(range(len(tasks)))
    ax.set_xticklabels([column(t) + (" (forget)" if t in forget else "") for t in tasks])
    ax.set_ylabel("PSNR (dB)")
    ax.grid(axis="y", alpha=0.3)
    # Below the axes: inside, it would hide the bars of the first tasks.
    ax.legend(fontsize=8, ncol=len(labels), loc="upper center", bbox_to_anchor=(0.5, -0.12))
    fig.tight_layout()
    return _png(fig)


def relearn_figure(verify: Mapping[str, Any]) -> bytes | None:
    rel, ain = verify.get("relearn"), verify.get("anamnesis")
    panels = []
    if isinstance(rel, Mapping) and rel.get("runs"):
        panels.append("relearn")
    if isinstance(ain, Mapping) and ain.get("curves"):
        panels.append("ain")
    if not panels:
        return None
    fig = _figure(5.5 * len(panels), 3.6)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, kind in zip(axes, panels, strict=True):
        if kind == "relearn":
            for label, run in rel["runs"].items():
                curve = run.get("curve") or []
                ax.plot(
                    [c[0] for c in curve],
                    [num(c[1]) for c in curve],
                    "-o",
                    ms=2,
                    label=label,
                    color=_palette(label),
                )
            before = num(rel.get("before_forget_psnr"))
            if before is not None:
                ax.axhline(before, ls="--", color=_palette("BEFORE"), label="BEFORE")
            ax.set_title("relearning: forget PSNR")
            ax.set_ylabel("PSNR (dB)")
        else:
            for label, curve in ain["curves"].items():
                ax.plot(
                    [c[0] for c in curve],
                    [num(c[2]) for c in curve],
                    lw=1.2,
                    label=label,
                    color=_palette(label),
                )
            target = num(ain.get("target_l1"))
            if target is not None:
                ax.axhline(target, ls="--", color="k", lw=0.8, label="(1+tol) x BEFORE L1")
            ax.set_title("anamnesis: forget L1 until BEFORE's level")
            ax.set_ylabel("L1")
        ax.set_xlabel("fine-tuning step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def mia_figure(verify: Mapping[str, Any]) -> bytes | None:
    mia = verify.get("membership")
    if not isinstance(mia, Mapping) or not mia.get("models"):
        return None
    models = mia["models"]
    fig = _figure(5.0 * len(models), 3.4)
    axes = fig.subplots(1, len(models), squeeze=False)[0]
    colours = {"members": "#1f77b4", "nonmembers": "#2ca02c", "forgotten": "#d62728"}
    for ax, (label, r) in zip(axes, models.items(), strict=True):
        losses = r.get("losses") or {}
        all_vals = [v for vs in losses.values() for v in vs if num(v) is not None]
        if all_vals:
            bins = np.linspace(min(all_vals), max(all_vals) + 1e-12, 20)
            for group, vals in losses.items():
                if vals:
                    ax.hist(vals, bins=bins, alpha=0.5, label=group, color=colours.get(group))
        ax.set_title(f"{label}: per-image L1 loss")
        ax.set_xlabel("L1 loss")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def sweep_points(sweeps: Any) -> dict[str, list[tuple[Any, dict[str, float]]]]:
    if not isinstance(sweeps, list):
        raise InputFileError("sweeps.json must hold a list of {param, value, psnr: {task: dB}}")
    by_param: dict[str, list[tuple[Any, dict[str, float]]]] = {}
    for i, e in enumerate(sweeps):
        if not isinstance(e, Mapping) or "param" not in e or "value" not in e:
            raise InputFileError(f"sweeps.json entry {i} lacks 'param' or 'value'")
        scores = e.get("psnr") if isinstance(e.get("psnr"), Mapping) else e
        vals = {
            str(t): float(v)
            for t, v in scores.items()
            if t not in ("param", "value", "psnr", "ssim") and num(v) is not None
        }
        by_param.setdefault(str(e["param"]), []).append((e["value"], vals))
    return by_param


def sweep_figure(points: Mapping[str, list[tuple[Any, dict[str, float]]]], forget: set) -> bytes:
    fig = _figure(4.6 * len(points), 3.4)
    axes = fig.subplots(1, len(points), squeeze=False)[0]
    for ax, (param, pts) in zip(axes, points.items(), strict=True):
        numeric = all(num(v) is not None for v, _ in pts)
        pts = sorted(pts, key=lambda p: num(p[0])) if numeric else pts
        xs = [num(v) if numeric else j for j, (v, _) in enumerate(pts)]
        tasks = list(dict.fromkeys(t for _, s in pts for t in s))
        for t in tasks:
            ax.plot(
                xs,
                [s.get(t, np.nan) for _, s in pts],
                "-o" if t in forget else "--s",
                ms=3,
                label=column(t) + (" (forget)" if t in forget else ""),
            )
        if not numeric:
            ax.set_xticks(xs)
            ax.set_xticklabels([str(v) for v, _ in pts])
        ax.set_xlabel(param)
        ax.set_ylabel("PSNR (dB)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)
