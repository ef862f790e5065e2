"""proxy-retrain: each loss term against a hand computation; mask, perturbation, config."""

from __future__ import annotations

import copy

import pytest
import torch

from forgetir.config import ConfigError
from forgetir.methods import create_method
from forgetir.methods.proxy_retrain import saliency_ratio

from conftest import make_batch


def _method(tiny, **overrides):
    return create_method(
        "proxy-retrain", tiny(), overrides=overrides, generator=torch.Generator().manual_seed(0)
    )


def test_loss_is_the_weighted_sum_of_the_two_terms_by_hand(tiny):
    forget, retain = make_batch(1), make_batch(2, task="derain")
    m = _method(tiny, w_f=0.7, w_r=1.9, keep_ratio=1.0, perturb=0.0)
    m.prepare(forget, retain)
    with torch.no_grad():  # move the model away from BEFORE so the retain term is not zero
        for p in m.model.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=torch.Generator().manual_seed(3)))
    out = m.loss(forget, retain)
    x_f, x_r = forget["degraded"], retain["degraded"]
    with torch.no_grad():
        forget_term = (m.model(x_f) - x_f).abs().mean()
        retain_term = (m.model(x_r) - m.original(x_r)).abs().mean()
    assert float(retain_term) > 1e-4
    assert out["forget_target_l1"] == pytest.approx(float(forget_term), rel=1e-5)
    assert out["retain_distill_l1"] == pytest.approx(float(retain_term), rel=1e-5)
    expected = 0.7 * forget_term + 1.9 * retain_term
    assert float(out["loss"].detach()) == pytest.approx(float(expected), rel=1e-5)


def test_retain_term_is_zero_at_before_and_needs_no_clean_targets(tiny):
    forget, retain = make_batch(1), make_batch(2)
    m = _method(tiny, perturb=0.0)
    m.prepare(forget, retain)
    no_clean = {"degraded": retain["degraded"]}
    out = m.loss({"degraded": forget["degraded"]}, no_clean)
    assert out["retain_distill_l1"] == pytest.approx(0.0, abs=1e-6)  # batched forward: ~1e-8
    assert "forget_psnr" not in out  # no clean forget target given: nothing to log


def test_saliency_ratio_by_hand():
    g_f = torch.tensor([1.0, -2.0, 0.5])
    g_r = torch.tensor([0.0, 2.0, -0.5])
    got = saliency_ratio(g_f, g_r, torch.tensor(0.5))
    assert torch.allclose(got, torch.tensor([1 / 0.5, 2 / 2.5, 0.5 / 1.0]))


def test_mask_keeps_the_ratio_and_masked_weights_do_not_move(tiny):
    forget, retain = make_batch(1), make_batch(2, task="derain")
    m = _method(tiny, keep_ratio=0.2, perturb=0.0)
    m.prepare(forget, retain)
    assert 0.2 <= m.mask_fraction() < 0.21
    params = list(m.model.parameters())
    start = [p.detach().clone() for p in params]
    opt = torch.optim.Adam(params, lr=1e-2)
    # Two steps: at step 0 the retain term sits at its minimum.
    for _ in range(2):
        opt.zero_grad()
        m.loss(forget, retain)["loss"].backward()
        opt.step()
    moved = 0
    for p, s, mask in zip(params, start, m.masks, strict=True):
        assert torch.equal(p[mask == 0], s[mask == 0])
        moved += int((p != s).sum())
    assert moved > 0


def test_perturbation_touches_only_the_free_weights_and_never_before(tiny):
    forget, retain = make_batch(1), make_batch(2)
    m = _method(tiny, keep_ratio=0.1, perturb=1.0)
    frozen = {k: v.clone() for k, v in m.original.state_dict().items()}
    start = [p.detach().clone() for p in m.model.parameters()]
    m.prepare(forget, retain)
    changed = 0
    for p, s, mask in zip(m.model.parameters(), start, m.masks, strict=True):
        assert torch.equal(p[mask == 0], s[mask == 0])
        changed += int((p != s).sum())
    assert changed > 0
    for k, v in m.original.state_dict().items():
        assert torch.equal(v, frozen[k])


