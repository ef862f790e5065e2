"""Dead leaves: reproducibility, exact occlusion, the r^-3 law, content classes, seeds."""

import math

import numpy as np
import pytest
import torch

from forgetir.data.deadleaves import (
    CONTENT_CLASSES,
    PALETTE,
    RMIN,
    SUPERSAMPLE,
    build_palette,
    dead_leaves,
    dead_leaves_batch,
    deadleaves_test_set,
    image_seed,
    leaf_depth,
    render_dead_leaves,
    sample_radii,
)
from forgetir.degradations.haze import DEPTH_RANGE


@pytest.mark.parametrize("cls", CONTENT_CLASSES)
def test_reproducible_range_and_quantised(cls):
    a = dead_leaves(image_seed(3, 1), 48, cls)
    b = dead_leaves(image_seed(3, 1), 48, cls)
    c = dead_leaves(image_seed(3, 2), 48, cls)
    assert a.shape == (3, 48, 48) and a.dtype == torch.float32
    assert a.numpy().tobytes() == b.numpy().tobytes()
    assert not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1
    assert torch.allclose(a * 255, (a * 255).round(), atol=1e-4)


def _brute_force_leaf_map(render, size):
    """First (front-most) leaf whose shape contains each super-sampled pixel centre."""
    ss = SUPERSAMPLE
    c = (torch.arange(size * ss, dtype=torch.float64) + 0.5) / ss
    py, px = torch.meshgrid(c, c, indexing="ij")
    dx = px[None] - render.centres[:, 0, None, None].double()
    dy = py[None] - render.centres[:, 1, None, None].double()
    r = render.radii[:, None, None].double()
    if render.angles is None:
        inside = dx * dx + dy * dy <= r * r
    else:
        th = render.angles[:, None, None].double()
        u = dx * th.cos() + dy * th.sin()
        v = dy * th.cos() - dx * th.sin()
        inside = (u.abs() <= r) & (v.abs() <= r)
    n = len(render.radii)
    idx = torch.arange(n)[:, None, None].expand_as(inside)
    first = torch.where(inside, idx, n).amin(0)
    return first


@pytest.mark.parametrize("cls", CONTENT_CLASSES)
def test_leaf_map_is_exact_occlusion(cls):
    for seed in range(4):
        render = render_dead_leaves(seed, 24, cls)
        expected = _brute_force_leaf_map(render, 24)
        mismatch = (expected != render.leaf_map).float().mean().item()
        assert mismatch < 2e-3  # float rounding of pixel centres exactly on an edge only
        assert render.n_leaves == len(render.radii) + 1
        assert (render.angles is not None) == (cls == "squares")


def test_radius_law_exponent_is_three():
    r = sample_radii(100_000, torch.Generator().manual_seed(0), rmin=2.0, rmax=1e9)
    alpha = 1 + len(r) / float(torch.log(r.double() / 2.0).sum())  # Pareto MLE
    assert alpha == pytest.approx(3.0, abs=0.05)


def test_rendered_radii_follow_truncated_power_law():
    size = 64
    radii = torch.cat([render_dead_leaves(s, size).radii for s in range(4)]).double()
    rmin, rmax = RMIN, float(size)
    assert radii.min() >= rmin and radii.max() <= rmax
    x = radii.sort().values
    cdf = (rmin**-2 - x**-2) / (rmin**-2 - rmax**-2)
    emp = torch.arange(1, len(x) + 1, dtype=torch.float64) / len(x)
    ks = float((cdf - emp).abs().max())
    assert ks < 1.63 / math.sqrt(len(x))  # Kolmogorov-Smirnov at the 1% level


def _stats(cls, n=5, size=48):
    flat, axis = [], []
    for i in range(n):
        x = dead_leaves(image_seed(0, i), size, cls)
        gx = (x[:, :, 1:] - x[:, :, :-1]).abs().sum(0)[:-1, :]
        gy = (x[:, 1:, :] - x[:, :-1, :]).abs().sum(0)[:, :-1]
        flat.append(float((gx == 0).float().mean()))
        edges = (gx + gy) > 0.05
        axis.append(float((((gx < 1e-6) | (gy < 1e-6)) & edges).sum() / edges.sum()))
    return sum(flat) / n, sum(axis) / n


def test_content_classes_look_different():
    disks, squares, stripes = (_stats(c) for c in CONTENT_CLASSES)
    assert squares[1] > disks[1] + 0.08  # squares: more axis-aligned edges
    assert stripes[0] < 0.5 * disks[0]  # stripes: few flat neighbours
    assert torch.equal(dead_leaves(1, 32), dead_leaves(1, 32, "disks"))  # None means disks
    with pytest.raises(ValueError, match="disks, squares, stripes"):
        dead_leaves(1, 32, "triangles")


def test_batch_and_per_image_classes():
    batch = dead_leaves_batch([4, 5], 32, ["squares", "stripes"])
    assert torch.equal(batch[1], dead_leaves(5, 32, "stripes"))
    with pytest.raises(ValueError, match="content classes"):
        dead_leaves_batch([1, 2], 32, ["disks"])


def test_seed_namespaces_are_disjoint():
    train = {image_seed(p, i) for p in range(3) for i in range(500)}
    test = {image_seed(p, i, namespace="test") for p in range(3) for i in range(500)}
    assert len(train) == 1500 and len(test) == 1500 and not train & test
    assert all(s % 2 == 0 for s in train) and all(s % 2 == 1 for s in test)
    assert max(train | test) < 2**63
    assert image_seed(0, 7) == image_seed(0, 7)
    with pytest.raises(ValueError, match="train"):
        image_seed(0, 0, namespace="val")


def test_test_set_is_fixed_and_held_out():
    a = deadleaves_test_set(n=3, size=32)
    assert a.shape == (3, 3, 32, 32)
    assert torch.equal(a, deadleaves_test_set(n=3, size=32))
    train = dead_leaves_batch([image_seed(0, i) for i in range(3)], 32)
    assert not any(torch.equal(a[i], train[j]) for i in range(3) for j in range(3))


def test_leaf_depth_front_is_near():
    render = render_dead_leaves(2, 32)
    depth = leaf_depth(render)
    assert depth.shape == (1, 32, 32)
    assert DEPTH_RANGE[0] <= depth.min() and depth.max() <= DEPTH_RANGE[1] + 1e-5
    # pixels whose super-sampled block shows one leaf: depth increases with the leaf index
    blocks = render.leaf_map.unfold(0, 2, 2).unfold(1, 2, 2).reshape(32, 32, 4)
    single = (blocks == blocks[..., :1]).all(-1)
    idx, d = blocks[..., 0][single].double(), depth[0][single].double()
    order = idx.argsort()
    assert (d[order].diff() >= -1e-5).all() and idx.unique().numel() > 5


def test_palette_comes_from_non_test_photos():
    rebuilt = torch.from_numpy(build_palette().astype(np.float32)) / 255
    assert rebuilt.shape == PALETTE.shape == (384, 3)
    # JPEG decoders may differ by a level or two between machines
    assert float((rebuilt - PALETTE).abs().max()) <= 3 / 255
