"""orbit-consistency: the orbit target, the level term and the loss against hand computations."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from forgetir.config import ConfigError
from forgetir.methods import create_method
from forgetir.methods.orbit_consistency import OPS, per_image_psnr

from conftest import make_batch


def _method(model: nn.Module, **overrides):
    return create_method(
        "orbit-consistency", model, overrides=overrides, generator=torch.Generator().manual_seed(0)
    )


@pytest.mark.parametrize("ops", list(OPS))
def test_each_op_is_undone_by_its_inverse(ops):
    x = torch.rand(2, 3, 8, 8)
    for name, (forward, inverse) in OPS[ops].items():
        assert torch.equal(inverse(forward(x)), x), name
        assert not torch.equal(forward(x), x), name  # no identity among them


def test_the_dihedral_ops_are_the_seven_non_identity_elements():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    images = {tuple(forward(x).flatten().tolist()) for forward, _ in OPS["dihedral"].values()}
    assert len(images) == 7 and tuple(x.flatten().tolist()) not in images


class _Asymmetric(nn.Module):
    """Adds a fixed, orientation-specific pattern: not equivariant under any flip."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.linspace(0, 1, 16).view(1, 1, 4, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.1 * self.w


def test_orbit_target_by_hand_and_zero_for_an_equivariant_model():
    x = torch.rand(2, 3, 4, 4)
    m = _method(_Asymmetric(), ops="flips")
    want = sum(inv(m.model(fwd(x))) for fwd, inv in OPS["flips"].values()) / 3
    assert torch.allclose(m.orbit_target(x), want)
    ident = _method(nn.Sequential(nn.Identity(), nn.Conv2d(3, 3, 1)))
    with torch.no_grad():  # a 1x1 convolution commutes with every flip and rotation
        out = ident.loss({"degraded": x}, {"degraded": x})
    assert out["forget_orbit_l1"] == pytest.approx(0.0, abs=1e-6)


def test_loss_is_the_weighted_sum_of_the_terms(tiny):
    forget, retain = make_batch(1, size=16), make_batch(2, size=16, task="derain")
    m = _method(tiny(), w_f=0.7, w_r=1.9, w_level=0.0, retain_orbit=False)
    with torch.no_grad():  # move away from BEFORE so the retain term is not zero
        for p in m.model.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=torch.Generator().manual_seed(3)))
    out = m.loss(forget, retain)
    with torch.no_grad():
        x_f, x_r = forget["degraded"], retain["degraded"]
        forget_term = (m.model(x_f) - m.orbit_target(x_f)).abs().mean()
        retain_term = (m.model(x_r) - m.original(x_r)).abs().mean()
    assert float(retain_term) > 1e-4
    assert out["forget_orbit_l1"] == pytest.approx(float(forget_term), rel=1e-4)
    assert out["retain_distill_l1"] == pytest.approx(float(retain_term), rel=1e-4)
    expected = 0.7 * forget_term + 1.9 * retain_term
    assert float(out["loss"].detach()) == pytest.approx(float(expected), rel=1e-4)


def test_retain_orbit_distils_before_on_a_transformed_copy_too():
    model = _Asymmetric()
    m = _method(model, w_f=0.0, w_r=1.0, w_level=0.0, ops="flips")
    with torch.no_grad():
        model.w.add_(0.5)  # now N differs from BEFORE by a constant 0.05 everywhere
    x = torch.rand(2, 3, 4, 4) * 0.5
    out = m.loss({"degraded": x}, {"degraded": x})
    assert out["retain_distill_l1"] == pytest.approx(0.05, rel=1e-4)
    seen = []
    m.original.register_forward_hook(lambda mod, inp, o: seen.append(inp[0].shape[0]))
    m.loss({"degraded": x}, {"degraded": x})
    assert seen == [4]  # the retain images and one transformed copy of them


def test_level_term_pushes_only_images_above_befores_transformed_retain_level():
    model = nn.Conv2d(3, 3, 1)
    m = _method(model, w_f=0.0, w_r=0.0, w_level=1.0, ops="flips")
    clean = torch.rand(2, 3, 8, 8)
    retain = {"degraded": clean, "clean": clean, "task": ["t", "t"]}
    forget = {"degraded": clean, "clean": clean, "task": ["t", "t"]}
    out = m.loss(forget, retain)
    with torch.no_grad():
        before = per_image_psnr(m.original(clean), clean)  # flips commute with a 1x1 conv
        now = per_image_psnr(m.model(clean), clean)
    tau = m.tau("t")
    assert tau == pytest.approx(float(before.mean()), rel=1e-5)
    assert out["forget_above_level_db"] == pytest.approx(
        float(torch.relu(now - tau).mean()), rel=1e-5
    )
    assert m.tau("unseen") is None


def test_one_step_lowers_a_memorised_orientation_and_leaves_the_original_alone(tiny):
    forget, retain = make_batch(1, size=16), make_batch(2, size=16)
    m = _method(tiny())
    frozen = [p.clone() for p in m.original.parameters()]
    out = m.loss(forget, retain)
    out["loss"].backward()
    assert torch.isfinite(out["loss"])
    assert all(torch.equal(a, b) for a, b in zip(frozen, m.original.parameters(), strict=True))


def test_dihedral_needs_square_patches_and_config_is_checked(tiny):
    m = _method(tiny())
    rect = torch.rand(1, 3, 16, 24)
    with pytest.raises(ValueError, match="square patches or ops=flips"):
        m.orbit_target(rect)
    with pytest.raises(ConfigError, match="valid: dihedral, flips"):
        _method(tiny(), ops="rotations")
    with pytest.raises(ConfigError, match="must be >= 0"):
        _method(tiny(), w_level=-1.0)


def test_the_class_configuration_is_the_same_loss_with_its_own_defaults(tiny):
    m = create_method("orbit-consistency-class", tiny())
    assert (m.cfg.w_f, m.cfg.w_r, m.cfg.retain_orbit) == (4.0, 16.0, False)
    b = make_batch(1, size=16)
    assert torch.isfinite(m.loss(b, b)["loss"])
