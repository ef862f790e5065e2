"""Noise: the BSD68 formula, truncation, seeding."""

import numpy as np
import pytest
import torch

from forgetir.degradations import degrade
from forgetir.degradations.noise import SIGMAS, add_noise


def _uint8_images(b=2, h=16, w=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, 3, h, w), generator=g).float() / 255


@pytest.mark.parametrize("sigma", SIGMAS)
def test_formula_matches_official_uint8_cast(sigma):
    clean = _uint8_images()
    noisy, params = degrade(f"denoise_{sigma}", clean, 123)
    assert params["sigma"] == [float(sigma)] * 2
    # By hand, as the official test: clip(u + randn*sigma, 0, 255).astype(uint8)
    n = torch.randn(clean.shape, generator=torch.Generator().manual_seed(123))
    u = (clean * 255).round().numpy()
    expected = np.clip(u + n.numpy() * sigma, 0, 255).astype(np.uint8)
    assert np.array_equal((noisy * 255).round().numpy().astype(np.uint8), expected)
    assert torch.equal(noisy, torch.from_numpy(expected).float() / 255)


def test_truncates_not_rounds():
    clean = _uint8_images(b=1, h=32, w=32)
    noisy, _ = add_noise(clean, 5, sigma=25)
    n = torch.randn(clean.shape, generator=torch.Generator().manual_seed(5))
    pre = ((clean * 255).round() + n * 25).clamp(0, 255)
    got = (noisy * 255).round()
    assert torch.equal(got, pre.floor())
    assert (got != pre.round()).any()  # rounding would differ wherever the fraction is >= .5


def test_same_seed_same_bytes_and_generator_equals_int_seed():
    clean = _uint8_images()
    a, _ = degrade("denoise_25", clean, 7)
    b, _ = degrade("denoise_25", clean, torch.Generator().manual_seed(7))
    c, _ = degrade("denoise_25", clean, 8)
    assert a.numpy().tobytes() == b.numpy().tobytes()
    assert not torch.equal(a, c)


def test_global_rng_untouched():
    torch.manual_seed(0)
    state = torch.get_rng_state()
    degrade("denoise_50", _uint8_images(), 1)
    assert torch.equal(state, torch.get_rng_state())


def test_range_shape_dtype_and_quantised():
    clean = _uint8_images().double()
    noisy, _ = add_noise(clean, 0, sigma=50)
    assert noisy.shape == clean.shape and noisy.dtype == torch.float64
    assert noisy.min() >= 0 and noisy.max() <= 1
    assert torch.allclose(noisy * 255, (noisy * 255).round(), atol=1e-9)


def test_noise_level_is_sigma():
    clean = torch.full((1, 3, 64, 64), 0.5)
    noisy, _ = add_noise(clean, 0, sigma=15)
    std = float(((noisy - clean) * 255).std())
    assert 14.0 < std < 16.0


def test_random_and_per_image_sigma():
    clean = _uint8_images(b=40, h=4, w=4)
    _, params = add_noise(clean, 0)
    assert set(params["sigma"]) <= {float(s) for s in SIGMAS}
    assert len(set(params["sigma"])) > 1
    noisy, params = add_noise(clean[:2], 0, sigma=[0, 50])
    assert params["sigma"] == [0.0, 50.0]
    assert torch.equal(noisy[0], clean[0])  # sigma 0 leaves a uint8 image as it is


def test_bad_inputs():
    with pytest.raises(ValueError, match="sigma"):
        add_noise(_uint8_images(), 0, sigma=[15])
    with pytest.raises(ValueError, match=r"\[0,1\]"):
        add_noise(_uint8_images() * 2, 0, sigma=15)
    with pytest.raises(ValueError, match="B,C,H,W"):
        add_noise(torch.rand(3, 8, 8), 0, sigma=15)
    with pytest.raises(TypeError, match="generator"):
        add_noise(_uint8_images(), 1.5, sigma=15)
