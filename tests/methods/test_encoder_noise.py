"""encoder-noise: the encoder-space loss, frozen decoder, proxy retain data, no (1+label) bug."""

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


def test_loss_matches_the_formula(tiny):
    forget, retain = make_batch(1), make_batch(2)
    m = create_method(
        "encoder-noise",
        tiny(),
        overrides={"alpha": 0.3},
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


def test_forget_term_is_not_zeroed(tiny):
    # The released baseline weighted the forget term by (1 + label) = 0: here it counts.
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
    m = create_method("encoder-noise", tiny(), overrides={"noise_stats": "batch"})
    assert torch.isfinite(m.loss(make_batch(1), make_batch(2))["loss"])
