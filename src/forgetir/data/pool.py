"""Clean-image sources: the common protocol, and the fixed pool of dead-leaves training images.

Every source of clean training images (the dead-leaves pool, an image folder, class folders,
PromptIR's denoising images) answers the same questions, so pipelines and splits never care
which one they hold: ``len(src)``, ``src.get(i)`` (a (3,H,W) float tensor in [0,1]),
``src.name(i)`` (a stable id: pool id or path relative to the root), ``src.sha256(i)``,
``src.content_class(i)``, ``src.entry(i)`` (its manifest record) and ``src.describe()``.

The dead-leaves pool is fixed and enumerable: image ``i`` has id ``dl-000123``, its own seed
``image_seed(seed, i)`` and, when classes are given, class ``classes[i % len(classes)]``
(round-robin, so classes are balanced to within one image). A pool in the ``"test"`` namespace
(ids ``dlt-000123``, seeds ``image_seed(seed, i, namespace="test")``) is a held-out set from
the same distribution that no training pool of any seed or size contains. Images are
generated on first use, quantised to 8 bits (so the SHA-256 of their bytes identifies exactly
what training saw) and kept in a process-wide uint8 cache (48 KiB per 128x128 image) shared by
every pool object, so rebuilding a pool (BEFORE, UT and unlearning runs in one process) does not
regenerate its images; DataLoader workers forked after ``materialize()`` inherit them.

Example:
    >>> pool = DeadLeavesPool(4, image_size=32, seed=0)
    >>> pool.ids
    ['dl-000000', 'dl-000001', 'dl-000002', 'dl-000003']
    >>> pool[1].shape
    torch.Size([3, 32, 32])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import torch

from forgetir.data.deadleaves import KNOWN_CLASSES, dead_leaves, image_seed
from forgetir.data.io import tensor_sha256
from forgetir.errors import InvalidInputError

__all__ = ["CleanSource", "DeadLeavesPool", "SubsetSource", "clear_cache", "pool_id"]


@runtime_checkable
class CleanSource(Protocol):
    """What every clean-image source provides (see the module docstring)."""

    def __len__(self) -> int: ...

    def get(self, i: int) -> torch.Tensor: ...

    def name(self, i: int) -> str: ...

    def sha256(self, i: int) -> str: ...

    def content_class(self, i: int) -> str | None: ...

    def entry(self, i: int) -> dict[str, Any]: ...

    def describe(self) -> dict[str, Any]: ...


_PREFIX = {"train": "dl-", "test": "dlt-"}


def pool_id(index: int, namespace: str = "train") -> str:
    """Id of dead-leaves image ``index``: ``"dl-000123"`` (train) or ``"dlt-000123"`` (test)."""
    if namespace not in _PREFIX:
        raise ValueError(f"unknown namespace {namespace!r}; valid choices: {', '.join(_PREFIX)}")
    return f"{_PREFIX[namespace]}{index:06d}"


# (seed, namespace, index, image_size, class) -> uint8 image; see the module docstring.
_SHARED_CACHE: dict[tuple[int, str, int, int, str | None], torch.Tensor] = {}


def clear_cache() -> None:
    """Forget every generated dead-leaves image of this process."""
    _SHARED_CACHE.clear()


def _check_index(i: int, n: int, what: str) -> int:
    if not isinstance(i, int) or isinstance(i, bool):
        i = int(i)
    if not 0 <= i < n:
        raise IndexError(f"{what} index {i} out of range (size {n})")
    return i


class DeadLeavesPool:
    """A fixed pool of ``size`` dead-leaves images of side ``image_size`` drawn from ``seed``.

    ``namespace="test"`` makes a held-out pool (ids ``dlt-...``) disjoint from every training
    pool.

    Example:
        >>> pool = DeadLeavesPool(3, 16, seed=5, content_classes=["disks", "squares"])
        >>> pool.classes
        ['disks', 'squares', 'disks']
        >>> len(pool.sha256(0))
        64
    """

    def __init__(
        self,
        size: int,
        image_size: int = 128,
        seed: int = 0,
        content_classes: Sequence[str] | None = None,
        namespace: str = "train",
    ) -> None:
        if int(size) < 1:
            raise InvalidInputError(f"dead-leaves pool size must be >= 1, got {size}")
        if int(image_size) < 8:
            raise InvalidInputError(f"dead-leaves image_size must be >= 8, got {image_size}")
        pool_id(0, namespace)  # validates the namespace
        classes = list(content_classes) if content_classes else None
        if classes is not None:
            unknown = [c for c in classes if c not in KNOWN_CLASSES]
            if unknown:
                raise InvalidInputError(
                    f"unknown dead-leaves content class(es) {', '.join(map(repr, unknown))}; "
                    f"valid choices: {', '.join(KNOWN_CLASSES)}"
                )
            if len(set(classes)) != len(classes):
                raise InvalidInputError(f"content classes repeated: {classes}")
        self.size = int(size)
        self.image_size = int(image_size)
        self.seed = int(seed)
        self.namespace = namespace
        self.content_classes = classes
        self._hashes: dict[int, str] = {}

    def __len__(self) -> int:
        return self.size

    @property
    def ids(self) -> list[str]:
        return [pool_id(i, self.namespace) for i in range(self.size)]

    @property
    def classes(self) -> list[str | None]:
        return [self.content_class(i) for i in range(self.size)]

    def index_of(self, image_id: str) -> int:
        """Position of ``image_id`` (``"dl-000123"``) in this pool; KeyError when absent."""
        prefix = _PREFIX[self.namespace]
        digits = image_id[len(prefix) :] if image_id.startswith(prefix) else ""
        i = int(digits) if digits.isdigit() else -1
        if not 0 <= i < self.size:
            raise KeyError(f"{image_id!r} is not in {self.label()}")
        return i

    def label(self) -> str:
        first, last = pool_id(0, self.namespace), pool_id(self.size - 1, self.namespace)
        return f"dead-leaves pool {first}..{last} (seed {self.seed})"

    def content_class(self, i: int) -> str | None:
        i = _check_index(i, self.size, "dead-leaves pool")
        if not self.content_classes:
            return None
        return self.content_classes[i % len(self.content_classes)]

    def name(self, i: int) -> str:
        return pool_id(_check_index(i, self.size, "dead-leaves pool"), self.namespace)

    def _uint8(self, i: int) -> torch.Tensor:
        i = _check_index(i, self.size, "dead-leaves pool")
        cls = self.content_class(i)
        key = (self.seed, self.namespace, i, self.image_size, cls)
        img = _SHARED_CACHE.get(key)
        if img is None:
            seed = image_seed(self.seed, i, namespace=self.namespace)
            x = dead_leaves(seed, size=self.image_size, content_class=cls)
            img = (x.clamp(0, 1) * 255).round().to(torch.uint8)
            _SHARED_CACHE[key] = img
        return img

    def get(self, i: int) -> torch.Tensor:
        return self._uint8(i).float() / 255.0

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.get(i)

    def sha256(self, i: int) -> str:
        i = _check_index(i, self.size, "dead-leaves pool")
        if i not in self._hashes:
            self._hashes[i] = tensor_sha256(self.get(i))
        return self._hashes[i]

    def entry(self, i: int) -> dict[str, Any]:
        return {"id": self.name(i), "class": self.content_class(i), "sha256": self.sha256(i)}

    def adopt_hashes(self, record: dict[str, Any]) -> int:
        """Take each image's SHA-256 from ``record`` (the ``clean`` part of a training-pool
        manifest, written when the images were rendered) if it describes this very pool, so
        that a split of a known parent need not render 1,024 images to hash them; returns how
        many hashes were taken (0 if it describes another pool).

        Example:
            >>> a, b = DeadLeavesPool(2, 16), DeadLeavesPool(2, 16)
            >>> record = {"describe": a.describe(), "entries": [a.entry(0), a.entry(1)]}
            >>> b.adopt_hashes(record), b.sha256(1) == a.sha256(1)
            (2, True)
        """
        if record.get("describe") != self.describe():
            return 0
        index = {name: i for i, name in enumerate(self.ids)}
        taken = {index[e["id"]]: str(e["sha256"]) for e in record.get("entries", [])}
        self._hashes.update(taken)
        return len(taken)

    def materialize(self) -> DeadLeavesPool:
        """Generate every image now (e.g. before DataLoader workers fork and share the cache)."""
        for i in range(self.size):
            self._uint8(i)
        return self

    def manifest_entries(self) -> list[dict[str, Any]]:
        """One manifest record per image: id, class, SHA-256 (generates every image)."""
        return [self.entry(i) for i in range(self.size)]

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "deadleaves",
            "size": self.size,
            "image_size": self.image_size,
            "seed": self.seed,
            "namespace": self.namespace,
            "content_classes": self.content_classes,
        }


class SubsetSource:
    """The images ``indices`` of another source, renumbered from 0 (for forget/retain parts).

    Example:
        >>> sub = SubsetSource(DeadLeavesPool(5, 16, seed=0), [4, 2])
        >>> [sub.name(i) for i in range(len(sub))]
        ['dl-000004', 'dl-000002']
    """

    def __init__(self, source: CleanSource, indices: Sequence[int]) -> None:
        self.source = source
        self.indices = [_check_index(int(i), len(source), "source") for i in indices]
        if not self.indices:
            raise ValueError("SubsetSource needs at least one image; the selection is empty")

    def __len__(self) -> int:
        return len(self.indices)

    def _map(self, i: int) -> int:
        return self.indices[_check_index(i, len(self.indices), "subset")]

    def get(self, i: int) -> torch.Tensor:
        return self.source.get(self._map(i))

    def name(self, i: int) -> str:
        return self.source.name(self._map(i))

    def sha256(self, i: int) -> str:
        return self.source.sha256(self._map(i))

    def content_class(self, i: int) -> str | None:
        return self.source.content_class(self._map(i))

    def entry(self, i: int) -> dict[str, Any]:
        return self.source.entry(self._map(i))

    def describe(self) -> dict[str, Any]:
        return {**self.source.describe(), "subset": len(self.indices)}
