"""DeadLeavesPool and SubsetSource: a fixed, enumerable, hashable pool of clean images."""

from __future__ import annotations

import pytest
import torch

from forgetir.data.deadleaves import dead_leaves, image_seed
from forgetir.data.io import tensor_sha256
from forgetir.data.pool import CleanSource, DeadLeavesPool, SubsetSource, pool_id


def test_ids_classes_and_images_are_fixed():
    pool = DeadLeavesPool(4, image_size=16, seed=3, content_classes=["disks", "stripes"])
    assert len(pool) == 4
    assert pool.ids == ["dl-000000", "dl-000001", "dl-000002", "dl-000003"]
    assert pool.classes == ["disks", "stripes", "disks", "stripes"]
    x = pool[2]
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32
    assert 0 <= float(x.min()) and float(x.max()) <= 1
    # exactly the generator's image for this (seed, index, class), quantised to 8 bits
    ref = dead_leaves(image_seed(3, 2), size=16, content_class="disks")
    assert torch.equal(x, (ref.clamp(0, 1) * 255).round() / 255)
    # a second pool with the same arguments gives the same bytes and hashes
    again = DeadLeavesPool(4, image_size=16, seed=3, content_classes=["disks", "stripes"])
    assert torch.equal(again.get(2), x)
    assert again.sha256(2) == pool.sha256(2) == tensor_sha256(x)
    assert pool.sha256(0) != pool.sha256(1)


def test_other_seed_or_namespace_gives_other_images():
    a = DeadLeavesPool(2, 16, seed=0)
    b = DeadLeavesPool(2, 16, seed=1)
    t = DeadLeavesPool(2, 16, seed=0, namespace="test")
    assert a.sha256(0) != b.sha256(0)
    assert a.sha256(0) != t.sha256(0)
    assert t.ids == ["dlt-000000", "dlt-000001"]
    assert t.index_of("dlt-000001") == 1
    with pytest.raises(KeyError, match="dl-000001"):
        t.index_of("dl-000001")


def test_manifest_entries_and_protocol():
    pool = DeadLeavesPool(2, 16, seed=0, content_classes=["squares"])
    assert isinstance(pool, CleanSource)
    entries = pool.manifest_entries()
    assert [e["id"] for e in entries] == ["dl-000000", "dl-000001"]
    assert all(e["class"] == "squares" and len(e["sha256"]) == 64 for e in entries)
    assert pool.describe()["kind"] == "deadleaves"
    assert pool.index_of("dl-000001") == 1
    with pytest.raises(KeyError):
        pool.index_of("dl-000002")
    assert pool_id(7) == "dl-000007"


def test_cache_is_shared_by_pools_and_never_regenerates(monkeypatch):
    import forgetir.data.pool as mod

    mod.clear_cache()
    pool = DeadLeavesPool(2, 16, seed=11).materialize()
    first = pool.get(1)

    def fail(*a, **k):
        raise AssertionError("regenerated a cached image")

    monkeypatch.setattr(mod, "dead_leaves", fail)
    assert torch.equal(pool.get(1), first)
    assert torch.equal(DeadLeavesPool(2, 16, seed=11).get(1), first)  # a new pool object
    with pytest.raises(AssertionError, match="regenerated"):
        DeadLeavesPool(2, 32, seed=11).get(1)  # another image size is another image


def test_bad_arguments_are_clear():
    with pytest.raises(ValueError, match="unknown dead-leaves content class.*'cats'.*disks"):
        DeadLeavesPool(2, 16, 0, content_classes=["cats"])
    with pytest.raises(ValueError, match="size must be >= 1"):
        DeadLeavesPool(0, 16, 0)
    with pytest.raises(ValueError, match="namespace"):
        DeadLeavesPool(1, 16, 0, namespace="valid")
    with pytest.raises(IndexError, match="out of range"):
        DeadLeavesPool(2, 16, 0).get(2)


def test_subset_source_renumbers():
    pool = DeadLeavesPool(5, 16, seed=0, content_classes=["disks", "squares"])
    sub = SubsetSource(pool, [3, 0])
    assert len(sub) == 2
    assert [sub.name(i) for i in range(2)] == ["dl-000003", "dl-000000"]
    assert sub.content_class(0) == "squares"
    assert torch.equal(sub.get(0), pool.get(3))
    assert sub.entry(1) == pool.entry(0)
    with pytest.raises(IndexError):
        SubsetSource(pool, [5])
    with pytest.raises(ValueError, match="empty"):
        SubsetSource(pool, [])
