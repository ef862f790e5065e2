"""Training pipeline: degraded/clean patch pairs whose item ``i`` is a pure function of (seed, i).

``TaskPatchDataset`` item ``i``:

1. task ``tasks[i % len(tasks)]`` (balanced across tasks, whatever the number of images per
   task; the official recipe instead repeats rain pairs 120x and denoising images 3x per sigma);
2. a generator seeded from (seed, i) draws the image index, the crop and the flip/rotation;
3. the image is centre-cropped to a multiple of 16 (the official ``crop_img``), then a random
   ``patch_size`` crop is taken;
4. one of the official 7 flip/rotation ops is applied (PromptIR's ``random_augmentation`` draws
   ``randint(1, 7)``: the identity, op 0, is never used), unless ``augment=False``;
5. synthetic tasks degrade the augmented clean *patch* with the same generator; real paired
   tasks crop and augment the stored degraded image together with its clean one.

Degrading the patch rather than the whole image is exact for noise and inpainting, and for the
synthetic rain/haze (which stand in for real data) it keeps streaks near-vertical and the depth
map patch-sized. Because an item depends on nothing but (seed, i), resuming at step ``s`` or
changing the number of DataLoader workers gives exactly the same batches: ``StepSampler`` hands
step ``s`` the indices ``[s*B*W, (s+1)*B*W)`` split across ``W`` ranks.

Example:
    >>> from forgetir.data.pool import DeadLeavesPool
    >>> ds = TaskPatchDataset(DeadLeavesPool(4, 32, seed=0), ["denoise_25"], patch_size=16, seed=0)
    >>> item = ds[3]
    >>> item["degraded"].shape, item["task"], item["image"].startswith("dl-")
    (torch.Size([3, 16, 16]), 'denoise_25', True)
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from forgetir.config import ConfigError, DataConfig
from forgetir.data.folders import (
    PairedImages,
    check_min_size,
    class_folders,
    image_folder,
    paired_folders,
)
from forgetir.data.pool import CleanSource, DeadLeavesPool
from forgetir.data.promptir_layout import PromptIRLayout
from forgetir.degradations import degrade, list_tasks, task_groups
from forgetir.errors import MissingInputError
from forgetir.runtime.threads import single_thread

__all__ = [
    "AUGMENT_OPS",
    "SOURCES",
    "StepSampler",
    "TaskPatchDataset",
    "augment",
    "build_sources",
    "item_seed",
    "make_train_loader",
    "resolve_tasks",
    "task_id",
    "train_tasks",
    "worker_init_fn",
]

SOURCES = ("deadleaves", "classes", "paired", "promptir")
# The official PromptIR de_dict ids for its five tasks; other tasks follow in list_tasks() order.
_OFFICIAL_IDS = {"denoise_15": 0, "denoise_25": 1, "denoise_50": 2, "derain": 3, "dehaze": 4}
# The seven official flip/rotation ops: (quarter turns counter-clockwise, then vertical flip).
AUGMENT_OPS: dict[int, tuple[int, bool]] = {
    1: (0, True),
    2: (1, False),
    3: (1, True),
    4: (2, False),
    5: (2, True),
    6: (3, False),
    7: (3, True),
}


def task_id(task: str) -> int:
    """Stable integer id of a task (official ids for the seed paper's five tasks).

    Example:
        >>> task_id("denoise_15"), task_id("dehaze")
        (0, 4)
    """
    if task in _OFFICIAL_IDS:
        return _OFFICIAL_IDS[task]
    others = [t for t in list_tasks() if t not in _OFFICIAL_IDS]
    if task not in others:
        raise ConfigError(f"unknown task {task!r}; valid choices: {', '.join(list_tasks())}")
    return len(_OFFICIAL_IDS) + others.index(task)


def resolve_tasks(names: Sequence[str], option: str = "tasks") -> list[str]:
    """Expand families ("denoise" -> its three sigmas) and validate, keeping the given order.

    Example:
        >>> resolve_tasks(["dehaze", "denoise"])
        ['dehaze', 'denoise_15', 'denoise_25', 'denoise_50']
    """
    if isinstance(names, str):
        names = [names]
    families = task_groups()
    out: list[str] = []
    for n in names:
        expanded = families.get(n, [n])
        for t in expanded:
            if t not in list_tasks():
                raise ConfigError(
                    f"unknown task {n!r} in {option}; valid choices: "
                    f"{', '.join(list_tasks())} (or a family: {', '.join(families)})"
                )
            if t not in out:
                out.append(t)
    return out


def item_seed(seed: int, index: int) -> int:
    """64-bit seed of item ``index``: well mixed, so neighbouring items are independent."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, int(index)])
    return int(state.generate_state(1, dtype=np.uint64)[0])


def augment(x: torch.Tensor, op: int) -> torch.Tensor:
    """Official flip/rotation op 1..7 on (..., H, W): ``rot90`` k times, then a vertical flip.

    Same as PromptIR's ``data_augmentation(image_hwc, op)`` (``np.rot90`` then ``np.flipud``).

    Example:
        >>> import torch
        >>> augment(torch.arange(4.0).view(1, 2, 2), 2).flatten().tolist()
        [1.0, 3.0, 0.0, 2.0]
    """
    if op not in AUGMENT_OPS:
        raise ValueError(f"unknown augmentation op {op}; valid choices: 1..7")
    k, flip = AUGMENT_OPS[op]
    if k:
        x = torch.rot90(x, k, dims=(-2, -1))
    if flip:
        x = torch.flip(x, dims=(-2,))
    return x.contiguous()


def _randint(high: int, g: torch.Generator) -> int:
    return int(torch.randint(high, (1,), generator=g).item())


def _crop_to_multiple(x: torch.Tensor, base: int, min_side: int) -> torch.Tensor:
    """Centre crop to a multiple of ``base`` as the official ``crop_img``, unless that would
    leave less than ``min_side`` pixels (then the image is used as it is)."""
    h, w = x.shape[-2:]
    ch, cw = h - h % base, w - w % base
    if ch < min_side or cw < min_side or (ch == h and cw == w):
        return x
    top, left = (h - ch) // 2, (w - cw) // 2
    return x[..., top : top + ch, left : left + cw]


def _source_path(src: Any, j: int) -> str:
    path = getattr(src, "path", None)
    return str(path(j)) if callable(path) else src.name(j)


class TaskPatchDataset(Dataset):
    """Patches for all-in-one training; item ``i`` is a pure function of (``seed``, ``i``).

    ``source`` gives clean images for synthetic tasks; ``paired`` maps tasks to real
    (degraded, clean) pair sources (PromptIR's rain and haze). Every task needs one of them.
    Items are dicts: ``degraded`` and ``clean`` (3,P,P), ``task``, ``task_id``, ``index``,
    ``image`` (the source id of the image). ``len()`` is a nominal epoch
    (``len(tasks) x`` the largest source); any index >= 0 is valid.

    Example:
        >>> from forgetir.data.pool import DeadLeavesPool
        >>> ds = TaskPatchDataset(DeadLeavesPool(2, 32, 0), ["derain", "dehaze"], 16, seed=1)
        >>> bool((ds[5]["degraded"] == ds[5]["degraded"]).all()), ds[5]["task"]
        (True, 'dehaze')
    """

    def __init__(
        self,
        source: CleanSource | None,
        tasks: Sequence[str],
        patch_size: int,
        seed: int,
        paired: Mapping[str, PairedImages] | None = None,
        crop_multiple: int = 16,
        augment: bool = True,
    ) -> None:
        self.tasks = resolve_tasks(list(tasks))
        if not self.tasks:
            raise ValueError("TaskPatchDataset needs at least one task")
        if int(patch_size) < 1:
            raise ValueError(f"patch_size must be >= 1, got {patch_size}")
        self.paired = dict(paired or {})
        unknown = [t for t in self.paired if t not in self.tasks]
        if unknown:
            raise ValueError(f"paired sources given for tasks not trained: {unknown}")
        lacking = [t for t in self.tasks if t not in self.paired and source is None]
        if lacking:
            raise ValueError(
                f"no clean images for the synthetic task(s) {', '.join(lacking)}: give a source"
            )
        for t, p in self.paired.items():
            if len(p) == 0:
                raise ValueError(f"paired source for {t!r} is empty")
        if source is not None and len(source) == 0:
            raise ValueError("the clean source is empty")
        self.source = source
        self.patch_size = int(patch_size)
        self.seed = int(seed)
        self.crop_multiple = int(crop_multiple)
        self.augment = bool(augment)

    def __len__(self) -> int:
        sizes = [len(p) for p in self.paired.values()]
        if self.source is not None:
            sizes.append(len(self.source))
        return len(self.tasks) * max(sizes)

    def task_of(self, index: int) -> str:
        return self.tasks[index % len(self.tasks)]

    def _patch(
        self, images: list[torch.Tensor], where: str, g: torch.Generator
    ) -> list[torch.Tensor]:
        p = self.patch_size
        check_min_size(images[0], p, where)
        images = [_crop_to_multiple(x, self.crop_multiple, p) for x in images]
        h, w = images[0].shape[-2:]
        top, left = _randint(h - p + 1, g), _randint(w - p + 1, g)
        op = 1 + _randint(7, g)  # drawn either way, so augment=False keeps every other draw
        if not self.augment:
            return [x[:, top : top + p, left : left + p] for x in images]
        return [augment(x[:, top : top + p, left : left + p], op) for x in images]

    @single_thread()  # per-item work is on tiny tensors: threads only add overhead
    def __getitem__(self, index: int) -> dict[str, Any]:
        index = int(index)
        if index < 0:
            raise IndexError(f"TaskPatchDataset index must be >= 0, got {index}")
        task = self.task_of(index)
        g = torch.Generator().manual_seed(item_seed(self.seed, index))
        if task in self.paired:
            src = self.paired[task]
            j = _randint(len(src), g)
            degraded, clean = src.get_pair(j)
            degraded, clean = self._patch([degraded, clean], _source_path(src, j), g)
        else:
            src = self.source
            j = _randint(len(src), g)
            (clean,) = self._patch([src.get(j)], _source_path(src, j), g)
            degraded = degrade(task, clean.unsqueeze(0), g)[0][0]
        return {
            "degraded": degraded,
            "clean": clean,
            "task": task,
            "task_id": task_id(task),
            "index": index,
            "image": src.name(j),
        }


class StepSampler(Sampler[list[int]]):
    """Batch sampler: step ``s`` of rank ``r`` gets indices ``(s*W + r)*B ... + B - 1``.

    Starting at ``start_step`` continues exactly where a run stopped; the union over the
    ``world_size`` ranks of one step is the single-process batch of size ``W*B``. Infinite
    unless ``total_steps`` is given.

    Example:
        >>> list(StepSampler(2, start_step=3, total_steps=5))
        [[6, 7], [8, 9]]
        >>> next(iter(StepSampler(2, start_step=3, world_size=2, rank=1)))
        [14, 15]
    """

    def __init__(
        self,
        batch_size: int,
        start_step: int = 0,
        world_size: int = 1,
        rank: int = 0,
        total_steps: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..world_size-1 (world_size {world_size})")
        if start_step < 0:
            raise ValueError(f"start_step must be >= 0, got {start_step}")
        self.batch_size, self.start_step = int(batch_size), int(start_step)
        self.world_size, self.rank = int(world_size), int(rank)
        self.total_steps = None if total_steps is None else int(total_steps)

    def indices(self, step: int) -> list[int]:
        base = (step * self.world_size + self.rank) * self.batch_size
        return list(range(base, base + self.batch_size))

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start_step
        while self.total_steps is None or step < self.total_steps:
            yield self.indices(step)
            step += 1

    def __len__(self) -> int:
        if self.total_steps is None:
            raise TypeError("an endless StepSampler has no length; give total_steps")
        return max(0, self.total_steps - self.start_step)


def worker_init_fn(worker_id: int) -> None:
    """DataLoader worker set-up: one intra-op thread, and Python/NumPy RNGs seeded from the
    worker's torch seed (items never use them, but third-party code might)."""
    torch.set_num_threads(1)
    s = torch.initial_seed() % 2**32
    random.seed(s)
    np.random.seed(s)


def make_train_loader(
    dataset: Dataset,
    batch_size: int,
    start_step: int = 0,
    workers: int = 0,
    rank: int = 0,
    world_size: int = 1,
    total_steps: int | None = None,
    seed: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader yielding one batch per step from ``start_step`` (endless by default).

    Example:
        >>> from forgetir.data.pool import DeadLeavesPool
        >>> ds = TaskPatchDataset(DeadLeavesPool(2, 32, 0), ["denoise_15"], 16, seed=0)
        >>> batch = next(iter(make_train_loader(ds, batch_size=4, start_step=10)))
        >>> batch["degraded"].shape, batch["index"].tolist()
        (torch.Size([4, 3, 16, 16]), [40, 41, 42, 43])
    """
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    sampler = StepSampler(batch_size, start_step, world_size, rank, total_steps)
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=workers,
        worker_init_fn=worker_init_fn if workers > 0 else None,
        generator=torch.Generator().manual_seed(int(seed)),
        persistent_workers=workers > 0,
        pin_memory=pin_memory,
    )


def _require_root(cfg: DataConfig) -> Path:
    if not cfg.root:
        raise ConfigError(f"data.source={cfg.source!r} needs data.root (the dataset folder)")
    root = Path(cfg.root).expanduser()
    if not root.is_dir():
        raise MissingInputError(f"data.root not found or not a folder: {root}")
    return root


def _paired_layout(
    root: Path, tasks: Sequence[str]
) -> tuple[CleanSource | None, dict[str, PairedImages]]:
    """``root/<task>/{input,target}`` for real pairs; ``root/clean`` for synthetic tasks."""
    pairs: dict[str, PairedImages] = {}
    synthetic = []
    for t in tasks:
        d = root / t
        if (d / "input").is_dir() and (d / "target").is_dir():
            pairs[t] = paired_folders(d / "input", d / "target", task=t, root=root)
        else:
            synthetic.append(t)
    clean = None
    if synthetic:
        if not (root / "clean").is_dir():
            raise MissingInputError(
                f"paired source {root}: no {root}/<task>/input + target folders for "
                f"{', '.join(synthetic)}, and no {root}/clean folder to synthesise them from"
            )
        clean = image_folder(root / "clean", root=root)
    return clean, pairs


def build_sources(
    cfg: DataConfig, tasks: Sequence[str]
) -> tuple[CleanSource | None, dict[str, PairedImages]]:
    """The clean source and real pair sources that ``cfg`` names, for ``tasks``.

    - ``deadleaves``: the fixed pool (``pool_size``, ``image_size``, ``pool_seed``,
      ``content_classes``); every task synthetic.
    - ``classes``: ``root/<class>/`` images (``content_classes`` keeps a subset).
    - ``paired``: ``root/<task>/{input,target}`` real pairs; other tasks synthesised on
      ``root/clean``.
    - ``promptir``: PromptIR's layout: real rain/haze pairs, noise etc. on Train/Denoise.
    """
    if cfg.source == "deadleaves":
        pool = DeadLeavesPool(cfg.pool_size, cfg.image_size, cfg.pool_seed, cfg.content_classes)
        return pool, {}
    if cfg.source == "classes":
        return class_folders(_require_root(cfg), cfg.content_classes), {}
    if cfg.source == "paired":
        return _paired_layout(_require_root(cfg), tasks)
    if cfg.source == "promptir":
        return PromptIRLayout(_require_root(cfg)).train_sources(tasks)
    raise ConfigError(f"unknown data.source {cfg.source!r}; valid choices: {', '.join(SOURCES)}")


def train_tasks(cfg: DataConfig) -> list[str]:
    """``cfg.tasks`` minus ``cfg.exclude`` (families expand: "denoise" drops all three)."""
    tasks = resolve_tasks(cfg.tasks, "data.tasks")
    excluded = set(resolve_tasks(cfg.exclude, "data.exclude"))
    kept = [t for t in tasks if t not in excluded]
    if not kept:
        raise ConfigError(f"data.exclude={cfg.exclude} removes every task of data.tasks={tasks}")
    return kept
