"""retrain, scrub, bad-teacher, random-target: the behaviour each baseline promises."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from forgetir.methods import create_method

from conftest import make_batch


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sb = b.state_dict()
    return all(torch.equal(v, sb[k]) for k, v in a.state_dict().items())


def test_retrain_reinitialises_reproducibly(tiny):
    a = create_method("retrain", tiny(), generator=torch.Generator().manual_seed(3))
    b = create_method("retrain", tiny(), generator=torch.Generator().manual_seed(3))
    c = create_method("retrain", tiny(), generator=torch.Generator().manual_seed(4))
    assert _same(a.model, b.model) and not _same(a.model, c.model)
    assert not _same(a.model, a.original) and _same(a.original, tiny())


def test_retrain_needs_a_registered_model():
    with pytest.raises(ValueError, match="forgetir_spec"):
        create_method("retrain", torch.nn.Conv2d(3, 3, 3))


def test_scrub_alternates_and_limits_max_steps(tiny):
    b = make_batch(1)
    m = create_method("scrub", tiny(), overrides={"max_steps": 2})
    phases = [m.loss(b, b)["max_step"] for _ in range(6)]
    assert phases == [1.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    m3 = create_method("scrub", tiny(), overrides={"max_every": 3})
    assert [m3.loss(b, b)["max_step"] for _ in range(4)] == [1.0, 0.0, 0.0, 1.0]


def test_scrub_min_step_formula(tiny):
    b = make_batch(1)
    m = create_method("scrub", tiny(), overrides={"gamma": 0.5, "alpha": 2.0})
    m.loss(b, b)  # max step
    out = m.loss(b, b)
    with torch.no_grad():
        o, t = m.model(b["degraded"]), m.original(b["degraded"])
    expected = 0.5 * F.l1_loss(o, b["clean"]) + 2.0 * F.l1_loss(o, t)
    torch.testing.assert_close(out["loss"].detach(), expected)


def test_bad_teacher_is_a_frozen_random_model(tiny):
    b = make_batch(1)
    m = create_method("bad-teacher", tiny(), generator=torch.Generator().manual_seed(0))
    assert not any(p.requires_grad for p in m.bad_teacher.parameters())
    assert not _same(m.bad_teacher, m.original)
    out = m.loss(b, b)
    with torch.no_grad():
        expected = F.l1_loss(m.model(b["degraded"]), m.bad_teacher(b["degraded"]))
    assert out["teacher_l1"] == pytest.approx(float(expected), rel=1e-5)
    assert out["retain_teacher_l1"] == 0.0  # the student starts as the competent teacher


def test_bad_teacher_retrain_like_teaches_identity(tiny):
    b = make_batch(1)
    m = create_method("bad-teacher", tiny(), target="retrain-like")
    assert m.bad_teacher is None
    out = m.loss(b, b)
    with torch.no_grad():
        expected = F.l1_loss(m.model(b["degraded"]), b["degraded"])
    assert out["teacher_l1"] == pytest.approx(float(expected), rel=1e-5)


def test_random_target_kinds_and_retrain_like(tiny):
    b = make_batch(1)
    for kind in ("perturbed", "gaussian"):
        m = create_method("random-target", tiny(), overrides={"kind": kind, "w_r": 0.0})
        assert torch.isfinite(m.loss(b, None)["loss"])
    m = create_method("random-target", tiny(), overrides={"w_r": 0.0}, target="retrain-like")
    out = m.loss(b, None)
    with torch.no_grad():
        expected = F.l1_loss(m.model(b["degraded"]), b["degraded"])
    torch.testing.assert_close(out["loss"].detach(), expected)


def test_neggrad_plus_formula(tiny):
    f, r = make_batch(1), make_batch(2)
    m = create_method("neggrad-plus", tiny(), overrides={"alpha": 0.8})
    out = m.loss(f, r)
    with torch.no_grad():
        of, orr = m.model(f["degraded"]), m.model(r["degraded"])
    expected = 0.8 * F.l1_loss(orr, r["clean"]) - 0.2 * F.l1_loss(of, f["clean"])
    torch.testing.assert_close(out["loss"].detach(), expected, rtol=1e-5, atol=1e-6)
