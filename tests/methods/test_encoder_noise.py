"""encoder-noise: the encoder-space loss against hand computations, frozen decoder, proxy data."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from forgetir.methods import create_method

from conftest import TINY_MODELS, make_batch


def _noise(x: torch.Tensor, seed: int) -> torch.Tensor:
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
    mean, std = x.mean((2, 3), keepdim=True), x.std((2, 3), keepdim=True)
    return (z * std + mean).clamp(0, 1)


@pytest.mark.parametrize("model_name", TINY_MODELS)
def test_step_changes_encoder_only(model_name, tiny):
    m = create_method("encoder-noise", tiny(model_name))
    enc = {id(p) for p in m.model.encoder_parameters()}
    assert {id(p) for p in m.trainable_parameters()} == enc
    snap = {n: p.detach().clone() for n, p in m.model.named_parameters()}
    opt = torch.optim.AdamW(m.trainable_parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.05)
    out = m.loss(make_batch(1), make_batch(2))
    out["loss"].backward()
    opt.step()
    changed = {n for n, p in m.model.named_parameters() if not torch.equal(p, snap[n])}
    names = {n for n, p in m.model.named_parameters() if id(p) in enc}
    assert changed and changed <= names  # the decoder did not move


def _release_noise(x_f: torch.Tensor, x_r: torch.Tensor, seed: int) -> torch.Tensor:
    # engine_unlearn.py: clamp(randn_like(samples) * std(samples) + mean(samples), 0, 1), one
    # scalar mean and std over the whole mixed batch
    both = torch.cat([x_f, x_r])
    z = torch.randn(x_f.shape, generator=torch.Generator().manual_seed(seed))
    return (z * both.std() + both.mean()).clamp(0, 1)


def _skips_and_latent(model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    # by hand, from the modules: the three features the decoder concatenates, then the latent
    enc1 = model.encoder_level1(model.patch_embed(x))
    enc2 = model.encoder_level2(model.down1_2(enc1))
    enc3 = model.encoder_level3(model.down2_3(enc2))
    return [enc1, enc2, enc3, model.latent(model.down3_4(enc3))]


def _per_level_mse(a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
    return sum(((u - v) ** 2).mean() for u, v in zip(a, b, strict=True)) / len(a)


@pytest.mark.parametrize("model_name", TINY_MODELS)
def test_loss_matches_the_formula(model_name, tiny):
    forget, retain = make_batch(1), make_batch(2)
    m = create_method(
        "encoder-noise",
        tiny(model_name),
        overrides={"alpha": 0.3},
        generator=torch.Generator().manual_seed(4),
    )
    out = m.loss(forget, retain)
    x_f, x_r = forget["degraded"], retain["degraded"]  # 16x16: no padding
    with torch.no_grad():
        enc, enc0 = m.model, m.original
        noise = _release_noise(x_f, x_r, 4)
        forget_d = _per_level_mse(_skips_and_latent(enc, x_f), _skips_and_latent(enc0, noise))
        retain_d = _per_level_mse(_skips_and_latent(enc, x_r), _skips_and_latent(enc0, x_r))
    torch.testing.assert_close(
        out["loss"].detach(), 0.3 * forget_d + retain_d, rtol=1e-5, atol=1e-7
    )
    assert out["forget_feat_mse"] == pytest.approx(float(forget_d), rel=1e-5)


def test_latent_only_and_per_image_noise_match_the_old_formula(tiny):
    forget, retain = make_batch(1), make_batch(2)
    m = create_method(
        "encoder-noise",
        tiny(),
        overrides={"alpha": 0.3, "features": "latent", "noise_stats": "image"},
        generator=torch.Generator().manual_seed(4),
    )
    out = m.loss(forget, retain)
    x_f, x_r = forget["degraded"], retain["degraded"]
    with torch.no_grad():
        e0 = m.original.encode
        expected = 0.3 * F.mse_loss(m.model.encode(x_f), e0(_noise(x_f, 4))) + F.mse_loss(
            m.model.encode(x_r), e0(x_r)
        )
    torch.testing.assert_close(out["loss"].detach(), expected, rtol=1e-5, atol=1e-7)


def test_encode_features_are_the_skips_and_the_latent(tiny):
    # what PromptIR's decoder concatenates at scales 1, 1/2, 1/4, then the 1/8 bottleneck
    m = create_method("encoder-noise", tiny(), overrides={"noise_stats": "image"})
    x = make_batch(3)["degraded"]
    feats = m.model.encode_features(x)
    assert len(feats) == 4 and torch.equal(feats[-1], m.model.encode(x))
    assert [f.shape[-1] for f in feats] == [16, 8, 4, 2]


def test_forget_term_counts_without_retain(tiny):
    m = create_method("encoder-noise", tiny(), overrides={"w_r": 0.0})
    assert not m.needs_retain
    out = m.loss(make_batch(1), None)
    assert float(out["loss"].detach()) > 0
    assert float(out["loss"].detach()) == pytest.approx(0.2 * out["forget_feat_mse"], rel=1e-5)


def test_retain_needs_inputs_only_and_proxy_accepts_clean_images(tiny):
    forget = make_batch(1)
    inputs_only = {"degraded": torch.rand(2, 3, 16, 16)}
    m = create_method("encoder-noise", tiny())
    assert torch.isfinite(m.loss(forget, inputs_only)["loss"])
    clean_only = {"clean": torch.rand(2, 3, 16, 16)}
    with pytest.raises(ValueError, match="'degraded'"):
        m.loss(forget, clean_only)
    proxy = create_method("encoder-noise", tiny(), overrides={"proxy": True})
    assert torch.isfinite(proxy.loss(forget, clean_only)["loss"])


def test_noise_stats_option(tiny):
    with pytest.raises(Exception, match="noise_stats"):
        create_method("encoder-noise", tiny(), overrides={"noise_stats": "global"})
    with pytest.raises(Exception, match="features"):
        create_method("encoder-noise", tiny(), overrides={"features": "all"})
    m = create_method("encoder-noise", tiny(), overrides={"noise_stats": "batch"})
    assert torch.isfinite(m.loss(make_batch(1), make_batch(2))["loss"])
