"""Evaluate restoration models per task and print the seed paper's PSNR/SSIM table.

Every number comes with its protocol (:func:`forgetir.metrics.describe_protocol`) and its test
set (``TestSet.source``), and every table starts with the degraded input itself: a model that
"forgot" a task should land near that row, not far below it.

Example:
    >>> import torch
    >>> from forgetir.data.testsets import build_test_sets
    >>> sets = build_test_sets("deadleaves", tasks=("denoise_25",), n=2, size=32)
    >>> rows = {"input": evaluate_degraded_input(sets),
    ...         "identity": evaluate_model(torch.nn.Identity(), sets)}
    >>> rows["input"]["denoise_25"] == rows["identity"]["denoise_25"]
    True
    >>> print(format_table(rows, "promptir", describe_test_sets(sets)).splitlines()[2])
    | model | denoise σ25 |
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from forgetir.atomic import atomic_json
from forgetir.degradations import TASKS
from forgetir.metrics import describe_protocol, psnr_ssim
from forgetir.runtime.progress import Progress, is_quiet
from forgetir.scoring.inference import (
    cached_outputs,
    current_precision,
    current_tiling,
    forward,
    gather_shares,
    shard_indices,
)

Metrics = dict[str, Any]  # {"psnr": float, "ssim": float, "n": int}
INPUT_ROW = "input"


def _device(device: str | torch.device | None, model: nn.Module | None = None) -> torch.device:
    if device is None or device == "auto":
        if model is not None:
            p = next(iter(model.parameters()), None)
            if p is not None:
                return p.device
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _groups(images: Sequence[torch.Tensor], batch_size: int) -> list[list[int]]:
    """Indices of images batched together: same (C, H, W), at most ``batch_size`` each."""
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, x in enumerate(images):
        if x.ndim != 4 or x.shape[0] != 1:
            raise ValueError(f"test image {i} must be (1, C, H, W), got {tuple(x.shape)}")
        by_shape.setdefault(tuple(x.shape[1:]), []).append(i)
    out = []
    for idx in by_shape.values():
        out += [idx[k : k + batch_size] for k in range(0, len(idx), batch_size)]
    return out


@torch.no_grad()
def restore(
    model: nn.Module,
    images: Sequence[torch.Tensor],
    device: str | torch.device | None = None,
    batch_size: int = 8,
    on_batch: Callable[[int], None] | None = None,
    tile: int | None = None,
    tile_overlap: int | None = None,
    precision: str | None = None,
) -> list[torch.Tensor]:
    """Run ``model`` on (1,C,H,W) ``images``, batching equal sizes; float32 outputs on the CPU,
    in order.

    The model is put in eval mode for the call and its previous mode restored. ``on_batch``
    is called with the number of images of each batch done (for progress displays).
    ``tile``/``tile_overlap``: restore ``tile`` × ``tile`` tiles with blended overlaps
    (:func:`~forgetir.models.tiling.restore_tiled`); ``precision``: ``auto``, ``fp32`` or
    ``bf16`` autocast of the model's forward. None: as the enclosing
    :func:`~forgetir.scoring.inference.tiling_scope` /
    :func:`~forgetir.scoring.inference.precision_scope`
    say (whole images in fp32 outside them).

    Example:
        >>> out = restore(torch.nn.Identity(), [torch.zeros(1, 3, 8, 8)] * 3)
        >>> len(out), out[0].shape
        (3, torch.Size([1, 3, 8, 8]))
    """
    dev = _device(device, model)
    scoped_tile, scoped_overlap = current_tiling()
    how = (
        scoped_tile if tile is None else tile,
        scoped_overlap if tile_overlap is None else tile_overlap,
        current_precision() if precision is None else precision,
        str(dev),
        batch_size,  # another batching may round differently: the very same call only
    )

    restored = 0  # images restored by this call (none when the outputs were reused)

    def compute() -> list[torch.Tensor]:
        nonlocal restored
        was_training = model.training
        model.eval()
        outputs: list[torch.Tensor | None] = [None] * len(images)
        mine = shard_indices(len(images))  # all of them, unless torchrun's ranks share the work
        try:
            for idx in _groups([images[i] for i in mine], batch_size):
                x = torch.cat([images[mine[i]] for i in idx]).to(dev)
                y = forward(model, x, tile, tile_overlap, precision).cpu()
                for k, i in enumerate(idx):
                    outputs[mine[i]] = y[k : k + 1]
                restored += len(idx)
                if on_batch is not None:
                    on_batch(len(idx))
        finally:
            model.train(was_training)
        return gather_shares(outputs)

    # Within forgetir.scoring.inference.reuse_outputs(), the same model on the same images once.
    outputs = cached_outputs(model, images, how, compute)
    if on_batch is not None and not restored and outputs:
        on_batch(len(outputs))  # reused: the progress still counts them
    return outputs


def score_images(
    preds: Sequence[torch.Tensor],
    targets: Sequence[torch.Tensor],
    protocol: str = "promptir",
    batch_size: int = 8,
    names: Sequence[str] | None = None,
) -> Metrics:
    """Mean per-image PSNR/SSIM of (1,C,H,W) ``preds`` against ``targets``, batched by size.

    Example:
        >>> t = [torch.full((1, 3, 16, 16), 0.5)]
        >>> round(score_images([t[0] + 0.1], t, "promptir", 8)["psnr"], 3)
        20.0
    """
    if len(preds) != len(targets):
        raise ValueError(f"{len(preds)} outputs for {len(targets)} targets")
    p_vals = [0.0] * len(preds)
    s_vals = [0.0] * len(preds)
    for idx in _groups(targets, batch_size):
        pred = torch.cat([preds[i] for i in idx])
        target = torch.cat([targets[i] for i in idx])
        if pred.shape != target.shape:
            raise ValueError(f"output shape {tuple(pred.shape)} != target {tuple(target.shape)}")
        p, s = psnr_ssim(pred, target, protocol)
        for k, i in enumerate(idx):
            p_vals[i], s_vals[i] = float(p[k]), float(s[k])
    n = len(preds)
    result: Metrics = {
        "psnr": sum(p_vals) / n if n else float("nan"),
        "ssim": sum(s_vals) / n if n else float("nan"),
        "n": n,
    }
    if names is not None:
        result["images"] = {
            name: {"psnr": p, "ssim": s} for name, p, s in zip(names, p_vals, s_vals, strict=True)
        }
    return result


def evaluate_model(
    model: nn.Module,
    test_sets: Mapping[str, Any],
    protocol: str = "promptir",
    device: str | torch.device | None = None,
    batch_size: int = 8,
    per_image: bool = False,
    quiet: bool | None = None,
    label: str = "evaluate",
    first_outputs: dict[str, torch.Tensor] | None = None,
    tile: int | None = None,
    tile_overlap: int | None = None,
    precision: str | None = None,
) -> dict[str, Metrics]:
    """``{task: {"psnr", "ssim", "n"}}`` of ``model`` on each :class:`TestSet`, averaged per image.

    No gradients; images of one size are batched (``batch_size`` at a time); the model runs on
    ``device`` (default: where its parameters are). ``per_image`` adds ``"images"``:
    ``{name: {"psnr", "ssim"}}``. Progress (images restored, ``label``) shows after 2 s
    unless ``quiet`` (None: as :func:`forgetir.runtime.progress.quiet_scope` says).
    ``first_outputs``
    (a dict) receives each task's output for its first image (for an image grid, which then
    need not restore it again). ``tile``/``tile_overlap``/``precision``: tiled inference and
    autocast, as in :func:`restore` (None: as the enclosing scopes say). Metrics are fp32.

    Example:
        >>> from forgetir.data.testsets import build_test_sets
        >>> sets = build_test_sets("deadleaves", tasks=("dehaze",), n=2, size=32)
        >>> evaluate_model(torch.nn.Identity(), sets)["dehaze"]["n"]
        2
    """
    describe_protocol(protocol)  # validates the name before any work
    out: dict[str, Metrics] = {}
    total = sum(len(ts.degraded) for ts in test_sets.values())
    with Progress(total, 0, not is_quiet(quiet), label, delay=None, unit="images") as bar:
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            bar.update(done, task)

        for task, ts in test_sets.items():
            preds = restore(
                model, ts.degraded, device, batch_size, advance, tile, tile_overlap, precision
            )
            if first_outputs is not None and preds:
                first_outputs[task] = preds[0]
            out[task] = score_images(
                preds, ts.clean, protocol, batch_size, ts.names if per_image else None
            )
    return out


def evaluate_degraded_input(
    test_sets: Mapping[str, Any],
    protocol: str = "promptir",
    batch_size: int = 8,
    per_image: bool = False,
) -> dict[str, Metrics]:
    """The "input" row: PSNR/SSIM of the degraded images themselves against the clean ones.

    Example:
        >>> from forgetir.data.testsets import build_test_sets
        >>> sets = build_test_sets("deadleaves", tasks=("denoise_50",), n=2, size=32)
        >>> evaluate_degraded_input(sets)["denoise_50"]["psnr"] < 25
        True
    """
    describe_protocol(protocol)
    return {
        task: score_images(
            ts.degraded, ts.clean, protocol, batch_size, ts.names if per_image else None
        )
        for task, ts in test_sets.items()
    }


def describe_test_sets(test_sets: Mapping[str, Any]) -> str:
    """One line naming the test data (the distinct ``TestSet.source`` texts, joined)."""
    if len(test_sets) == 1:
        return next(iter(test_sets.values())).source
    # Synthetic sets differ only by the task named in their description: say it once.
    seen: list[str] = []
    for ts in test_sets.values():
        generic = ts.source.replace(ts.task, "each task")
        if generic not in seen:
            seen.append(generic)
    return "; ".join(seen)


def _column(task: str) -> str:
    if task.startswith("denoise_"):
        return f"denoise σ{task.removeprefix('denoise_')}"
    return task


def _cell(m: Mapping[str, Any] | None) -> str:
    if not m:
        return "–"
    p, s = m.get("psnr"), m.get("ssim")
    p_text = "inf" if p is not None and math.isinf(p) else f"{p:.2f}"
    return f"{p_text}/{s:.3f}"


def format_table(
    rows: Mapping[str, Mapping[str, Mapping[str, Any]]],
    protocol: str = "promptir",
    test_source: str = "",
) -> str:
    """A markdown table in the seed paper's layout: one row per model, one column per task
    (dehaze | derain | denoise σ15 | σ25 | σ50, then any other task), cells "PSNR/SSIM",
    under a caption naming the protocol and the test set.

    Example:
        >>> m = {"dehaze": {"psnr": 28.891, "ssim": 0.9761, "n": 500}}
        >>> print(format_table({"PromptIR": m}, "promptir", "SOTS outdoor").splitlines()[-1])
        | PromptIR | 28.89/0.976 |
    """
    tasks: list[str] = []
    for metrics in rows.values():
        tasks += [t for t in metrics if t not in tasks]
    order = [t for t in TASKS if t in tasks] + [t for t in tasks if t not in TASKS]
    caption = f"PSNR (dB) / SSIM per task. Protocol: {describe_protocol(protocol)}."
    if test_source:
        caption += f" Test set: {test_source}."
    lines = [
        caption,
        "",
        "| model | " + " | ".join(_column(t) for t in order) + " |",
        "|---|" + "---|" * len(order),
    ]
    for name, metrics in rows.items():
        lines.append(f"| {name} | " + " | ".join(_cell(metrics.get(t)) for t in order) + " |")
    return "\n".join(lines)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "inf"/"nan": standard JSON has no such numbers
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def write_results(
    path: str | Path,
    rows: Mapping[str, Mapping[str, Mapping[str, Any]]],
    protocol: str,
    source: str,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``rows`` with their protocol and test set as JSON, atomically; return the path.

    Example:
        >>> import json, tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     p = write_results(f"{d}/r.json", {"input": {}}, "promptir", "photos")
        ...     json.loads(p.read_text())["protocol"]
        'promptir'
    """

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "protocol": protocol,
        "protocol_description": describe_protocol(protocol),
        "test_set": source,
        "rows": _json_safe(rows),
        **_json_safe(dict(extra or {})),
    }
    return atomic_json(path, record)
