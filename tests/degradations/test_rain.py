"""Rain: parameter ranges, streak geometry, seeding."""

import math

import pytest
import torch

from forgetir.degradations import degrade
from forgetir.degradations.rain import (
    ANGLE_RANGE,
    DENSITY_RANGE,
    INTENSITY_RANGE,
    LENGTH_RANGE,
    add_rain,
    streak_kernels,
)


def test_params_drawn_in_ranges():
    clean = torch.rand(64, 3, 8, 8)
    rainy, p = add_rain(clean, 0)
    assert rainy.shape == clean.shape
    assert all(LENGTH_RANGE[0] <= v <= LENGTH_RANGE[1] and v == int(v) for v in p["length"])
    assert all(ANGLE_RANGE[0] <= v <= ANGLE_RANGE[1] for v in p["angle"])
    assert all(DENSITY_RANGE[0] <= v <= DENSITY_RANGE[1] for v in p["density"])
    assert all(INTENSITY_RANGE[0] <= v <= INTENSITY_RANGE[1] for v in p["intensity"])
    assert 15 <= LENGTH_RANGE[0] and LENGTH_RANGE[1] <= 31
    assert 10 <= max(abs(a) for a in ANGLE_RANGE) <= 20
    assert len(set(p["angle"])) == 64  # one draw per image


def test_reproducible_and_only_brightens():
    clean = torch.rand(3, 3, 48, 40)
    a, pa = degrade("derain", clean, 11)
    b, pb = degrade("derain", clean, 11)
    c, _ = degrade("derain", clean, 12)
    assert a.numpy().tobytes() == b.numpy().tobytes() and pa == pb
    assert not torch.equal(a, c)
    assert (a >= clean).all() and a.max() <= 1
    # the same streak layer on every channel (rain is colourless) where nothing clips
    grey = torch.full((1, 3, 48, 40), 0.2)
    g, _ = degrade("derain", grey, 3)
    assert torch.allclose(g[:, 0], g[:, 1]) and torch.allclose(g[:, 1], g[:, 2])


def _orientation_and_extent(k):
    """Principal axis angle (degrees from vertical) and length of a kernel's mass."""
    k = k[0, 0]
    n = k.shape[-1]
    r = torch.arange(n, dtype=torch.float32) - n // 2
    y, x = torch.meshgrid(r, r, indexing="ij")
    w = k / k.sum()
    cxx, cyy, cxy = (w * x * x).sum(), (w * y * y).sum(), (w * x * y).sum()
    angle = 0.5 * math.degrees(math.atan2(2 * float(cxy), float(cyy - cxx)))
    along = x * math.sin(math.radians(angle)) + y * math.cos(math.radians(angle))
    extent = float(along[k > 0.5].max() - along[k > 0.5].min()) + 1
    return angle, extent


@pytest.mark.parametrize(("length", "angle"), [(15, 0.0), (21, 12.0), (31, -15.0)])
def test_streak_kernel_geometry(length, angle):
    k = streak_kernels([float(length)], [angle])
    assert float(k.max()) == pytest.approx(1.0)
    got_angle, extent = _orientation_and_extent(k)
    assert got_angle == pytest.approx(angle, abs=1.0)
    assert extent == pytest.approx(length, abs=2.0)


def test_given_params_are_used_and_density_matters():
    clean = torch.zeros(1, 3, 64, 64)
    sparse, p = add_rain(clean, 0, density=0.001, length=21, angle=5, intensity=0.3)
    assert p == {"density": [0.001], "length": [21.0], "angle": [5.0], "intensity": [0.3]}
    dense, _ = add_rain(clean, 0, density=0.01, length=21, angle=5, intensity=0.3)
    assert dense.mean() > 3 * sparse.mean()
    with pytest.raises(ValueError, match="density"):
        add_rain(clean, 0, density=2.0)
