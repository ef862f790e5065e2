"""Checks generated from the model registry: every registered model is covered.

Tiny variants (``*-tiny``) get the thorough checks (odd sizes, finite outputs and gradients,
``encode``, batch independence). The full-size models are forwarded exactly once in the whole
suite (odd size, no gradients) and otherwise only built: their state_dict must equal the
official key list in ``data/<name>_keys.tsv`` entry for entry, and their parameter count the
published one.
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path

import pytest
import torch
from torch import nn

from forgetir.errors import InvalidInputError
from forgetir.models import RestorationModel, create_model, list_models, model_args

DATA = Path(__file__).parent / "data"
TINY = [name for name in list_models() if name.endswith("-tiny")]
FULL = [name for name in list_models() if not name.endswith("-tiny")]
# Published parameter counts of the official architectures at their default arguments.
PUBLISHED_PARAMS = {
    "promptir": 35_592_263,
    "adair": 28_784_824,
    "moceir": 25_353_796,  # MoCE-IR, width 48
    "moceir-s": 11_477_752,  # MoCE-IR-S, width 32
}


@pytest.fixture(autouse=True, scope="module")
def _free_full_models():
    yield
    _model.cache_clear()  # the full models hold about 250 MB of parameters


@cache
def _model(name: str) -> nn.Module:
    torch.manual_seed(0)
    return create_model(name).eval()


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def _keys(name: str) -> list[tuple[str, tuple[int, ...]]]:
    rows = (DATA / f"{name}_keys.tsv").read_text().strip().split("\n")
    out = []
    for row in rows:
        key, shape = row.split("\t")
        out.append((key, tuple(int(s) for s in shape.strip("()").split(",") if s.strip())))
    return out


def test_registry_has_tiny_and_full_models() -> None:
    assert {"promptir", "promptir-tiny", "adair", "adair-tiny"} <= set(list_models())
    # One tiny variant per family: moceir and moceir-s share moceir-tiny.
    families = {name.split("-")[0] for name in FULL}
    assert all(f"{f}-tiny" in TINY for f in families), "every model family needs a tiny variant"


@pytest.mark.parametrize("name", list_models())
def test_models_are_restoration_models_with_a_rebuild_spec(name: str) -> None:
    model = _model(name)
    assert isinstance(model, RestorationModel)
    assert model.forgetir_spec == {"name": name, "args": model_args(name)}


@pytest.mark.parametrize("name", FULL)
def test_full_model_matches_the_official_key_list(name: str) -> None:
    if not (DATA / f"{name}_keys.tsv").exists():
        pytest.fail(f"no official key list for full model {name!r} in {DATA}")
    ours = [(k, tuple(v.shape)) for k, v in _model(name).state_dict().items()]
    assert ours == _keys(name)


@pytest.mark.parametrize("name", FULL)
def test_full_model_parameter_count(name: str) -> None:
    assert name in PUBLISHED_PARAMS, f"add the published parameter count of {name!r}"
    assert sum(p.numel() for p in _model(name).parameters()) == PUBLISHED_PARAMS[name]


@pytest.mark.parametrize("name", FULL)
def test_full_model_forward_once_on_odd_size(name: str) -> None:
    x = _rand(1, 3, 37, 53)
    with torch.no_grad():
        out = _model(name)(x)
    assert out.shape == x.shape and torch.isfinite(out).all()


@pytest.mark.parametrize("name", TINY)
@pytest.mark.parametrize("size", [(37, 53), (8, 8), (5, 3)])
def test_tiny_forward_backward_is_finite_on_any_size(name: str, size: tuple[int, int]) -> None:
    model = _model(name)
    model.zero_grad(set_to_none=True)
    x = _rand(2, 3, *size).requires_grad_()
    out = model(x)
    assert out.shape == x.shape and torch.isfinite(out).all()
    out.square().mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert len(grads) > len(list(model.parameters())) // 2
    assert all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", TINY)
def test_tiny_samples_in_a_batch_are_independent(name: str) -> None:
    model = _model(name)
    x = _rand(3, 3, 16, 24)
    with torch.no_grad():
        batched = model(x)
        single = torch.cat([model(x[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", TINY)
def test_tiny_encode_shape_and_encoder_parameters(name: str) -> None:
    model = _model(name)
    model.zero_grad(set_to_none=True)
    h, w = 37, 53
    feats = model.encode(_rand(2, 3, h, w))
    m = model.size_multiple
    assert feats.shape[0] == 2 and feats.shape[-2:] == (math.ceil(h / m), math.ceil(w / m))
    feats.square().mean().backward()
    with_grad = {id(p) for p in model.parameters() if p.grad is not None}
    assert with_grad == {id(p) for p in model.encoder_parameters()}


def test_create_model_unknown_name_lists_the_valid_choices() -> None:
    with pytest.raises(KeyError) as err:
        create_model("promptir-huge")
    for name in list_models():
        assert name in str(err.value)


@pytest.mark.parametrize("name", TINY)
def test_create_model_unknown_override_lists_the_valid_arguments(name: str) -> None:
    with pytest.raises(InvalidInputError, match=r"unknown argument\(s\) \['widht'\].*valid: .*dim"):
        create_model(name, widht=8)


@pytest.mark.parametrize("name", TINY)
def test_overrides_reach_the_constructor(name: str) -> None:
    model = create_model(name, dim=8)
    assert model.forgetir_spec["args"]["dim"] == 8
    assert model.patch_embed.proj.weight.shape[0] == 8
