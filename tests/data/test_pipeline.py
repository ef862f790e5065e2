"""Training pipeline: items are pure functions of (seed, index); exact resume; bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from forgetir.config import DataConfig
from forgetir.data.datasets import build_train_dataset
from forgetir.data.folders import image_folder, paired_folders
from forgetir.data.io import ImageReadError, write_image
from forgetir.data.pipeline import (
    AUGMENT_OPS,
    StepSampler,
    TaskPatchDataset,
    augment,
    make_train_loader,
    resolve_tasks,
    task_id,
)
from forgetir.data.pool import DeadLeavesPool

TASKS5 = ["dehaze", "derain", "denoise_15", "denoise_25", "denoise_50"]


def _official_op(img_hwc: np.ndarray, mode: int) -> np.ndarray:
    """PromptIR's data_augmentation modes 1..7 on an (H, W, C) array."""
    k = {1: 0, 2: 1, 3: 1, 4: 2, 5: 2, 6: 3, 7: 3}[mode]
    out = np.rot90(img_hwc, k=k) if k else img_hwc
    return np.flipud(out) if mode in (1, 3, 5, 7) else out


def test_augment_matches_the_official_seven_ops():
    assert sorted(AUGMENT_OPS) == list(range(1, 8))  # identity (0) is never drawn
    x = torch.rand(3, 5, 7)
    hwc = x.permute(1, 2, 0).numpy()
    outs = set()
    for op in range(1, 8):
        ours = augment(x, op)
        ref = torch.from_numpy(_official_op(hwc, op).copy()).permute(2, 0, 1)
        assert torch.equal(ours, ref), op
        outs.add(ours.numpy().tobytes())
        assert not torch.equal(ours, x) or op == 0
    assert len(outs) == 7
    with pytest.raises(ValueError, match="1..7"):
        augment(x, 0)


def test_items_are_pure_functions_of_seed_and_index():
    pool = DeadLeavesPool(4, 32, seed=0)
    a = TaskPatchDataset(pool, TASKS5, 16, seed=5)
    b = TaskPatchDataset(DeadLeavesPool(4, 32, seed=0), TASKS5, 16, seed=5)
    for i in (0, 1, 7, 123):
        x, y = a[i], b[i]
        assert torch.equal(x["degraded"], y["degraded"]) and torch.equal(x["clean"], y["clean"])
        assert x["image"] == y["image"] and x["index"] == i
    c = TaskPatchDataset(pool, TASKS5, 16, seed=6)
    assert not torch.equal(a[3]["degraded"], c[3]["degraded"])
    item = a[2]
    assert item["degraded"].shape == item["clean"].shape == (3, 16, 16)
    assert item["task"] == "denoise_15" and item["task_id"] == 0
    assert not torch.equal(item["degraded"], item["clean"])


def test_tasks_are_balanced_and_ids_official():
    ds = TaskPatchDataset(DeadLeavesPool(2, 16, 0), TASKS5, 8, seed=0)
    counts = {t: 0 for t in TASKS5}
    for i in range(50):
        counts[ds.task_of(i)] += 1
    assert set(counts.values()) == {10}
    assert [task_id(t) for t in ("denoise_15", "denoise_25", "denoise_50", "derain", "dehaze")] == [
        0,
        1,
        2,
        3,
        4,
    ]
    assert task_id("inpaint_4") >= 5


def test_step_sampler_resume_and_ranks():
    full = list(StepSampler(4, total_steps=6))
    resumed = list(StepSampler(4, start_step=3, total_steps=6))
    assert resumed == full[3:]
    assert len(StepSampler(4, start_step=2, total_steps=6)) == 4
    r0 = list(StepSampler(2, world_size=2, rank=0, total_steps=3))
    r1 = list(StepSampler(2, world_size=2, rank=1, total_steps=3))
    single = list(StepSampler(4, total_steps=3))
    assert [a + b for a, b in zip(r0, r1, strict=True)] == single
    with pytest.raises(ValueError, match="rank"):
        StepSampler(2, world_size=2, rank=2)
    with pytest.raises(TypeError):
        len(StepSampler(2))


def test_loader_is_the_same_with_or_without_workers_and_after_resume():
    ds = TaskPatchDataset(DeadLeavesPool(3, 32, 0), TASKS5, 16, seed=1)
    it0 = iter(make_train_loader(ds, batch_size=3, workers=0, total_steps=4))
    batches0 = [next(it0) for _ in range(4)]
    loader1 = make_train_loader(ds, batch_size=3, workers=1, total_steps=4)
    batches1 = list(loader1)
    resumed = list(make_train_loader(ds, batch_size=3, start_step=2, total_steps=4))
    assert len(batches1) == 4
    for a, b in zip(batches0, batches1, strict=True):
        assert torch.equal(a["degraded"], b["degraded"]) and a["task"] == b["task"]
    for a, b in zip(batches0[2:], resumed, strict=True):
        assert torch.equal(a["clean"], b["clean"]) and a["index"].tolist() == b["index"].tolist()
    assert batches0[1]["index"].tolist() == [3, 4, 5]


