"""accurate-forgetting: the loss is the paper's formula; ablations, hinge, early stop, targets."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from forgetir.config import ConfigError
from forgetir.methods import create_method

from conftest import make_batch


def _adv(y: torch.Tensor, seed: int, r: float = 0.5) -> torch.Tensor:
    """y' = clamp(y + U(-r, r)) drawn exactly as the method draws it from a seeded generator."""
    u = torch.rand(y.shape, generator=torch.Generator().manual_seed(seed))
    return (y + (2 * u - 1) * r).clamp(0, 1)


@pytest.fixture
def batches():
    return make_batch(1), make_batch(2, task="derain")


def _method(tiny, seed=7, target="collapse", **overrides):
    g = torch.Generator().manual_seed(seed)
    return create_method("accurate-forgetting", tiny(), overrides=overrides, generator=g,
                         target=target)  # fmt: skip


def test_loss_is_the_papers_formula(tiny, batches):
    forget, retain = batches
    m = _method(tiny, w_ul=0.7, w_adv=1.3, w_r=0.9)
    out = m.loss(forget, retain)
    with torch.no_grad():
        o_f, o_r = m.model(forget["degraded"]), m.model(retain["degraded"])
    y_f = forget["clean"]
    expected = (
        -0.7 * F.l1_loss(o_f, y_f)
        + 1.3 * F.l1_loss(o_f, _adv(y_f, 7))
        + 0.9 * F.l1_loss(o_r, retain["clean"])
    )
    torch.testing.assert_close(out["loss"].detach(), expected, rtol=1e-5, atol=1e-6)
    assert out["forget_l1"] == pytest.approx(float(F.l1_loss(o_f, y_f)), rel=1e-5)
    assert out["adv_l1"] == pytest.approx(float(F.l1_loss(o_f, _adv(y_f, 7))), rel=1e-5)


def test_generator_advances_each_step(tiny, batches):
    forget, retain = batches
    m = _method(tiny, use_instance=False, w_r=0.0)
    a, b = m.loss(forget, None)["adv_l1"], m.loss(forget, None)["adv_l1"]
    assert a != b  # a fresh p each step, from the method's generator


@pytest.mark.parametrize(
    "use_instance, use_adv", [(True, False), (False, True), (False, False)]
)  # fmt: skip
def test_ablation_switches_drop_terms(tiny, batches, use_instance, use_adv):
    forget, retain = batches
    m = _method(tiny, use_instance=use_instance, use_adv=use_adv)
    out = m.loss(forget, retain)
    with torch.no_grad():
        o_f, o_r = m.model(forget["degraded"]), m.model(retain["degraded"])
    y_f = forget["clean"]
    expected = F.l1_loss(o_r, retain["clean"])
    if use_instance:
        expected = expected - F.l1_loss(o_f, y_f)
    if use_adv:
        expected = expected + F.l1_loss(o_f, _adv(y_f, 7))
    torch.testing.assert_close(out["loss"].detach(), expected, rtol=1e-5, atol=1e-6)


def test_forget_bound_stops_the_push(tiny, batches):
    forget, _ = batches
    m = _method(tiny, use_adv=False, w_r=0.0, forget_bound=1e-4)
    assert not m.needs_retain
    out = m.loss(forget, None)
    assert float(out["loss"].detach()) == pytest.approx(-1e-4)
    out["loss"].backward()
    grads = [p.grad for p in m.model.parameters() if p.grad is not None]
    assert all(torch.count_nonzero(g) == 0 for g in grads)


def test_relative_bound_uses_the_input_error(tiny, batches):
    forget, _ = batches
    m = _method(tiny, use_adv=False, w_r=0.0, forget_bound=1.0, bound_relative=True)
    out = m.loss(forget, None)
    x, y = forget["degraded"], forget["clean"]
    with torch.no_grad():
        err = (m.model(x) - y).abs().flatten(1).mean(1)
    in_err = (x - y).abs().flatten(1).mean(1)
    expected = -torch.minimum(err, in_err).mean()
    torch.testing.assert_close(out["loss"].detach(), expected, rtol=1e-5, atol=1e-6)


def test_unbounded_default_equals_huge_bound(tiny, batches):
    forget, retain = batches
    a = _method(tiny).loss(forget, retain)["loss"]
    b = _method(tiny, forget_bound=1e6).loss(forget, retain)["loss"]
    torch.testing.assert_close(a, b)


def test_should_stop_at_the_forget_floor(tiny):
    m = _method(tiny, forget_floor=12.0)
    assert m.should_stop({"forget_psnr": 11.9}) is not None
    assert m.should_stop({"forget_psnr": 12.5}) is None
    assert _method(tiny).should_stop({"forget_psnr": 1.0}) is None


def test_bad_values_are_rejected(tiny):
    with pytest.raises(ConfigError, match="forget_bound"):
        _method(tiny, forget_bound=-1.0)
    with pytest.raises(ConfigError, match="use_adv"):
        _method(tiny, use_adv="yes")


def test_retrain_like_pulls_towards_the_input(tiny, batches):
    forget, _ = batches
    x = forget["degraded"]
    m = _method(tiny, target="retrain-like", use_adv=False, w_r=0.0)
    out = m.loss(forget, None)
    with torch.no_grad():
        before = F.l1_loss(m.model(x), x)
    torch.testing.assert_close(out["loss"].detach(), before)
    assert out["identity_l1"] == pytest.approx(float(before), rel=1e-5)
    out["loss"].backward()
    with torch.no_grad():
        for p in m.trainable_parameters():
            if p.grad is not None:
                p -= 1e-3 * p.grad
        after = F.l1_loss(m.model(x), x)
    assert after < before  # descending the loss moves N(x_f) towards x_f


def test_retrain_like_adversarial_target_is_centred_on_the_input(tiny, batches):
    forget, retain = batches
    m = _method(tiny, target="retrain-like")
    out = m.loss(forget, retain)
    x = forget["degraded"]
    with torch.no_grad():
        o_f, o_r = m.model(x), m.model(retain["degraded"])
    expected = F.l1_loss(o_f, x) + F.l1_loss(o_f, _adv(x, 7)) + F.l1_loss(o_r, retain["clean"])
    torch.testing.assert_close(out["loss"].detach(), expected, rtol=1e-5, atol=1e-6)


def test_retrain_like_uses_the_reference_model(tiny, batches):
    forget, _ = batches
    reference = tiny("adair-tiny")
    m = create_method(
        "accurate-forgetting",
        tiny(),
        overrides={"use_adv": False, "w_r": 0.0},
        target="retrain-like",
        reference=reference,
    )
    out = m.loss(forget, None)
    x = forget["degraded"]
    with torch.no_grad():
        expected = F.l1_loss(m.model(x), reference(x).clamp(0, 1))
    torch.testing.assert_close(out["loss"].detach(), expected)
    assert not any(p.requires_grad for p in reference.parameters())
