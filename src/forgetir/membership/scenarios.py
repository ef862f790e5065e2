"""Deletion-request scenario: candidate images of a split and the per-example attack on them.

A deletion request names training images (``forget`` part of an instance split); the
``retain`` part holds the kept training images and the ``test`` part held-out images of the
same kind that no model trained on (dead-leaves ``test`` namespace). :func:`candidate_pairs`
degrades each one with a fixed per-image seed, so every model is judged on the same inputs;
:func:`instance_attack` then reports, for each model side by side (BEFORE, UT, unlearned):

- ``psnr``: mean per-image PSNR of the forgotten, kept and non-member images;
- ``advantage_db``: forgotten (and kept) minus non-member mean PSNR, the *member advantage*;
- ``uncalibrated``: the plain loss attack (threshold on per-image PSNR), for comparison;
- ``calibrated``: the difficulty-calibrated attack
  (:func:`forgetir.membership.attack.calibrated_scores`, references = models that never saw
  any candidate), forgotten vs non-members and kept vs
  non-members: AUC, TPR at 1% and 5% FPR;
- ``lira_offline``: the same with offline LiRA scores, when two or more OUT shadows are given.

After good forgetting the forgotten images' row matches UT's (AUC near 0.5, advantage near
0), while the kept images' row stays like BEFORE's.

Example:
    >>> import numpy as np
    >>> psnr = {"forgotten": np.array([30.0, 29.0]), "kept": np.array([31.0, 30.0]),
    ...         "nonmembers": np.array([25.0, 24.0, 26.0])}
    >>> ref = {k: v[None] - 4.0 * (k != "nonmembers") for k, v in psnr.items()}
    >>> r = attack_from_psnr(psnr, ref)
    >>> r["advantage_db"]["forgotten"], r["calibrated"]["forgotten"]["auc"]
    (4.5, 1.0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from torch import nn

from forgetir.data.pool import DeadLeavesPool
from forgetir.data.testsets import degradation_seed
from forgetir.degradations import degrade
from forgetir.membership.attack import (
    Pair,
    attack_metrics,
    calibrated_scores,
    lira_offline_scores,
    per_image_psnr,
)

__all__ = [
    "GROUPS",
    "attack_from_psnr",
    "candidate_pairs",
    "class_pairs",
    "class_skill",
    "instance_attack",
    "split_candidates",
]

GROUPS = ("forgotten", "kept", "nonmembers")
CANDIDATE_SEED = 1234  # degradation seed of the candidate images (as the test sets')
_PARTS = {"forgotten": "forget", "kept": "retain", "nonmembers": "test"}


def _pool(desc: Mapping[str, Any], namespace: str) -> DeadLeavesPool:
    return DeadLeavesPool(
        int(desc["size"]),
        int(desc["image_size"]),
        int(desc["seed"]),
        desc.get("content_classes"),
        namespace=namespace,
    )


def candidate_pairs(
    manifest: Mapping[str, Any], task: str, seed: int = CANDIDATE_SEED, limit: int | None = None
) -> dict[str, list[Pair]]:
    """(degraded, clean) pairs of the forgotten, kept and non-member images of an instance split
    on dead leaves, each whole image degraded by ``task`` with seed
    ``degradation_seed(seed, task, image_id)``; the manifest's SHA-256s are checked.
    ``limit``: at most that many images per group, the first ones in the manifest's order.

    Example:
        >>> from forgetir.config import DataConfig
        >>> from forgetir.data.splits import make_split
        >>> m = make_split(DataConfig(pool_size=3, image_size=16, tasks=["denoise_25"]),
        ...                "instances", ["dl-000001"], held_out=2)
        >>> {k: len(v) for k, v in candidate_pairs(m, "denoise_25").items()}
        {'forgotten': 1, 'kept': 2, 'nonmembers': 2}
    """
    if manifest.get("kind") != "instances":
        raise ValueError(f"candidate_pairs needs an instance split, got {manifest.get('kind')!r}")
    desc = manifest["source"]["clean"]
    if not desc or desc.get("kind") != "deadleaves":
        raise ValueError("candidate_pairs supports dead-leaves splits only")
    pools = {"train": _pool(desc, "train"), "test": _pool(manifest["test"]["source"], "test")}
    out: dict[str, list[Pair]] = {}
    for group, part in _PARTS.items():
        pool = pools["test" if part == "test" else "train"]
        pairs = []
        for e in manifest[part]["entries"][:limit]:
            i = pool.index_of(e["id"])
            if pool.sha256(i) != e["sha256"]:
                raise ValueError(f"{e['id']}: image differs from the manifest's SHA-256")
            clean = pool.get(i).unsqueeze(0)
            degraded, _ = degrade(task, clean, degradation_seed(seed, task, e["id"]))
            pairs.append((degraded, clean))
        out[group] = pairs
    return out


def _budget(
    counts: dict[str, int], tasks: list[str], px: int, max_pixels: int
) -> tuple[dict[str, int], list[str]]:
    """Fewer tasks, then fewer kept images and non-members (at least 8 each), until the
    candidates' pixels (images x tasks x side^2) fit ``max_pixels``."""
    per_task = sum(counts.values()) * px
    tasks = tasks[: max(1, max_pixels // per_task)]
    if per_task > max_pixels:
        room = max(8, (max_pixels // px - counts["forgotten"]) // 2)
        counts = {g: c if g == "forgotten" else min(c, room) for g, c in counts.items()}
    return counts, tasks


def split_candidates(
    manifest: Mapping[str, Any], limit: int = 64, max_pixels: int = 2**20
) -> tuple[dict[str, list[Pair]] | None, str | None]:
    """The candidates of an instance split's forget tasks, pooled over the tasks, and a
    description of them; ``(None, None)`` for a split the attack does not apply to (not an
    instance split, no held-out ``test`` part, or not dead leaves).

    At most ``limit`` images per group (the manifest's first); when all of them on every task
    exceed ``max_pixels`` (64 images of 128x128: ~15 s per model for promptir-tiny on one
    CPU thread), only the first tasks
    that fit are used, and if one task is still too much, fewer kept images and non-members.

    Example:
        >>> from forgetir.config import DataConfig
        >>> from forgetir.data.splits import make_split
        >>> m = make_split(DataConfig(pool_size=3, image_size=16, tasks=["denoise_25"]),
        ...                "instances", ["dl-000001"], held_out=2)
        >>> c, what = split_candidates(m)
        >>> len(c["nonmembers"]), what[:41]
        (2, 'forgotten (deleted) images: 1, kept train')
    """
    desc = (manifest.get("source") or {}).get("clean") or {}
    test = (manifest.get("test") or {}).get("source") or {}
    if manifest.get("kind") != "instances" or not test:
        return None, None
    if desc.get("kind") != "deadleaves" or test.get("kind") != "deadleaves":
        return None, None
    all_tasks = list(manifest["forget"].get("tasks") or manifest["data"]["tasks"])
    counts = {g: min(limit, len(manifest[part]["entries"])) for g, part in _PARTS.items()}
    px = max(int(desc["image_size"]), int(test["image_size"])) ** 2
    counts, tasks = _budget(counts, all_tasks, px, max_pixels)
    out: dict[str, list[Pair]] = {g: [] for g in GROUPS}
    for task in tasks:
        for g, pairs in candidate_pairs(manifest, task, limit=max(counts.values())).items():
            out[g] += pairs[: counts[g]]
    size = desc.get("image_size")
    left = [t for t in all_tasks if t not in tasks]
    what = (
        f"forgotten (deleted) images: {counts['forgotten']}, kept training images: "
        f"{counts['kept']}, held-out non-members: {counts['nonmembers']} (dead leaves "
        f"{size}x{size}, the split's first ones), each degraded by {', '.join(tasks)} "
        f"(seed {CANDIDATE_SEED})"
        + (", pooled over tasks" if len(tasks) > 1 else "")
        + (f"; not {', '.join(left)} (pixel budget)" if left else "")
    )
    return out, what


def _metrics_by_group(scores: Mapping[str, np.ndarray]) -> dict[str, Any]:
    return {g: attack_metrics(scores[g], scores["nonmembers"]) for g in ("forgotten", "kept")}


def _split(values: np.ndarray, sizes: Mapping[str, int]) -> dict[str, np.ndarray]:
    out, start = {}, 0
    for g in GROUPS:
        out[g] = values[start : start + sizes[g]]
        start += sizes[g]
    return out


def attack_from_psnr(
    target: Mapping[str, Any], references: Mapping[str, Any], shadows_out: Any = None
) -> dict[str, Any]:
    """The attack report of one model from per-image PSNRs (the pure core).

    ``target[group]`` (N_group,): the model's per-image PSNR; ``references[group]`` (K, N_group):
    K reference models that never saw any candidate (their mean calibrates each image);
    ``shadows_out`` (same shape, K >= 2) adds offline LiRA, or None (then the references are
    used when K >= 2). Scores are computed over all candidates at once, so LiRA's pooled
    variance is one for every group.
    """
    t = {g: np.asarray(target[g], dtype=np.float64) for g in GROUPS}
    sizes = {g: len(t[g]) for g in GROUPS}
    cat_t = np.concatenate([t[g] for g in GROUPS])

    def stacked(by_group: Mapping[str, Any]) -> np.ndarray:
        return np.concatenate([np.atleast_2d(np.asarray(by_group[g], float)) for g in GROUPS], 1)

    out: dict[str, Any] = {
        "n": sizes,
        "psnr": {g: float(t[g].mean()) for g in GROUPS},
        "psnr_sd": {g: float(t[g].std(ddof=1)) if sizes[g] > 1 else 0.0 for g in GROUPS},
        "advantage_db": {
            g: float(t[g].mean() - t["nonmembers"].mean()) for g in ("forgotten", "kept")
        },
        "psnr_images": {g: t[g].tolist() for g in GROUPS},
    }
    # the plain loss attack (per-image PSNR, no calibration), for comparison
    out["uncalibrated"] = _metrics_by_group(t)
    calibrated = _split(calibrated_scores(cat_t, stacked(references)), sizes)
    out["calibrated"] = _metrics_by_group(calibrated)
    shadows = stacked(references if shadows_out is None else shadows_out)
    if shadows.shape[0] >= 2:
        lira = _split(lira_offline_scores(cat_t, shadows), sizes)
        out["lira_offline"] = {**_metrics_by_group(lira), "shadows_out": int(shadows.shape[0])}
    return out


def instance_attack(
    models: Mapping[str, nn.Module],
    candidates: Mapping[str, Sequence[Pair]],
    references: Sequence[nn.Module],
    shadows_out: Sequence[nn.Module] = (),
) -> dict[str, Any]:
    """Side-by-side per-example attack on each of ``models`` (label -> model).

    ``candidates``: :func:`candidate_pairs`' groups. ``references``: models that never saw
    any candidate (e.g. the parent BEFORE, or shadows trained on other images with the same
    recipe); ``shadows_out``: OUT shadows for offline LiRA (default: the references).

    Example:
        >>> import torch
        >>> x = [(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)) for _ in range(2)]
        >>> c = {"forgotten": x, "kept": x, "nonmembers": x}
        >>> r = instance_attack({"BEFORE": nn.Identity()}, c, [nn.Identity()])
        >>> r["models"]["BEFORE"]["calibrated"]["forgotten"]["auc"]
        0.5
    """
    missing = [g for g in GROUPS if not candidates.get(g)]
    if missing:
        raise ValueError(f"instance_attack: no candidates in {', '.join(missing)}")
    if not references:
        raise ValueError("instance_attack needs at least one reference model")

    def psnr_of(model: nn.Module) -> dict[str, np.ndarray]:
        return {g: per_image_psnr(model, list(candidates[g])) for g in GROUPS}

    ref_psnr = [psnr_of(m) for m in references]
    ref = {g: np.stack([r[g] for r in ref_psnr]) for g in GROUPS}
    shadow = None
    if shadows_out:
        sh = [psnr_of(m) for m in shadows_out]
        shadow = {g: np.stack([s[g] for s in sh]) for g in GROUPS}
    return {
        "statistic": "per-image PSNR (dB) of the clipped output, whole candidate images",
        "calibration": f"mean PSNR of {len(references)} reference model(s) that saw no candidate",
        "lira": "offline (OUT shadows only, fixed variance)",
        "models": {label: attack_from_psnr(psnr_of(m), ref, shadow) for label, m in models.items()},
    }


# ------------------------------------------------------------------------------ content class


def class_pairs(
    content_class: str, task: str, n: int = 32, size: int = 64, seed: int = 0
) -> list[Pair]:
    """``n`` held-out dead-leaves images of one class (test namespace, pool seed ``seed``),
    degraded by ``task`` with ``degradation_seed(CANDIDATE_SEED, task, id)``.

    Example:
        >>> len(class_pairs("motif", "denoise_25", n=2, size=16))
        2
    """
    pool = DeadLeavesPool(n, size, seed, [content_class], namespace="test")
    out = []
    for i in range(n):
        clean = pool.get(i).unsqueeze(0)
        degraded, _ = degrade(task, clean, degradation_seed(CANDIDATE_SEED, task, pool.name(i)))
        out.append((degraded, clean))
    return out


def class_skill(
    models: Mapping[str, nn.Module],
    classes: Sequence[str],
    tasks: Sequence[str],
    n: int = 32,
    size: int = 64,
    seed: int = 0,
) -> dict[str, Any]:
    """Per model, class and task: mean and sd of per-image PSNR on held-out images, and the
    paired per-image difference of each model to the first one (mean, sd, n).

    Example:
        >>> r = class_skill({"a": nn.Identity(), "b": nn.Identity()}, ["motif"], ["denoise_25"],
        ...                 n=2, size=16)
        >>> r["b"]["motif"]["denoise_25"]["minus_first_db"]["mean"]
        0.0
    """
    labels = list(models)
    out: dict[str, Any] = {label: {} for label in labels}
    for cls in classes:
        for task in tasks:
            pairs = class_pairs(cls, task, n, size, seed)
            psnr = {label: per_image_psnr(models[label], pairs) for label in labels}
            for label in labels:
                d = psnr[label] - psnr[labels[0]]
                out[label].setdefault(cls, {})[task] = {
                    "psnr": float(psnr[label].mean()),
                    "psnr_sd": float(psnr[label].std(ddof=1)) if n > 1 else 0.0,
                    "minus_first_db": {
                        "mean": float(d.mean()),
                        "sd": float(d.std(ddof=1)) if n > 1 else 0.0,
                        "n": int(n),
                    },
                }
    return out
