"""Tiled inference (forgetir.models.tiling): windows, snapping, padding, exactness, seams."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from forgetir.checkpoint import load_model
from forgetir.checkpoint.shipped import resolve_checkpoint
from forgetir.data.testsets import build_test_sets
from forgetir.errors import InvalidInputError
from forgetir.metrics import psnr
from forgetir.models.tiling import (
    axis_windows,
    check_tiling,
    default_overlap,
    restore_tiled,
    tile_starts,
)


class Local(nn.Module):
    """A purely local network (receptive radius 2) that needs sides that are multiples of 8."""

    size_multiple = 8

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.GELU(), nn.Conv2d(8, 3, 3, padding=1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[-2] % 8 == 0 and x.shape[-1] % 8 == 0, "tiles must come padded"
        return x + 0.1 * self.body(x)


class TileMean(nn.Module):
    """Each tile becomes its own mean: hard seams wherever tiles meet, unless blended."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(-2, -1), keepdim=True).expand_as(x)


@pytest.fixture(scope="module")
def before():
    return load_model(resolve_checkpoint("shipped:before")).eval()


@pytest.mark.parametrize(
    ("length", "tile", "overlap"),
    [(100, 40, 10), (64, 16, 4), (257, 64, 16), (128, 128, 32), (65, 32, 0), (1000, 96, 32)],
)
def test_window_weights_sum_to_one_along_a_side(length, tile, overlap):
    total = torch.zeros(length, dtype=torch.float64)
    windows = axis_windows(length, tile, overlap)
    for start, w in windows:
        assert w.shape[0] == min(tile, length) and bool((w > 0).all())
        total[start : start + w.shape[0]] += w
    assert torch.allclose(total, torch.ones_like(total), atol=1e-12)
    assert windows[0][0] == 0 and windows[-1][0] + windows[-1][1].shape[0] == length
    # tiles step by tile - overlap: neighbours share at least `overlap` pixels
    starts = [s for s, _ in windows]
    assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:], strict=False))


@pytest.mark.parametrize(("length", "tile", "overlap"), [(50, 16, 12), (257, 64, 32), (65, 64, 8)])
def test_normalised_weights_reconstruct_the_image_when_ramps_meet(length, tile, overlap):
    # a tile's two ramps meet (their product is its weight): the weights no longer sum to 1,
    # but stay positive, and dividing by their sum gives back an identity model's input
    total = torch.zeros(length, dtype=torch.float64)
    for start, w in axis_windows(length, tile, overlap):
        assert bool((w > 0).all())
        total[start : start + w.shape[0]] += w
    assert bool((total > 0).all())
    x = torch.rand(2, 3, length, length + 3)
    assert torch.allclose(restore_tiled(nn.Identity(), x, tile, overlap), x, atol=1e-6)


def test_tile_starts_are_spread_evenly_edge_to_edge():
    assert tile_starts(100, 40, 10) == [0, 30, 60]
    assert tile_starts(40, 40, 10) == [0]
    assert tile_starts(41, 40, 0) == [0, 1]
    for length, tile, overlap in ((1000, 96, 32), (257, 64, 16), (513, 128, 0)):
        starts = tile_starts(length, tile, overlap)
        steps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
        assert starts[-1] == length - tile and max(steps) <= tile - overlap
        assert max(steps) - min(steps) <= 1
        # as few tiles as the overlap allows
        assert len(tile_starts(length, tile, overlap)) - 1 < (length - overlap) / (tile - overlap)


@pytest.mark.parametrize(
    ("tile", "overlap", "match"),
    [
        (4, 0, r"--tile=4 is out of range; valid: >= 8 \(the model's size multiple\)"),
        (16, -1, r"--tile-overlap=-1 is out of range; valid: >= 0"),
        (16, 16, r"--tile-overlap=16 must be smaller than --tile=16"),
        (20, 16, r"--tile=20 \(snapped to 16, a multiple of 8\)"),
        (16.5, 0, r"--tile=16.5 must be a whole number"),
    ],
)
def test_bad_tiling_is_refused_naming_the_option(tile, overlap, match):
    with pytest.raises(InvalidInputError, match=match):
        check_tiling(tile, overlap, 8)