def test_reference_target_needs_a_reference(tiny):
    with pytest.raises(ConfigError, match="reference"):
        _method(tiny, forget_target="reference")


@pytest.mark.parametrize(
    "bad",
    [
        {"keep_ratio": 0.0},
        {"perturb": -1.0},
        {"forget_target": "zero"},
        {"w_f": -1.0},
        {"guard_step": -1e-3},
        {"w_g": -1.0},
        {"guard_depth": 0},
    ],
)
def test_config_rejects_bad_values(tiny, bad):
    with pytest.raises(ConfigError):
        _method(tiny, **bad)


def test_retain_focus_weights_tasks_by_softmax_of_their_drift_by_hand(tiny):
    m = _method(tiny, retain_focus=0.5)
    out = torch.zeros(3, 3, 2, 2)
    target = torch.zeros(3, 3, 2, 2)
    target[0] += 0.1  # task a: L1 0.1
    target[1] += 0.3  # task b: two images, L1 0.3 and 0.1 -> 0.2
    target[2] += 0.1
    got = m.retain_term(out, target, ["a", "b", "b"])
    la, lb = 0.1, 0.2
    scale = 0.5 * (la + lb) / 2
    wa, wb = torch.softmax(torch.tensor([la / scale, lb / scale]), 0).tolist()
    assert float(got) == pytest.approx(wa * la + wb * lb, rel=1e-6)
    plain = _method(tiny).retain_term(out, target, ["a", "b", "b"])
    assert float(plain) == pytest.approx((0.1 + 0.3 + 0.1) / 3, rel=1e-6)


def test_guard_term_is_the_forget_term_after_one_simulated_relearning_step_by_hand(tiny):
    forget, retain = make_batch(1), make_batch(2, task="derain")
    m = _method(tiny, w_f=0.7, w_r=1.9, w_g=1.3, guard_step=1e-2, keep_ratio=0.5)
    m.prepare(forget, retain)
    x_f, y_f = forget["degraded"], forget["clean"]
    # The attacker: one sign step of L1(N(x_f), y_f) on every weight (not only the free ones).
    attacker = copy.deepcopy(m.original)
    for p in attacker.parameters():
        p.requires_grad_(True)
    (attacker(x_f) - y_f).abs().mean().backward()
    with torch.no_grad():
        for p in attacker.parameters():
            if p.grad is not None:  # weights the forward does not use stay put
                p.sub_(1e-2 * p.grad.sign())
        guard = (attacker(x_f) - x_f).abs().mean()
        forget_term = (m.model(x_f) - x_f).abs().mean()
    out = m.loss(forget, retain)
    assert out["guard_l1"] == pytest.approx(float(guard), rel=1e-5)
    expected = 0.7 * forget_term + 1.3 * guard  # the retain term is 0 at BEFORE
    assert float(out["loss"].detach()) == pytest.approx(float(expected), rel=1e-5)
    # First order: the guard's gradient reaches the real weights through theta - delta, masked.
    m.model.zero_grad()
    out["loss"].backward()
    for p, mask in zip(m.model.parameters(), m.masks, strict=True):
        if p.grad is not None:
            assert torch.all(p.grad[mask == 0] == 0)


def test_guard_needs_clean_forget_targets_and_is_off_by_default(tiny):
    forget, retain = make_batch(1), make_batch(2)
    m = _method(tiny)
    m.prepare(forget, retain)
    assert "guard_l1" not in m.loss(forget, retain)
    guarded = _method(tiny, guard_step=1e-3)
    guarded.prepare(forget, retain)
    with pytest.raises(ValueError, match="clean"):
        guarded.loss({"degraded": forget["degraded"]}, retain)


