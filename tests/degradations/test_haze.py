"""Haze: the scattering model, RESIDE grids, synthetic depth, strength on shipped photos."""

import pytest
import torch

from forgetir.data.photos import shipped_photos
from forgetir.degradations import degrade
from forgetir.degradations.haze import (
    A_VALUES,
    BETA_VALUES,
    DEPTH_RANGE,
    add_haze,
    synthetic_depth,
)


def test_grids_are_reside():
    assert A_VALUES == (0.8, 0.85, 0.9, 0.95, 1.0)
    assert BETA_VALUES == (0.04, 0.06, 0.08, 0.1, 0.12, 0.16, 0.2)


def test_params_in_grids_and_reproducible():
    clean = torch.rand(100, 3, 4, 4)
    hazy, p = add_haze(clean, 0)
    assert set(p["A"]) <= set(A_VALUES) and len(set(p["A"])) > 1
    assert set(p["beta"]) <= set(BETA_VALUES) and len(set(p["beta"])) > 1
    again, _ = add_haze(clean, 0)
    assert hazy.numpy().tobytes() == again.numpy().tobytes()
    other, _ = add_haze(clean, 1)
    assert not torch.equal(hazy, other)


def test_scattering_formula_with_given_depth():
    clean = torch.rand(2, 3, 8, 8)
    depth = torch.linspace(0, 10, 64).view(8, 8)
    hazy, p = add_haze(clean, 0, A=[0.9, 1.0], beta=[0.1, 0.2], depth=depth)
    a = torch.tensor([0.9, 1.0]).view(2, 1, 1, 1)
    t = torch.exp(-torch.tensor([0.1, 0.2]).view(2, 1, 1, 1) * depth)
    assert torch.allclose(hazy, clean * t + a * (1 - t), atol=1e-6)
    assert torch.equal(p["depth"][0, 0], depth) and p["A"] == [0.9, 1.0]
    with pytest.raises(ValueError, match="broadcast"):
        add_haze(clean, 0, depth=torch.ones(5, 5))


def test_synthetic_depth_range_ramp_and_smoothness():
    d = synthetic_depth(8, 64, 48, generator=0)
    assert d.shape == (8, 1, 64, 48)
    assert float(d.min()) == pytest.approx(DEPTH_RANGE[0])
    assert float(d.max()) == pytest.approx(DEPTH_RANGE[1])
    assert (d[:, :, :16].mean((1, 2, 3)) > d[:, :, -16:].mean((1, 2, 3))).all()  # sky far
    span = DEPTH_RANGE[1] - DEPTH_RANGE[0]
    assert float(d.diff(dim=2).abs().max()) < 0.1 * span  # smooth: no jumps
    assert not torch.equal(d[0], d[1])


def test_hazy_psnr_like_sots_outdoor():
    """Hazy vs clean PSNR should sit roughly in the 10-20 dB band of SOTS outdoor inputs."""
    values = []
    for i, x in enumerate(shipped_photos(max_side=96).values()):
        for s in range(3):
            y, _ = degrade("dehaze", x, 10 * i + s)
            values.append(float(-10 * torch.log10(((y - x) ** 2).mean())))
    mean = sum(values) / len(values)
    assert 12.0 < mean < 20.0
    assert min(values) > 6.0 and max(values) < 30.0
