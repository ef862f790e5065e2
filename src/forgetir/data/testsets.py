"""Evaluation test sets: per task, degraded/clean image pairs, deterministic and cached.

Sources:

- ``photos`` (default): the 7 natural photos shipped inside scikit-image and matplotlib,
  shrunk so their longest side is at most ``max_side``;
- ``deadleaves``: ``n`` held-out dead-leaves images of side ``size`` (ids ``dlt-000000``...,
  drawn in the test namespace, so never in any training pool);
- ``photos+deadleaves`` (the default of unlearning runs): both, the 7 photos and 48 held-out
  dead-leaves images of side 64. Seven photos cannot decide a 0.5 dB paired difference (the
  verdict's margin); the 48 independent draws can at the per-image spreads we measure (about
  1 dB between an unlearned model and UT). Every image is one unit of the paired test: none is
  a crop of another, so none is counted twice;
- ``promptir``: the real benchmarks in PromptIR's layout under ``root`` (BSD68 with seeded
  noise, Rain100L, SOTS outdoor), at full size as in the official protocol.

Every image is centre-cropped to a multiple of 16 (the ``promptir`` protocol). Synthetic
degradations are seeded per (seed, task, image name), so an image's degraded version does not
depend on the order or the other images of the set, nor on the machine.

Example:
    >>> sets = build_test_sets("deadleaves", tasks=("denoise_25",), n=2, size=32)
    >>> ts = sets["denoise_25"]
    >>> ts.names, ts.degraded[0].shape
    (['dlt-000000', 'dlt-000001'], torch.Size([1, 3, 32, 32]))
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from forgetir.data.io import tensor_sha256
from forgetir.data.pipeline import resolve_tasks
from forgetir.data.pool import DeadLeavesPool
from forgetir.degradations import TASKS, degrade
from forgetir.errors import InputFileError, InvalidInputError

__all__ = [
    "TEST_MULTIPLE",
    "TEST_SOURCES",
    "TestSet",
    "build_test_sets",
    "centre_crop",
    "clean_test_images",
    "manifest_test_entries",
    "degradation_seed",
]

TEST_SOURCES = ("photos", "deadleaves", "photos+deadleaves", "promptir")
MIXED = "photos+deadleaves"
MIXED_DEADLEAVES = (48, 64)  # (n, size) of the dead-leaves part of MIXED
TEST_MULTIPLE = 16
_PHOTO_ORIGIN = "scikit-image: astronaut, chelsea, coffee, rocket, motorcycle_left/right; "
_PHOTO_ORIGIN += "matplotlib: grace_hopper"


@dataclass(frozen=True)
class TestSet:
    """Degraded/clean pairs of one task. Tensors are (1,3,H,W) in [0,1]; do not modify them
    (sets are cached and shared)."""

    __test__ = False  # not a pytest test class

    task: str
    source: str
    names: list[str]
    degraded: list[torch.Tensor]
    clean: list[torch.Tensor]

    def __len__(self) -> int:
        return len(self.names)


def centre_crop(
    x: torch.Tensor, multiple: int = TEST_MULTIPLE, name: str | Path | None = None
) -> torch.Tensor:
    """Centre-crop (..., H, W) to multiples of ``multiple`` (the official ``crop_img``);
    ``name`` (the image's file) is named in the error for an image smaller than ``multiple``.

    Example:
        >>> centre_crop(torch.zeros(1, 3, 33, 50)).shape
        torch.Size([1, 3, 32, 48])
    """
    h, w = x.shape[-2:]
    ch, cw = h - h % multiple, w - w % multiple
    if ch == 0 or cw == 0:
        what = f"image {name}" if name is not None else "image"
        raise InputFileError(
            f"{what} is {h}x{w} (height x width), smaller than the crop multiple {multiple} "
            "the models need; remove it from the test set"
        )
    top, left = (h - ch) // 2, (w - cw) // 2
    return x[..., top : top + ch, left : left + cw]


def degradation_seed(seed: int, task: str, name: str) -> int:
    """Degradation seed of one test image: depends on (seed, task, name) only.

    Example:
        >>> degradation_seed(1234, "dehaze", "coffee") == degradation_seed(1234, "dehaze", "coffee")
        True
    """
    words = [int(seed) & 0xFFFFFFFF, zlib.crc32(task.encode()), zlib.crc32(name.encode())]
    return int(np.random.SeedSequence(words).generate_state(1, dtype=np.uint64)[0])


@functools.cache
def min_photo_side() -> int:
    """The smallest ``max_side`` that leaves every shipped photo at least
    :data:`TEST_MULTIPLE` pixels on its shorter side (the crop the models need).

    Example:
        >>> min_photo_side() >= TEST_MULTIPLE
        True
    """
    from forgetir.data.photos import SHIPPED_PHOTOS, _read

    least = TEST_MULTIPLE
    for name in SHIPPED_PHOTOS:
        h, w = _read(name).shape[:2]
        # as load_photo shrinks: the shorter side becomes round(short * m / long)
        while least < max(h, w) and round(min(h, w) * least / max(h, w)) < TEST_MULTIPLE:
            least += 1
    return least


def check_max_side(max_side: int | None, option: str = "max_side") -> None:
    """Refuse a photo ``max_side`` that would shrink a photo below the crop multiple, naming
    ``option`` and the valid minimum (0 or None: full size)."""
    if max_side and max_side < min_photo_side():
        raise InvalidInputError(
            f"{option}={max_side} is out of range; valid: 0 (full size) or >= "
            f"{min_photo_side()} (smaller shrinks a test photo's shorter side below the "
            f"{TEST_MULTIPLE} pixels the models need)"
        )


def _photos(max_side: int | None) -> tuple[list[str], list[torch.Tensor], str]:
    from forgetir.data.photos import shipped_photos

    check_max_side(max_side)
    photos = shipped_photos(max_side=max_side, multiple_of=TEST_MULTIPLE)
    side = f"longest side <= {max_side}" if max_side else "full size"
    desc = (
        f"{len(photos)} shipped photos ({_PHOTO_ORIGIN}), {side}, "
        f"centre-cropped to a multiple of {TEST_MULTIPLE}"
    )
    return list(photos), list(photos.values()), desc


def _deadleaves(n: int, size: int) -> tuple[list[str], list[torch.Tensor], str]:
    pool = DeadLeavesPool(n, size, seed=0, namespace="test")
    images = [centre_crop(pool.get(i).unsqueeze(0)) for i in range(n)]
    desc = (
        f"{n} held-out dead-leaves images ({pool.label()}, {size}x{size}), "
        f"centre-cropped to a multiple of {TEST_MULTIPLE}"
    )
    return pool.ids, images, desc


def clean_test_images(
    source: str = "photos",
    max_side: int | None = 256,
    n: int = 16,
    size: int = 128,
) -> tuple[list[str], list[torch.Tensor], str]:
    """Names, clean (1,3,H,W) images and a description of a synthetic test source.

    Example:
        >>> names, images, desc = clean_test_images("deadleaves", n=1, size=32)
        >>> names, images[0].shape[-1]
        (['dlt-000000'], 32)
    """
    if source == "photos":
        return _photos(max_side)
    if source == MIXED:
        p_names, p_images, p_desc = _photos(max_side)
        d_names, d_images, d_desc = _deadleaves(*MIXED_DEADLEAVES)
        return p_names + d_names, p_images + d_images, f"{p_desc}; and {d_desc}"
    if source == "deadleaves":
        if n < 1:
            raise InvalidInputError(f"dead-leaves test set size n must be >= 1, got {n}")
        return _deadleaves(n, size)
    if source == "promptir":
        raise InvalidInputError(
            "promptir test images are real pairs: use build_test_sets(root=...)"
        )
    raise InvalidInputError(
        f"unknown test set {source!r}; valid choices: {', '.join(TEST_SOURCES)}"
    )


def _synthetic(
    task: str, names: list[str], clean: list[torch.Tensor], desc: str, seed: int
) -> TestSet:
    degraded = []
    for name, x in zip(names, clean, strict=True):
        y, _ = degrade(task, x, degradation_seed(seed, task, name))
        degraded.append(y)
    return TestSet(task, f"{desc}; {task} synthesised, seed {seed}", names, degraded, clean)


def _promptir(task: str, root: Path, seed: int) -> TestSet:
    from forgetir.data.promptir_layout import PromptIRLayout

    layout = PromptIRLayout(root)
    if task in ("derain", "dehaze"):
        pairs = layout.test_derain() if task == "derain" else layout.test_dehaze()
        names, degraded, clean = [], [], []
        for i in range(len(pairs)):
            y, x = pairs.get_pair(i)
            names.append(pairs.name(i))
            degraded.append(centre_crop(y.unsqueeze(0), name=pairs.path(i)))
            clean.append(centre_crop(x.unsqueeze(0), name=pairs.target_path(i)))
        what = "Rain100L" if task == "derain" else "SOTS outdoor"
        desc = (
            f"{len(names)} {what} pairs ({pairs.label}), full size, centre-cropped to a "
            f"multiple of {TEST_MULTIPLE}"
        )
        return TestSet(task, desc, names, degraded, clean)
    bsd = layout.test_denoise()
    names = [bsd.name(i) for i in range(len(bsd))]
    clean = [centre_crop(bsd.get(i).unsqueeze(0), name=bsd.path(i)) for i in range(len(bsd))]
    desc = f"{len(names)} BSD68 images ({bsd.label}), full size, centre-cropped to a multiple of 16"
    return _synthetic(task, names, clean, desc, seed)


@functools.lru_cache(maxsize=16)
def _cached(
    source: str,
    tasks: tuple[str, ...],
    max_side: int | None,
    root: str | None,
    seed: int,
    n: int,
    size: int,
) -> dict[str, TestSet]:
    if source == "promptir":
        if root is None:
            raise InvalidInputError("test set 'promptir' needs root (the folder holding test/)")
        return {t: _promptir(t, Path(root), seed) for t in tasks}
    names, clean, desc = clean_test_images(source, max_side, n, size)
    return {t: _synthetic(t, names, clean, desc, seed) for t in tasks}


def build_test_sets(
    source: str = "photos",
    tasks: Sequence[str] = TASKS,
    max_side: int | None = 256,
    root: str | Path | None = None,
    seed: int = 1234,
    n: int = 16,
    size: int = 128,
) -> dict[str, TestSet]:
    """Test sets ``{task: TestSet}`` for ``tasks`` from ``source`` (cached in memory).

    ``max_side`` applies to photos, ``n`` and ``size`` to dead leaves, ``root`` to promptir.

    Example:
        >>> sets = build_test_sets("photos", tasks=("dehaze",), max_side=64)
        >>> len(sets["dehaze"]), sets["dehaze"].source.startswith("7 shipped photos")
        (7, True)
    """
    if source not in TEST_SOURCES:
        raise InvalidInputError(
            f"unknown test set {source!r}; valid choices: {', '.join(TEST_SOURCES)}"
        )
    tasks = tuple(resolve_tasks(list(tasks), "test tasks"))
    key_root = str(Path(root).expanduser().resolve()) if root is not None else None
    sets = _cached(source, tasks, max_side, key_root, int(seed), int(n), int(size))
    return dict(sets)


def manifest_test_entries(
    source: str = "photos",
    max_side: int | None = 256,
    root: str | Path | None = None,
    n: int = 16,
    size: int = 128,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The clean test images as manifest records (id + SHA-256) and a description.

    Example:
        >>> desc, entries = manifest_test_entries("deadleaves", n=1, size=32)
        >>> desc["kind"], entries[0]["id"]
        ('deadleaves-test', 'dlt-000000')
    """
    if source == "promptir":
        from forgetir.data.promptir_layout import PromptIRLayout

        if root is None:
            raise InvalidInputError("test set 'promptir' needs root (the folder holding test/)")
        layout = PromptIRLayout(root)
        entries: list[dict[str, Any]] = []
        for task, src in (
            ("denoise", layout.test_denoise()),
            ("derain", layout.test_derain()),
            ("dehaze", layout.test_dehaze()),
        ):
            entries += [{**src.entry(i), "task": task} for i in range(len(src))]
        return {"kind": "promptir-test", "root": str(root)}, entries
    names, clean, text = clean_test_images(source, max_side, n, size)
    desc: dict[str, Any] = {"kind": f"{source}-test", "description": text}
    if source in ("photos", MIXED):
        desc["max_side"] = max_side
    if source in ("deadleaves", MIXED):
        desc["n"], desc["size"] = (n, size) if source == "deadleaves" else MIXED_DEADLEAVES
    return desc, [
        {"id": k, "sha256": tensor_sha256(x[0])} for k, x in zip(names, clean, strict=True)
    ]
