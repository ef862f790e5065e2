"""Evaluation test sets: deterministic per (task, image), multiples of 16, cached, real data."""

from __future__ import annotations

import pytest
import torch

from forgetir.data.io import write_image
from forgetir.data.testsets import (
    TestSet,
    build_test_sets,
    centre_crop,
    degradation_seed,
    manifest_test_entries,
)


def test_dead_leaves_sets_are_deterministic_and_cached():
    a = build_test_sets("deadleaves", tasks=("denoise_25", "dehaze"), n=2, size=40)
    assert list(a) == ["denoise_25", "dehaze"]
    ts = a["dehaze"]
    assert isinstance(ts, TestSet) and len(ts) == 2
    assert ts.names == ["dlt-000000", "dlt-000001"]
    assert ts.clean[0].shape == ts.degraded[0].shape == (1, 3, 32, 32)  # 40 -> multiple of 16
    assert "held-out dead-leaves" in ts.source and "seed 1234" in ts.source
    b = build_test_sets("deadleaves", tasks=["denoise_25", "dehaze"], n=2, size=40)
    assert b["dehaze"] is ts  # cached
    # one image's degradation does not depend on the other tasks or images in the set
    c = build_test_sets("deadleaves", tasks=("dehaze",), n=1, size=40, seed=1234)
    assert torch.equal(c["dehaze"].degraded[0], ts.degraded[0])
    d = build_test_sets("deadleaves", tasks=("dehaze",), n=1, size=40, seed=99)
    assert not torch.equal(d["dehaze"].degraded[0], ts.degraded[0])
    assert not torch.equal(ts.degraded[0], ts.clean[0])


def test_noise_follows_the_uint8_protocol():
    ts = build_test_sets("deadleaves", tasks=("denoise_50",), n=1, size=32)["denoise_50"]
    y = ts.degraded[0] * 255
    assert torch.allclose(y, y.round(), atol=1e-3)  # truncated to uint8 values


def test_photos_are_named_and_cropped():
    ts = build_test_sets("photos", tasks=("denoise_15",), max_side=64)["denoise_15"]
    assert ts.names[0] == "astronaut" and len(ts) == 7
    assert ts.source.startswith("7 shipped photos (scikit-image")
    assert "longest side <= 64" in ts.source and "multiple of 16" in ts.source
    for x in ts.clean:
        assert x.shape[-1] % 16 == 0 and x.shape[-2] % 16 == 0 and max(x.shape[-2:]) <= 64


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown test set 'web'; valid choices: photos"):
        build_test_sets("web")
    with pytest.raises(ValueError, match="unknown task 'fog'.*valid choices"):
        build_test_sets("deadleaves", tasks=("fog",), n=1, size=16)
    with pytest.raises(ValueError, match="needs root"):
        build_test_sets("promptir", tasks=("derain",))


def test_promptir_test_sets(tmp_path):
    root = tmp_path / "data"
    for n in ("1.png", "2.png"):
        write_image(root / "test" / "denoise" / "bsd68" / n, torch.rand(3, 33, 40))
    rain = torch.rand(3, 32, 48)
    write_image(root / "test" / "derain" / "Rain100L" / "input" / "r.png", rain)
    write_image(root / "test" / "derain" / "Rain100L" / "target" / "r.png", 1 - rain)
    write_image(root / "test" / "dehaze" / "input" / "0001_0.8_0.2.png", torch.rand(3, 20, 20))
    write_image(root / "test" / "dehaze" / "target" / "0001.png", torch.rand(3, 20, 20))
    sets = build_test_sets("promptir", tasks=("derain", "dehaze", "denoise_25"), root=root)
    r = sets["derain"]
    assert r.names == ["test/derain/Rain100L/input/r.png"] and "Rain100L" in r.source
    assert torch.allclose(r.degraded[0], 1 - r.clean[0], atol=1.5 / 255)
    assert sets["dehaze"].clean[0].shape == (1, 3, 16, 16)
    n = sets["denoise_25"]
    assert len(n) == 2 and n.clean[0].shape == (1, 3, 32, 32) and "BSD68" in n.source
    desc, entries = manifest_test_entries("promptir", root=root)
    assert len(entries) == 4 and {e["task"] for e in entries} == {"denoise", "derain", "dehaze"}


def test_helpers():
    assert centre_crop(torch.zeros(1, 3, 33, 50)).shape == (1, 3, 32, 48)
    with pytest.raises(ValueError, match="smaller than the crop multiple"):
        centre_crop(torch.zeros(1, 3, 8, 50))
    assert degradation_seed(1, "dehaze", "a") != degradation_seed(1, "dehaze", "b")
    assert degradation_seed(1, "dehaze", "a") != degradation_seed(1, "derain", "a")
    desc, entries = manifest_test_entries("deadleaves", n=2, size=16)
    assert desc["kind"] == "deadleaves-test" and [e["id"] for e in entries] == [
        "dlt-000000",
        "dlt-000001",
    ]
