"""AdaIR-specific checks: identity at init, the FFT-mask quirk, odd sizes, encode."""

from __future__ import annotations

import math

import pytest
import torch

from forgetir.models.adair import AdaIR
from forgetir.models.adair_freq import (
    FrequencyModule,
    band_half_sizes,
    frequency_split,
    frequency_split_literal,
)
from forgetir.models.factory import create_model


def _rate(*pairs: tuple[float, float]) -> torch.Tensor:
    return torch.tensor(pairs, dtype=torch.float32).reshape(len(pairs), 2, 1, 1)


def _low_band(x: torch.Tensor, freqs_h: list[int], freqs_w: list[int]) -> torch.Tensor:
    """Complex sum of the listed DFT terms of x, built from explicit complex exponentials."""
    h, w = x.shape[-2:]
    r = torch.arange(h, dtype=torch.float64)
    c = torch.arange(w, dtype=torch.float64)
    xd = x.double().to(torch.complex128)
    out = torch.zeros_like(xd)
    for u in freqs_h:
        for v in freqs_w:
            basis = torch.exp(2j * math.pi * (u * r[:, None] / h + v * c[None, :] / w))
            coeff = (xd * basis.conj()).mean((-2, -1), keepdim=True)  # norm="forward"
            out = out + coeff * basis
    return out


def test_band_half_size_is_zero_below_two_n() -> None:
    rate = _rate((0.99, 0.99), (0.6, 0.4))
    # side // 128 == 1 and rate < 1: int(rate) == 0, the low band is empty.
    assert band_half_sizes((255, 255), rate).tolist() == [[0, 0], [0, 0]]
    assert band_half_sizes((256, 256), rate).tolist() == [[1, 1], [1, 0]]
    assert band_half_sizes((384, 256), rate).tolist() == [[2, 1], [1, 0]]


def test_small_features_go_entirely_to_the_high_band() -> None:
    x = torch.randn(2, 4, 64, 96)
    rate = _rate((0.9, 0.9), (0.9, 0.9))
    for split in (frequency_split, frequency_split_literal):
        high, low = split(x, rate)
        assert torch.count_nonzero(low) == 0
        torch.testing.assert_close(high, x.abs(), atol=1e-5, rtol=0)


@pytest.mark.parametrize("size", [(256, 256), (257, 300)])
def test_mask_keeps_frequencies_minus_k_to_k_minus_1(size: tuple[int, int]) -> None:
    # int((side // 128) * 0.75) == 1: the shifted box [s//2 - 1, s//2 + 1) is frequencies {-1, 0}.
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1, 2, *size, generator=gen)
    rate = _rate((0.75, 0.75))
    low_c = _low_band(x, [-1, 0], [-1, 0])
    expected_low = low_c.abs().float()
    expected_high = (x.double() - low_c).abs().float()
    for split in (frequency_split, frequency_split_literal):
        high, low = split(x, rate)
        torch.testing.assert_close(low, expected_low, atol=1e-5, rtol=0)
        torch.testing.assert_close(high, expected_high, atol=1e-5, rtol=0)


@pytest.mark.parametrize("size", [(64, 64), (256, 256), (384, 260), (259, 513)])
def test_fast_split_matches_literal_split(size: tuple[int, int]) -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, 2, *size, generator=gen, requires_grad=True)
    # Different boxes per image, including an empty one.
    rate = _rate((0.3, 0.9), (0.8, 0.55), (0.999, 0.7))
    fast = frequency_split(x, rate)
    slow = frequency_split_literal(x, rate)
    for a, b in zip(fast, slow, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    # Squared magnitudes: d|z|/dz is ill-conditioned where a band is ~0, d|z|^2/dz is not.
    w_high, w_low = torch.rand(2, *x.shape, generator=gen)

    def loss(bands: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return (bands[0].square() * w_high).sum() + (bands[1].square() * w_low).sum()

    (g_fast,) = torch.autograd.grad(loss(fast), x)
    (g_slow,) = torch.autograd.grad(loss(slow), x)
    torch.testing.assert_close(g_fast, g_slow, atol=1e-4, rtol=1e-4)


def test_frequency_module_fast_and_literal_paths_agree() -> None:
    torch.manual_seed(2)
    fre = FrequencyModule(dim=16, num_heads=4)
    with torch.no_grad():
        fre.para1.normal_()
        fre.rate_conv[2].weight.mul_(50)  # push the rates away from 0.5 for a visible mask
    image = torch.rand(2, 3, 300, 280)
    y = torch.randn(2, 16, 260, 256)
    fast = fre(image, y)
    fre.literal = True
    slow = fre(image, y)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)


def test_frequency_module_is_identity_at_init() -> None:
    torch.manual_seed(3)
    fre = FrequencyModule(dim=32, num_heads=4)
    image, y = torch.rand(2, 3, 40, 24), torch.randn(2, 32, 10, 6)
    assert torch.equal(fre(image, y), y)
    with torch.no_grad():
        fre.para1.fill_(0.5)
    assert not torch.allclose(fre(image, y), y)


def test_adair_at_init_equals_the_model_without_frequency_modules() -> None:
    torch.manual_seed(4)
    model = create_model("adair-tiny").eval()
    plain = create_model("adair-tiny", decoder=False).eval()
    missing = plain.load_state_dict(model.state_dict(), strict=False)
    assert missing.missing_keys == []
    assert all(k.startswith(("fre1.", "fre2.", "fre3.")) for k in missing.unexpected_keys)
    x = torch.rand(1, 3, 40, 48)
    with torch.no_grad():
        assert torch.equal(model(x), plain(x))
        model.fre2.para1.fill_(0.1)
        assert not torch.allclose(model(x), plain(x))


def test_tiny_forward_backward_is_finite_on_odd_sizes() -> None:
    torch.manual_seed(5)
    model = create_model("adair-tiny")
    with torch.no_grad():
        for fre in (model.fre1, model.fre2, model.fre3):
            fre.para1.fill_(0.1)  # exercise the frequency branches, not just the identity
    x = torch.rand(1, 3, 37, 53)
    out = model(x)
    assert out.shape == x.shape
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(g is None or torch.isfinite(g).all() for g in grads.values())
    assert grads["fre1.channel_cross_agg.q.weight"].abs().sum() > 0
    assert grads["patch_embed.proj.weight"].abs().sum() > 0


def test_encode_is_the_latent_and_depends_only_on_encoder_parameters() -> None:
    torch.manual_seed(6)
    model = create_model("adair-tiny")
    z = model.encode(torch.rand(2, 3, 37, 53))
    assert z.shape == (2, 16 * 8, 5, 7)
    z.sum().backward()
    encoder = {id(p) for p in model.encoder_parameters()}
    with_grad = {id(p) for p in model.parameters() if p.grad is not None}
    assert with_grad == encoder


def test_channels_follow_the_width() -> None:
    model = AdaIR(dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1, heads=(1, 1, 2, 2))
    assert model.fre1.para1.shape == (64, 1, 1)
    assert model.fre3.conv1.weight.shape == (16, 3, 3, 3)
    assert model.up4_3.body[0].weight.shape == (128, 64, 3, 3)
    assert model(torch.rand(1, 3, 16, 16)).shape == (1, 3, 16, 16)


def test_bad_arguments_are_rejected_with_a_clear_message() -> None:
    with pytest.raises(ValueError, match="4 entries"):
        AdaIR(num_blocks=(1, 1, 1))
    with pytest.raises(ValueError, match="out_channels"):
        AdaIR(inp_channels=3, out_channels=1)