def test_deeper_guard_takes_each_simulated_step_from_where_the_last_left_by_hand(tiny):
    forget, retain = make_batch(1), make_batch(2, task="derain")
    m = _method(tiny, guard_step=1e-2, guard_depth=2)
    m.prepare(forget, retain)
    x_f, y_f = forget["degraded"], forget["clean"]
    attacker = copy.deepcopy(m.original)
    for p in attacker.parameters():
        p.requires_grad_(True)
    for _ in range(2):
        attacker.zero_grad()
        (attacker(x_f) - y_f).abs().mean().backward()
        with torch.no_grad():
            for p in attacker.parameters():
                if p.grad is not None:
                    p.sub_(1e-2 * p.grad.sign())
    with torch.no_grad():
        guard = (attacker(x_f) - x_f).abs().mean()
    assert m.loss(forget, retain)["guard_l1"] == pytest.approx(float(guard), rel=1e-5)


def test_guard_on_a_model_with_auxiliary_losses_backpropagates():
    """MoCE-IR records its routers' balance loss on every training forward: the guard's
    simulated attacker forwards (whose graph its own grad frees) must not add theirs."""
    from forgetir.models import create_model
    from forgetir.models.base import collect_aux_losses

    torch.manual_seed(0)
    model = create_model("moceir-tiny")
    method = create_method("proxy-retrain", model, None, {"guard_step": 1e-3}, "retrain-like")
    g = torch.Generator().manual_seed(0)
    batch = {"degraded": torch.rand(2, 3, 32, 32, generator=g)}
    batch["clean"] = batch["degraded"].clone()
    method.prepare(batch, batch)
    with collect_aux_losses(model) as aux:
        out = method.loss(batch, batch)
    # the step's forward and the guard's forward through θ - δ; not the attacker's (3 before)
    assert len(aux) == 2
    (out["loss"] + sum(aux)).backward()


def test_content_target_is_the_input_plus_what_before_does_to_the_clean_image_by_hand(tiny):
    forget, retain = make_batch(1), make_batch(2, task="derain")
    m = _method(tiny, forget_target="content", w_f=1.0, keep_ratio=1.0)
    m.prepare(forget, retain)
    x_f, y_f = forget["degraded"], forget["clean"]
    with torch.no_grad():
        target = x_f + m.original(y_f) - y_f
        forget_term = (m.model(x_f) - target).abs().mean()
        identity_term = (m.model(x_f) - x_f).abs().mean()
    out = m.loss(forget, retain)
    assert out["forget_target_l1"] == pytest.approx(float(forget_term), rel=1e-5)
    assert abs(float(forget_term) - float(identity_term)) > 1e-4  # not the identity target


def test_content_target_needs_clean_forget_images(tiny):
    forget, retain = make_batch(1), make_batch(2)
    m = _method(tiny, forget_target="content")
    with pytest.raises(ValueError, match="clean"):
        m.prepare({"degraded": forget["degraded"]}, retain)


def test_full_preset_frees_every_weight_and_weights_the_identity_forget_term_4(tiny):
    forget, retain = make_batch(1), make_batch(2, task="derain")
    m = create_method("proxy-retrain-full", tiny(), generator=torch.Generator().manual_seed(0))
    assert m.default_optim["lr"] == 1e-3
    assert m.recommended_schedule == {"steps": 60, "batch_size": 8, "patch_size": 64}
    m.prepare(forget, retain)
    assert m.mask_fraction() == pytest.approx(1.0)
    x_f = forget["degraded"]
    with torch.no_grad():
        forget_term = (m.model(x_f) - x_f).abs().mean()
    out = m.loss(forget, retain)  # the retain term is 0 at BEFORE
    assert float(out["loss"].detach()) == pytest.approx(4.0 * float(forget_term), rel=1e-5)


def test_full_preset_rejects_bad_values(tiny):
    with pytest.raises(ConfigError, match="keep_ratio"):
        create_method("proxy-retrain-full", tiny(), overrides={"keep_ratio": 2.0})
