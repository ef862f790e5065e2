"""Degradation registry, task names and the shared input checks.

A *family* (``"noise"``, ``"rain"``, ``"haze"``, ``"inpaint"``) is a function
``f(clean, generator, **params) -> (degraded, params)`` registered with
``@register_degradation(name)``. A *task* is a family plus fixed parameters, named as in the
seed paper (``"denoise_25"`` is the noise family at sigma 25).

Example:
    >>> import torch
    >>> from forgetir.degradations import degrade, task_family
    >>> task_family("denoise_25")
    ('noise', {'sigma': 25})
    >>> noisy, params = degrade("denoise_25", torch.full((1, 3, 8, 8), 0.5), generator=0)
    >>> params["sigma"]
    [25.0]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from forgetir.errors import UnknownNameError
from forgetir.registry import Registry

Degradation = Callable[..., tuple[Tensor, dict[str, Any]]]

FAMILIES: Registry[Degradation] = Registry("degradation family")

# Seed paper task names, in the column order of its tables.
TASKS: tuple[str, ...] = ("dehaze", "derain", "denoise_15", "denoise_25", "denoise_50")

# Task -> (family, fixed parameters). Inpainting tasks name the masked share of the area in
# sixteenths: "inpaint_4" masks a centre box of 4/16 of the image area.
_TASK_TABLE: dict[str, tuple[str, dict[str, Any]]] = {
    "dehaze": ("haze", {}),
    "derain": ("rain", {}),
    "denoise_15": ("noise", {"sigma": 15}),
    "denoise_25": ("noise", {"sigma": 25}),
    "denoise_50": ("noise", {"sigma": 50}),
    "inpaint_4": ("inpaint", {"area_ratio": 4 / 16}),
    "inpaint_8": ("inpaint", {"area_ratio": 8 / 16}),
}


def register_degradation(name: str) -> Callable[[Degradation], Degradation]:
    """Register a degradation family under ``name`` (one module per family)."""

    def deco(fn: Degradation) -> Degradation:
        return FAMILIES.add(name, fn)

    return deco


def list_degradations() -> list[str]:
    """Registered degradation families, sorted."""
    return FAMILIES.names()


def get_degradation(family: str) -> Degradation:
    """The function of a degradation family: ``f(clean, generator, **params)``."""
    return FAMILIES.get(family)


def list_tasks() -> list[str]:
    """Task names: the seed paper's :data:`TASKS` first, then the inpainting tasks."""
    return list(TASKS) + [t for t in _TASK_TABLE if t not in TASKS]


def task_groups() -> dict[str, list[str]]:
    """Names that stand for several tasks, as ``--forget`` and ``data.exclude`` take them:
    ``"denoise"`` is the three noise levels, ``"inpaint"`` the two mask sizes.

    Example:
        >>> task_groups()["denoise"]
        ['denoise_15', 'denoise_25', 'denoise_50']
    """
    groups: dict[str, list[str]] = {}
    for t in list_tasks():
        groups.setdefault(t.split("_")[0], []).append(t)  # "denoise_25" -> "denoise"
    return {k: v for k, v in groups.items() if len(v) > 1 or v[0] != k}


def forget_types() -> tuple[str, ...]:
    """The seed paper's forget types: each of :data:`TASKS`, its noise levels as one group.

    Example:
        >>> forget_types()
        ('dehaze', 'derain', 'denoise')
    """
    groups = {t: name for name, tasks in task_groups().items() for t in tasks}
    return tuple(dict.fromkeys(groups.get(t, t) for t in TASKS))


def task_family(task: str) -> tuple[str, dict[str, Any]]:
    """``(family, fixed_params)`` of a task, e.g. ``"denoise_25" -> ("noise", {"sigma": 25})``."""
    if task not in _TASK_TABLE:
        raise UnknownNameError("task", task, list_tasks())
    family, params = _TASK_TABLE[task]
    return family, dict(params)


def degrade(
    task: str, clean: Tensor, generator: torch.Generator | int
) -> tuple[Tensor, dict[str, Any]]:
    """Apply task ``task`` to a clean batch (B,C,H,W) in [0,1].

    Returns the degraded batch (same shape, in [0,1]) and the drawn parameters (per-image
    lists, or tensors with the batch first). ``generator`` is a CPU ``torch.Generator`` or an
    int seed; one generator serves the whole batch, so an image's draw depends on its position
    in the batch. For per-image reproducibility use :func:`degrade_each`.
    """
    family, params = task_family(task)
    return get_degradation(family)(clean, generator, **params)


def degrade_each(
    task: str, clean: Tensor, seeds: list[int] | tuple[int, ...]
) -> tuple[Tensor, list[dict[str, Any]]]:
    """Degrade each image of a batch with its own seed, independent of the batch it is in.

    Example:
        >>> import torch
        >>> x = torch.rand(2, 3, 16, 16)
        >>> y, _ = degrade_each("derain", x, [7, 8])
        >>> y1, _ = degrade_each("derain", x[1:], [8])
        >>> bool((y[1:] == y1).all())
        True
    """
    clean = check_images(clean)
    if len(seeds) != clean.shape[0]:
        raise ValueError(f"got {len(seeds)} seeds for a batch of {clean.shape[0]} images")
    outs, params = [], []
    for i, seed in enumerate(seeds):
        y, p = degrade(task, clean[i : i + 1], int(seed))
        outs.append(y)
        params.append(p)
    return torch.cat(outs), params


def as_generator(generator: torch.Generator | int) -> torch.Generator:
    """A CPU generator from a seed or a CPU generator.

    All random draws happen on the CPU so that a seed gives the same degradation on every
    machine and every device; the results are then moved to the images' device.
    """
    if isinstance(generator, torch.Generator):
        if generator.device.type != "cpu":
            raise ValueError(
                f"generator must be a CPU torch.Generator (got one on {generator.device}); "
                "draws are made on the CPU so that results match across devices"
            )
        return generator
    if isinstance(generator, bool) or not isinstance(generator, int):
        raise TypeError(f"generator must be a torch.Generator or an int seed, got {generator!r}")
    return torch.Generator().manual_seed(generator)


def check_images(clean: Tensor) -> Tensor:
    """Validate a clean batch: a floating (B,C,H,W) tensor with values in [0,1]."""
    if not isinstance(clean, Tensor):
        raise TypeError(f"clean must be a torch.Tensor, got {type(clean).__name__}")
    if clean.ndim != 4:
        raise ValueError(f"clean must have shape (B,C,H,W), got {tuple(clean.shape)}")
    if not clean.is_floating_point():
        raise ValueError(f"clean must be a float tensor in [0,1], got dtype {clean.dtype}")
    if clean.numel() and (clean.min() < 0 or clean.max() > 1):
        raise ValueError(
            f"clean values must lie in [0,1], got [{clean.min().item():.4g}, "
            f"{clean.max().item():.4g}]"
        )
    return clean


def per_image(value: Any, batch: int, name: str) -> list[float] | None:
    """Expand a scalar or per-image sequence parameter to ``batch`` floats (None stays None)."""
    if value is None:
        return None
    if isinstance(value, Tensor):
        value = value.tolist()
    values = list(value) if isinstance(value, (list, tuple)) else [value] * batch
    if len(values) != batch:
        raise ValueError(f"{name}: got {len(values)} values for a batch of {batch} images")
    return [float(v) for v in values]