def test_tiles_are_snapped_to_the_model_multiple():
    assert check_tiling(70, 16, 8) == 64
    assert check_tiling(70, 16) == 70
    assert default_overlap(64) == 16 and default_overlap(512) == 32


def test_a_tile_covering_the_image_is_exactly_untiled(before):
    torch.manual_seed(1)
    x = torch.rand(2, 3, 37, 50)  # odd sides: padded to 40x56 inside both paths
    with torch.no_grad():
        whole = before(x)
    for tile in (56, 64, 1000):
        assert torch.equal(restore_tiled(before, x, tile, 8), whole)


def test_odd_sizes_and_batches_match_the_untiled_local_model():
    net = Local()
    torch.manual_seed(2)
    x = torch.rand(3, 3, 53, 77)
    with torch.no_grad():
        whole = net(nn.functional.pad(x, (0, 3, 0, 3), mode="reflect"))[..., :53, :77]
    y = restore_tiled(net, x, 24, 8)
    assert y.shape == x.shape and y.dtype == torch.float32
    # a local model differs only where a tile border's zero padding leaks in (weights ~0)
    mse = ((y - whole) ** 2).mean(dim=(1, 2, 3))
    assert float((-10 * torch.log10(mse)).min()) > 60  # dB, the untiled output as reference
    # each image of a batch is restored as it would be alone
    for i in range(3):
        assert torch.allclose(restore_tiled(net, x[i : i + 1], 24, 8), y[i : i + 1], atol=1e-6)


def test_blended_overlaps_leave_no_seam():
    x = torch.linspace(0, 1, 96).repeat(1, 3, 32, 1)  # a horizontal ramp, 96 pixels wide
    hard = restore_tiled(TileMean(), x, 32, 0)
    soft = restore_tiled(TileMean(), x, 32, 16)
    jump = lambda y: float((y[..., 1:] - y[..., :-1]).abs().max())  # noqa: E731
    assert jump(hard) > 0.3  # tile means 1/3 apart meet in one step
    assert jump(soft) < 0.025  # measured 0.017; the input ramp itself steps 0.011


def test_local_model_tiled_is_within_0_01_db_of_untiled():
    # a model that sees only its neighbourhood: blending is the only source of difference
    net = Local()
    torch.manual_seed(4)
    clean = torch.rand(2, 3, 70, 90)
    noisy = (clean + 0.1 * torch.randn_like(clean)).clamp(0, 1)
    with torch.no_grad():
        whole = net(nn.functional.pad(noisy, (0, 6, 0, 2), mode="reflect"))[..., :70, :90]
    tiled = restore_tiled(net, noisy, 32, 8)
    gap = psnr(tiled.clamp(0, 1), clean) - psnr(whole.clamp(0, 1), clean)
    assert float(gap.abs().max()) < 0.01


def test_shipped_model_tiled_gap_is_small(before):
    # The shipped model is not local: Restormer's channel attention and PromptIR's prompt pool
    # over every pixel, so a tile's output differs from the same region of the untiled output
    # everywhere, not only near seams. Measured here: |gap| <= 0.035 dB per photo (docs/tiling.md).
    ts = build_test_sets("photos", ["denoise_25"], 128)["denoise_25"]
    gaps = []
    for x, clean in list(zip(ts.degraded, ts.clean, strict=True))[:3]:
        with torch.no_grad():
            whole = before(x).clamp(0, 1)
        tiled = restore_tiled(before, x, 96, 32).clamp(0, 1)
        gaps.append(float(psnr(tiled, clean) - psnr(whole, clean)))
        assert not torch.equal(tiled, whole)  # it did tile (the photos are 128 or 80x128)
    assert max(abs(g) for g in gaps) < 0.05, gaps