def test_build_train_dataset_honours_exclude():
    base = dict(pool_size=2, image_size=32, patch_size=16)
    ds = build_train_dataset(DataConfig(**base, exclude=["denoise"]), seed=0)
    assert ds.tasks == ["dehaze", "derain"]
    ds = build_train_dataset(DataConfig(**base, exclude=["dehaze"]), seed=0)
    assert ds.tasks == ["derain", "denoise_15", "denoise_25", "denoise_50"]
    with pytest.raises(ValueError, match="unknown task 'haze' in data.exclude; valid choices: "):
        build_train_dataset(DataConfig(**base, exclude=["haze"]), seed=0)
    with pytest.raises(ValueError, match="unknown task 'rain' in data.tasks.*derain"):
        build_train_dataset(DataConfig(**base, tasks=["rain"]), seed=0)
    with pytest.raises(ValueError, match="removes every task"):
        build_train_dataset(DataConfig(**base, exclude=TASKS5), seed=0)
    with pytest.raises(ValueError, match="unknown data.source 'web'; valid choices: deadleaves"):
        build_train_dataset(DataConfig(**base, source="web"), seed=0)
    with pytest.raises(ValueError, match="needs data.root"):
        build_train_dataset(DataConfig(**base, source="classes"), seed=0)
    assert resolve_tasks(["denoise", "denoise_25"]) == ["denoise_15", "denoise_25", "denoise_50"]


def test_images_smaller_than_the_patch_are_named(tmp_path):
    write_image(tmp_path / "big.png", torch.rand(3, 40, 40))
    write_image(tmp_path / "tiny.png", torch.rand(3, 12, 50))
    ds = TaskPatchDataset(image_folder(tmp_path), ["denoise_25"], 32, seed=0)
    with pytest.raises(ImageReadError, match=r"tiny.png is 12x50 .*32x32 patch"):
        for i in range(20):
            ds[i]


def test_real_pairs_crop_the_same_window(tmp_path):
    clean = torch.rand(3, 40, 48)
    write_image(tmp_path / "derain" / "target" / "a.png", clean)
    write_image(tmp_path / "derain" / "input" / "a.png", 1 - clean)
    write_image(tmp_path / "clean" / "c.png", torch.rand(3, 32, 32))
    cfg = DataConfig(
        source="paired", root=str(tmp_path), tasks=["derain", "denoise_50"], patch_size=16
    )
    ds = build_train_dataset(cfg, seed=0)
    assert list(ds.paired) == ["derain"]
    item = ds[0]
    assert item["task"] == "derain" and item["image"] == "derain/input/a.png"
    assert torch.allclose(item["degraded"], 1 - item["clean"], atol=1.5 / 255)
    assert ds[1]["image"] == "clean/c.png"
    cfg.tasks = ["derain", "dehaze"]
    (tmp_path / "clean" / "c.png").unlink()
    (tmp_path / "clean").rmdir()
    with pytest.raises(FileNotFoundError, match="dehaze.*no .*clean folder"):
        build_train_dataset(cfg, seed=0)


def test_paired_pipeline_reports_size_mismatch(tmp_path):
    write_image(tmp_path / "in" / "a.png", torch.rand(3, 32, 32))
    write_image(tmp_path / "gt" / "a.png", torch.rand(3, 32, 40))
    pairs = paired_folders(tmp_path / "in", tmp_path / "gt", task="dehaze")
    ds = TaskPatchDataset(None, ["dehaze"], 16, seed=0, paired={"dehaze": pairs})
    with pytest.raises(ValueError, match="sizes differ.*in/a.png.*gt/a.png"):
        ds[0]
    with pytest.raises(ValueError, match="no clean images for the synthetic task"):
        TaskPatchDataset(None, ["dehaze", "denoise_15"], 16, 0, paired={"dehaze": pairs})


def test_augment_false_keeps_the_image_as_it_is_and_every_other_draw():
    from forgetir.data.pool import DeadLeavesPool

    pool = DeadLeavesPool(3, 32, seed=0)
    on = TaskPatchDataset(pool, ["denoise_25"], 32, seed=4)
    off = TaskPatchDataset(pool, ["denoise_25"], 32, seed=4, augment=False)
    for i in range(6):
        a, b = on[i], off[i]
        assert a["image"] == b["image"]
        assert torch.equal(b["clean"], pool[pool.index_of(b["image"])])
        assert not torch.equal(a["clean"], b["clean"])  # ops 1..7 never leave it unchanged
