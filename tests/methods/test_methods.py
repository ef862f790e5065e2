"""Tests generated from the method registry: every method, on every real tiny model."""

from __future__ import annotations

import json
import math

import pytest
import torch

from forgetir.config import ConfigError
from forgetir.methods import TARGETS, create_method, get_method, list_methods

from conftest import TINY_MODELS, make_batch

METHODS = list_methods()


def _steps(method, forget, retain, n: int = 2) -> list[dict]:
    opt = torch.optim.Adam(method.trainable_parameters(), lr=1e-3)
    outs = []
    for _ in range(n):
        opt.zero_grad()
        out = method.loss(
            forget if method.needs_forget else None, retain if method.needs_retain else None
        )
        out["loss"].backward()
        opt.step()
        outs.append(out)
    return outs


def test_registry_is_complete():
    expected = {
        "accurate-forgetting", "encoder-noise", "retrain", "finetune", "gradient-ascent",
        "neggrad-plus", "random-target", "scrub", "bad-teacher", "salun",
    }  # fmt: skip
    assert expected <= set(METHODS)


@pytest.mark.parametrize("model_name", TINY_MODELS)
@pytest.mark.parametrize("name", METHODS)
def test_steps_are_finite_change_model_keep_original(name, model_name, tiny):
    method = create_method(name, tiny(model_name), generator=torch.Generator().manual_seed(0))
    frozen = {k: v.clone() for k, v in method.original.state_dict().items()}
    before = [p.detach().clone() for p in method.trainable_parameters()]
    forget, retain = make_batch(1), make_batch(2, task="derain")
    method.prepare(forget, retain)
    # Two steps: SCRUB's first (max) step starts at its own teacher, where L1 has zero gradient.
    for out in _steps(method, forget, retain):
        assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])
        for key, value in out.items():
            if key != "loss":
                assert isinstance(value, float) and math.isfinite(value), key
    after = method.trainable_parameters()
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    for key, value in method.original.state_dict().items():
        assert torch.equal(value, frozen[key]), f"original changed at {key}"
    assert not any(p.requires_grad for p in method.original.parameters())
    assert not method.original.training


@pytest.mark.parametrize("name", METHODS)
def test_given_original_is_used_and_frozen(name, tiny):
    model, original = tiny(), tiny()
    method = create_method(name, model, original=original)
    assert method.original is original
    assert not any(p.requires_grad for p in original.parameters())
    assert not original.training


@pytest.mark.parametrize("name", METHODS)
def test_config_rejects_unknown_keys(name, tiny):
    with pytest.raises(ConfigError) as err:
        create_method(name, tiny(), overrides={"no_such_key": 1})
    assert "no_such_key" in str(err.value) and "valid" in str(err.value)
    assert name in str(err.value)


@pytest.mark.parametrize("name", METHODS)
def test_class_contract(name):
    cls = get_method(name)
    assert cls.name == name and cls.summary
    cls.Config()  # every hyperparameter has a default
    assert {"name", "lr", "weight_decay"} <= set(cls.default_optim)


@pytest.mark.parametrize("name", METHODS)
def test_describe_is_json(name, tiny):
    info = create_method(name, tiny()).describe()
    assert json.loads(json.dumps(info))["name"] == name


def test_unknown_method_lists_choices(tiny):
    with pytest.raises(KeyError) as err:
        create_method("forget-everything", tiny())
    for name in METHODS:
        assert name in str(err.value)


def test_unknown_target_lists_choices(tiny):
    with pytest.raises(ValueError) as err:
        create_method("accurate-forgetting", tiny(), target="oblivion")
    for t in TARGETS:
        assert t in str(err.value)


@pytest.mark.parametrize("name", METHODS)
def test_retrain_like_supported_or_refused(name, tiny):
    cls = get_method(name)
    forget, retain = make_batch(1), make_batch(2)
    if cls.retrain_like is None:
        with pytest.raises(ValueError) as err:
            create_method(name, tiny(), target="retrain-like")
        assert "collapse" in str(err.value) and "accurate-forgetting" in str(err.value)
        return
    method = create_method(name, tiny(), target="retrain-like")
    (out,) = _steps(method, forget, retain, n=1)
    assert method.target == "retrain-like" and torch.isfinite(out["loss"])


@pytest.mark.parametrize("name", [m for m in METHODS if get_method(m).needs_forget])
def test_missing_forget_batch_is_a_clear_error(name, tiny):
    method = create_method(name, tiny())
    with pytest.raises(ValueError, match=name):
        method.loss(None, make_batch(2))


def test_missing_key_is_a_clear_error(tiny):
    method = create_method("finetune", tiny())
    with pytest.raises(ValueError, match="'clean'"):
        method.loss(None, {"degraded": torch.rand(1, 3, 16, 16)})


def test_original_must_not_be_the_model_itself(tiny):
    model = tiny()
    with pytest.raises(ValueError, match="original"):
        create_method("finetune", model, original=model)
    assert all(p.requires_grad for p in model.parameters())


def test_batch_shard_draws_the_ranks_rows_of_the_global_noise():
    """Under torchrun each rank perturbs its rows exactly as one process perturbs the whole
    batch (the same generator state on every rank)."""
    from forgetir.methods.base import batch_shard, uniform_perturbed

    y = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    whole = uniform_perturbed(y, 0.5, torch.Generator().manual_seed(7))
    halves = []
    for rank in range(2):
        with batch_shard(rank, 2):
            part = y[2 * rank : 2 * rank + 2]
            halves.append(uniform_perturbed(part, 0.5, torch.Generator().manual_seed(7)))
    assert torch.equal(torch.cat(halves), whole)
