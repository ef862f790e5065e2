"""PSNR/SSIM protocols against scikit-image and an independent numpy/scipy pyiqa reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.signal import correlate2d
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

import forgetir.metrics as metrics
from forgetir.metrics import PROTOCOLS, crop_to_multiple, describe_protocol, psnr, psnr_ssim, ssim

SKIMAGE_SSIM_KWARGS = {
    "promptir": {},
    "gaussian": {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False},
}
# (H, W): the window size itself, odd, non-square both ways, even.
SIZES = [(7, 7), (11, 11), (13, 29), (33, 18), (40, 64)]


def random_pair(h: int, w: int, c: int = 3, b: int = 2, seed: int = 0):
    """Random target and a noisy pred that leaves [0, 1] (float64, (B, C, H, W))."""
    rng = np.random.default_rng(seed)
    target = rng.random((b, c, h, w))
    pred = target + rng.normal(0.0, 0.15, target.shape)
    return pred, target


def photo_pair(h: int, w: int, seed: int = 0):
    """Crops of real photos (uint8 levels) with blur-like and noise degradations."""
    rng = np.random.default_rng(seed)
    crops = [
        data.astronaut()[30 : 30 + h, 150 : 150 + w],
        data.coffee()[100 : 100 + h, 200 : 200 + w],
    ]
    target = np.stack([c.transpose(2, 0, 1) / 255.0 for c in crops])
    smooth = (target + np.roll(target, 1, axis=-1) + np.roll(target, 1, axis=-2)) / 3
    pred = smooth + rng.normal(0.0, 0.03, target.shape)
    return pred, target


def to_torch(*arrays: np.ndarray) -> list[torch.Tensor]:
    return [torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]


def skimage_metrics(pred: np.ndarray, target: np.ndarray, protocol: str) -> np.ndarray:
    """Per-image (psnr, ssim) with scikit-image, clipping as the PromptIR test code does."""
    out = []
    for p, t in zip(np.clip(pred, 0, 1), np.clip(target, 0, 1), strict=True):
        if p.shape[0] == 1:
            p, t, axis = p[0], t[0], None
        else:
            p, t, axis = p.transpose(1, 2, 0), t.transpose(1, 2, 0), -1
        out.append(
            (
                peak_signal_noise_ratio(t, p, data_range=1),
                structural_similarity(
                    t, p, data_range=1, channel_axis=axis, **SKIMAGE_SSIM_KWARGS[protocol]
                ),
            )
        )
    return np.array(out)


def pyiqa_reference(pred: np.ndarray, target: np.ndarray, clamp_cs: bool = True) -> np.ndarray:
    """IQA-PyTorch's default psnr/ssim rewritten image by image with numpy/scipy.

    Written from pyiqa's psnr_arch/ssim_arch: PSNR on RGB with 1e-8 added to the MSE; SSIM on
    round(255 * Y of YIQ), MATLAB fspecial('gaussian', 11, 1.5) as a full 2-D kernel,
    filter2(..., 'valid'), data range 255, contrast-structure term clamped at 0.
    """
    ax = np.arange(11) - 5.0
    gx, gy = np.meshgrid(ax, ax)
    win = np.exp(-(gx**2 + gy**2) / (2 * 1.5**2))
    win /= win.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    out = []
    for p, t in zip(np.clip(pred, 0, 1), np.clip(target, 0, 1), strict=True):
        mse = np.mean((p - t) ** 2)
        psnr_val = 10 * math.log10(1.0 / (mse + 1e-8))
        if p.shape[0] == 3:
            yiq_y = np.array([0.299, 0.587, 0.114])
            x, y = [np.round(255 * np.tensordot(yiq_y, im, axes=1)) for im in (p, t)]
        else:
            x, y = np.round(255 * p[0]), np.round(255 * t[0])

        def filt(a):
            return correlate2d(a, win, mode="valid")

        mu1, mu2 = filt(x), filt(y)
        s11 = filt(x * x) - mu1**2
        s22 = filt(y * y) - mu2**2
        s12 = filt(x * y) - mu1 * mu2
        cs = (2 * s12 + c2) / (s11 + s22 + c2)
        if clamp_cs:
            cs = np.maximum(cs, 0.0)
        ssim_map = (2 * mu1 * mu2 + c1) / (mu1**2 + mu2**2 + c1) * cs
        out.append((psnr_val, ssim_map.mean()))
    return np.array(out)


@pytest.mark.parametrize("protocol", ["promptir", "gaussian"])
@pytest.mark.parametrize("size", [(7, 9), (37, 53), (131, 97), (9, 301), (45, 11), (23, 17)])
def test_ssim_equals_skimage_to_1e10_in_float64(
    protocol: str, size: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Box sums from running sums, the four-statistic formula with folded constants and the
    # tiling must not cost precision: equal to scikit-image at 1e-10 in float64, on one tile,
    # on many tiles of a few rows (the last one shorter), and with two images per tile (three
    # images: a group of two, then one).
    h, w = size
    if protocol == "gaussian" and min(size) < 11:
        pytest.skip("smaller than the 11x11 window")
    pred, target = random_pair(h, w, b=3, seed=7)
    ref = skimage_metrics(pred, target, protocol)
    for budget in (metrics._TILE_ELEMENTS_CPU, 4 * w * 13, 4 * h * w * 2):
        monkeypatch.setattr(metrics, "_TILE_ELEMENTS_CPU", budget)
        p, s = psnr_ssim(*to_torch(pred, target), protocol)
        np.testing.assert_allclose(s.numpy(), ref[:, 1], rtol=0, atol=1e-10)
        np.testing.assert_allclose(p.numpy(), ref[:, 0], rtol=0, atol=1e-10)
        np.testing.assert_allclose(ssim(*to_torch(pred, target), protocol).numpy(), s.numpy())
        # Inputs already in [0, 1] (no clipping) and float32 ones take the same path.
        clipped = [np.clip(a, 0, 1) for a in (pred, target)]
        s32 = ssim(*(t.float() for t in to_torch(*clipped)), protocol).numpy()
        ref32 = skimage_metrics(
            *(a.astype(np.float32).astype(np.float64) for a in clipped), protocol
        )
        np.testing.assert_allclose(s32, ref32[:, 1], rtol=0, atol=1e-10)


@pytest.mark.parametrize("protocol", ["promptir", "gaussian"])
@pytest.mark.parametrize("size", SIZES)
def test_matches_skimage_on_random_images(protocol: str, size: tuple[int, int]) -> None:
    if protocol == "gaussian" and min(size) < 11:
        pytest.skip("smaller than the 11x11 window")
    pred, target = random_pair(*size)
    p, s = psnr_ssim(*to_torch(pred, target), protocol)
    ref = skimage_metrics(pred, target, protocol)
    assert p.shape == s.shape == (2,)
    np.testing.assert_allclose(p.numpy(), ref[:, 0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(s.numpy(), ref[:, 1], rtol=0, atol=1e-6)


@pytest.mark.parametrize("protocol", ["promptir", "gaussian"])
@pytest.mark.parametrize("size", [(24, 40), (37, 23)])
def test_matches_skimage_on_photos(protocol: str, size: tuple[int, int]) -> None:
    pred, target = photo_pair(*size)
    p, s = psnr_ssim(*to_torch(pred, target), protocol)
    ref = skimage_metrics(pred, target, protocol)
    np.testing.assert_allclose(p.numpy(), ref[:, 0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(s.numpy(), ref[:, 1], rtol=0, atol=1e-6)
    assert 0.3 < s.min() and s.max() < 0.999  # a realistic, non-degenerate regime


@pytest.mark.parametrize("protocol", ["promptir", "gaussian"])
def test_matches_skimage_on_grayscale(protocol: str) -> None:
    pred, target = random_pair(19, 26, c=1)
    p, s = psnr_ssim(*to_torch(pred, target), protocol)
    ref = skimage_metrics(pred, target, protocol)
    np.testing.assert_allclose(p.numpy(), ref[:, 0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(s.numpy(), ref[:, 1], rtol=0, atol=1e-6)


def test_float32_inputs_match_skimage_on_the_same_values() -> None:
    pred, target = random_pair(20, 30)
    pred32, target32 = (torch.from_numpy(a).float() for a in (pred, target))
    p, s = psnr_ssim(pred32, target32)
    ref = skimage_metrics(pred32.double().numpy(), target32.double().numpy(), "promptir")
    np.testing.assert_allclose(p.numpy(), ref[:, 0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(s.numpy(), ref[:, 1], rtol=0, atol=1e-6)
    assert p.dtype == s.dtype == torch.float64


@pytest.mark.parametrize("size", [(11, 11), (16, 23), (30, 17)])
def test_pyiqa_matches_numpy_reference_on_random_images(size: tuple[int, int]) -> None:
    pred, target = random_pair(*size, seed=1)
    p, s = psnr_ssim(*to_torch(pred, target), "pyiqa")
    ref = pyiqa_reference(pred, target)
    np.testing.assert_allclose(p.numpy(), ref[:, 0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(s.numpy(), ref[:, 1], rtol=0, atol=1e-6)


def test_pyiqa_matches_numpy_reference_on_photos_and_grayscale() -> None:
    pred, target = photo_pair(32, 45)
    p, s = psnr_ssim(*to_torch(pred, target), "pyiqa")
    ref = pyiqa_reference(pred, target)
    np.testing.assert_allclose(p.numpy(), ref[:, 0], rtol=0, atol=1e-4)
    np.testing.assert_allclose(s.numpy(), ref[:, 1], rtol=0, atol=1e-4)
    # Single channel: no YIQ, just round(255 x).
    pred1, target1 = pred[:, :1], target[:, :1]
    ref1 = pyiqa_reference(pred1, target1)
    np.testing.assert_allclose(
        ssim(*to_torch(pred1, target1), "pyiqa").numpy(), ref1[:, 1], atol=1e-4
    )


def test_pyiqa_convention_details_change_the_value() -> None:
    """Each pyiqa detail matters here, so the reference test above can catch its absence."""
    pred, target = photo_pair(32, 45)
    ours = ssim(*to_torch(pred, target), "pyiqa").numpy()
    # Y of YIQ x255 rounded is not the RGB mean of the gaussian protocol.
    gaussian = ssim(*to_torch(pred, target), "gaussian").numpy()
    assert np.abs(ours - gaussian).max() > 1e-3
    # Anti-correlated images: the clamp of the contrast-structure term at 0 is active.
    anti_target = target
    anti_pred = 1.0 - target
    clamped = ssim(*to_torch(anti_pred, anti_target), "pyiqa").numpy()
    np.testing.assert_allclose(clamped, pyiqa_reference(anti_pred, anti_target)[:, 1], atol=1e-6)
    unclamped = pyiqa_reference(anti_pred, anti_target, clamp_cs=False)[:, 1]
    assert np.abs(clamped - unclamped).max() > 1e-2


def test_values_are_per_image_not_pooled() -> None:
    gen = torch.Generator().manual_seed(0)
    target = torch.rand(2, 3, 24, 24, generator=gen, dtype=torch.float64)
    noise = torch.randn(2, 3, 24, 24, generator=gen, dtype=torch.float64)
    pred = target + noise * torch.tensor([0.01, 0.2], dtype=torch.float64).view(2, 1, 1, 1)
    for protocol in PROTOCOLS:
        p, s = psnr_ssim(pred, target, protocol)
        singles = [psnr_ssim(pred[i : i + 1], target[i : i + 1], protocol) for i in range(2)]
        torch.testing.assert_close(p, torch.cat([sp for sp, _ in singles]), rtol=0, atol=1e-12)
        torch.testing.assert_close(s, torch.cat([ss for _, ss in singles]), rtol=0, atol=1e-12)
    # The mean of per-image PSNRs is not the PSNR of the pooled MSE (torchmetrics' default).
    mse = (pred.clamp(0, 1) - target).square().mean(dim=(1, 2, 3))
    pooled = -10 * torch.log10(mse.mean())
    assert abs(psnr(pred, target).mean() - pooled) > 1.0


def test_tiling_does_not_change_values(monkeypatch: pytest.MonkeyPatch) -> None:
    pred, target = to_torch(*random_pair(29, 35, b=3))
    expected = {protocol: ssim(pred, target, protocol) for protocol in PROTOCOLS}
    # 1: one output row per tile; 4000: several rows; 10**9: the whole batch at once.
    for budget in (1, 4000, 10**9):
        monkeypatch.setattr(metrics, "_TILE_ELEMENTS_CPU", budget)
        for protocol in PROTOCOLS:
            got = ssim(pred, target, protocol)
            torch.testing.assert_close(got, expected[protocol], rtol=0, atol=1e-12)


def test_pred_is_clipped() -> None:
    pred, target = to_torch(*random_pair(16, 16))
    assert pred.min() < 0 and pred.max() > 1
    for protocol in PROTOCOLS:
        p, s = psnr_ssim(pred, target, protocol)
        pc, sc = psnr_ssim(pred.clamp(0, 1), target, protocol)
        torch.testing.assert_close(p, pc, rtol=0, atol=0)
        torch.testing.assert_close(s, sc, rtol=0, atol=0)
    # Clipping changes the numbers, so the check above is not vacuous.
    mse_unclipped = (pred - target).square().mean(dim=(1, 2, 3))
    assert (psnr(pred, target) > -10 * torch.log10(mse_unclipped) + 0.1).all()


def test_identical_images() -> None:
    target = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(3))
    for protocol in ("promptir", "gaussian"):
        assert torch.isinf(psnr(target, target, protocol)).all()
    torch.testing.assert_close(
        psnr(target, target, "pyiqa"), torch.full((2,), 80.0, dtype=torch.float64)
    )
    for protocol in PROTOCOLS:
        torch.testing.assert_close(
            ssim(target, target, protocol), torch.ones(2, dtype=torch.float64)
        )


def test_empty_batch() -> None:
    empty = torch.zeros(0, 3, 16, 16)
    p, s = psnr_ssim(empty, empty)
    assert p.shape == s.shape == (0,)


def test_mismatched_shapes_name_both() -> None:
    a, b = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 17)
    for fn in (psnr, ssim, psnr_ssim):
        with pytest.raises(ValueError, match=r"\(1, 3, 16, 16\).*\(1, 3, 16, 17\)"):
            fn(a, b)


@pytest.mark.parametrize("fn", [psnr, ssim, psnr_ssim])
def test_unknown_protocol_lists_valid_ones(fn) -> None:
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="'matlab'.*promptir, pyiqa, gaussian"):
        fn(x, x, "matlab")


def test_images_smaller_than_the_window() -> None:
    small = torch.rand(1, 3, 6, 20)
    with pytest.raises(ValueError, match="at least 7x7.*got 6x20"):
        ssim(small, small, "promptir")
    medium = torch.rand(1, 3, 10, 10)
    for protocol in ("pyiqa", "gaussian"):
        with pytest.raises(ValueError, match="at least 11x11.*got 10x10"):
            psnr_ssim(medium, medium, protocol)
    assert psnr(small, small.clamp(0, 0.9)).shape == (1,)  # PSNR has no window


def test_bad_inputs_are_rejected() -> None:
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\).*\(3, 16, 16\)"):
        psnr(x[0], x[0])
    with pytest.raises(ValueError, match="float tensor.*uint8"):
        ssim((x * 255).to(torch.uint8), (x * 255).to(torch.uint8))
    with pytest.raises(TypeError, match="torch.Tensor"):
        psnr(x.numpy(), x)
    nan_pred = x.clone()
    nan_pred[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="pred contains NaN"):
        psnr(nan_pred, x)
    with pytest.raises(ValueError, match=r"target must be in \[0, 1\].*255"):
        ssim(x, x * 255)


def test_describe_protocol() -> None:
    lines = {protocol: describe_protocol(protocol) for protocol in PROTOCOLS}
    for protocol, line in lines.items():
        assert protocol in line and "\n" not in line
    assert "7x7 uniform" in lines["promptir"]
    assert "Y of YIQ" in lines["pyiqa"]
    assert "11x11 Gaussian" in lines["gaussian"]
    assert describe_protocol() == lines["promptir"]
    with pytest.raises(ValueError, match="promptir, pyiqa, gaussian"):
        describe_protocol("PSNR")


def test_crop_to_multiple_matches_promptir_crop_img() -> None:
    x = torch.arange(2 * 37 * 50, dtype=torch.float32).reshape(1, 2, 37, 50)
    out = crop_to_multiple(x, 16)
    # PromptIR's crop_img: image[crop_h // 2 : h - crop_h + crop_h // 2, ...] with crop = h % base
    h, w = 37, 50
    ch, cw = h % 16, w % 16
    expected = x[..., ch // 2 : h - ch + ch // 2, cw // 2 : w - cw + cw // 2]
    assert out.shape == (1, 2, 32, 48)
    assert torch.equal(out, expected)
    assert out.data_ptr() != x.data_ptr() and out.storage_offset() > 0  # a view into x
    assert crop_to_multiple(x[..., :32, :48], 16).shape == (1, 2, 32, 48)
    assert crop_to_multiple(torch.zeros(33, 47), 8).shape == (32, 40)


def test_crop_to_multiple_errors() -> None:
    with pytest.raises(ValueError, match="smaller than the multiple 16"):
        crop_to_multiple(torch.zeros(1, 3, 15, 40))
    for bad in (0, -16, 2.5, True):
        with pytest.raises(ValueError, match="positive int"):
            crop_to_multiple(torch.zeros(1, 3, 32, 32), bad)
