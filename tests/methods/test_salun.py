"""salun: the saliency mask keeps the top fraction of |grad| and zeroes the other gradients."""

from __future__ import annotations

import pytest
import torch

from forgetir.config import ConfigError
from forgetir.methods import create_method

from conftest import make_batch


def test_mask_zeroes_masked_gradients(tiny):
    forget, retain = make_batch(1), make_batch(2)
    m = create_method("salun", tiny(), generator=torch.Generator().manual_seed(0))
    m.prepare(forget, retain)
    assert 0.5 <= m.mask_fraction() < 0.55  # top 50%, plus ties at the threshold
    m.loss(forget, retain)["loss"].backward()
    free = 0
    for p, mask in zip(m.trainable_parameters(), m.masks, strict=True):
        if p.grad is None:
            continue
        assert torch.count_nonzero(p.grad[mask == 0]) == 0
        free += int(torch.count_nonzero(p.grad[mask == 1]))
    assert free > 0


def test_masked_weights_do_not_move(tiny):
    forget, retain = make_batch(1), make_batch(2)
    m = create_method("salun", tiny(), overrides={"keep_ratio": 0.2})
    m.prepare(forget, retain)
    params = m.trainable_parameters()
    before = [p.detach().clone() for p in params]
    opt = torch.optim.Adam(params, lr=1e-3, weight_decay=m.default_optim["weight_decay"])
    m.loss(forget, retain)["loss"].backward()
    opt.step()
    moved = 0
    for p, b, mask in zip(params, before, m.masks, strict=True):
        assert torch.equal(p[mask == 0], b[mask == 0])
        moved += int((p != b).sum())
    assert moved > 0


def test_apply_mask_and_remove_hooks(tiny):
    forget = make_batch(1)
    m = create_method("salun", tiny(), overrides={"base": "gradient-ascent"})
    m.prepare(forget, None)
    m.remove_hooks()
    m.loss(forget, None)["loss"].backward()
    params = m.trainable_parameters()
    assert any(
        p.grad is not None and torch.count_nonzero(p.grad[k == 0]) > 0
        for p, k in zip(params, m.masks, strict=True)
    )  # without hooks the masked gradients are there...
    m.apply_mask()
    for p, k in zip(params, m.masks, strict=True):
        if p.grad is not None:
            assert torch.count_nonzero(p.grad[k == 0]) == 0  # ...until apply_mask


def test_first_loss_prepares_lazily(tiny):
    m = create_method("salun", tiny())
    with pytest.raises(RuntimeError, match="prepare"):
        m.mask_fraction()
    m.loss(make_batch(1), make_batch(2))
    assert m.masks is not None


def test_base_choice_is_validated(tiny):
    with pytest.raises(ConfigError, match="random-target"):
        create_method("salun", tiny(), overrides={"base": "salun"})
    m = create_method("salun", tiny(), overrides={"base": "encoder-noise"})
    assert {id(p) for p in m.trainable_parameters()} == {
        id(p) for p in m.model.encoder_parameters()
    }
    with pytest.raises(ConfigError, match="no_such"):
        create_method("salun", tiny(), overrides={"base_overrides": {"no_such": 1}})
