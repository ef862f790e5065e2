"""PromptIR-specific checks: derived channel plan, prompt block, fast == plain, residual."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from forgetir.models.factory import create_model
from forgetir.models.layers import set_reference_mode
from forgetir.models.promptir import PromptGenBlock, PromptIR, default_prompt_dims

DATA = Path(__file__).parent / "data"
SMALL = {"num_blocks": (1, 1, 1, 1), "num_refinement_blocks": 1}


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def test_default_prompt_dims_reproduce_the_official_ones_and_scale() -> None:
    assert default_prompt_dims(48) == (64, 128, 320)
    assert default_prompt_dims(16) == (24, 40, 104)
    assert default_prompt_dims(96) == (128, 256, 640)
    assert all(p % 8 == 0 and p >= 8 for d in (2, 8, 24, 40) for p in default_prompt_dims(d))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"dim": 16},
        {"dim": 8, "heads": (1, 1, 2, 2)},
        {"dim": 24, "heads": (2, 2, 2, 2), "prompt_sizes": (8, 4, 2)},
        {"dim": 16, "prompt_dims": (8, 16, 24), "noise_heads": 2, "prompt_len": 3},
        {"dim": 16, "layer_norm_type": "BiasFree", "bias": True},
    ],
)
def test_any_width_builds_and_runs(kwargs: dict) -> None:
    model = PromptIR(**{**SMALL, "prompt_sizes": (8, 8, 4), **kwargs})
    with torch.no_grad():
        out = model(_rand(1, 3, 19, 12))
    assert out.shape == (1, 3, 19, 12) and torch.isfinite(out).all()
    c = kwargs["dim"]
    p1, p2, p3 = kwargs.get("prompt_dims") or default_prompt_dims(c)
    assert model.noise_level3.norm1.body.weight.shape == (8 * c + p3,)
    assert model.reduce_noise_level3.weight.shape == (4 * c, 8 * c + p3, 1, 1)
    assert model.noise_level2.norm1.body.weight.shape == (4 * c + p2,)
    assert model.noise_level1.norm1.body.weight.shape == (2 * c + p1,)
    assert model.prompt3.linear_layer.weight.shape[1] == 8 * c
    assert model.prompt1.prompt_param.shape[1] == kwargs.get("prompt_len", 5)


def test_layout_at_full_depth_keeps_the_official_names_at_any_width() -> None:
    expected = [
        line.split("\t")[0] for line in (DATA / "promptir_keys.tsv").read_text().split("\n")
    ]
    model = PromptIR(dim=16, prompt_sizes=(4, 4, 4))
    assert list(model.state_dict()) == [k for k in expected if k]


def test_noise_heads_default_to_heads2_or_its_largest_fitting_divisor() -> None:
    assert PromptIR(dim=16, **SMALL).noise_level1.attn.num_heads == 4
    # 2*16 + 10 = 42 channels is not divisible by heads[2] = 4: the default drops to 2.
    model = PromptIR(dim=16, prompt_dims=(10, 16, 24), **SMALL)
    assert {model.noise_level1.attn.num_heads, model.noise_level3.attn.num_heads} == {2}
    assert PromptIR(dim=16, noise_heads=1, **SMALL).noise_level2.attn.num_heads == 1


def test_unused_official_modules_are_registered_with_derived_shapes() -> None:
    model = PromptIR(dim=16, **SMALL)
    p1, p2, p3 = default_prompt_dims(16)
    assert model.chnl_reduce1.weight.shape == (p1, p1, 1, 1)
    assert model.chnl_reduce3.weight.shape[1] == p3
    assert model.reduce_noise_channel_2.weight.shape == (32, 32 + p2, 1, 1)


def test_bad_arguments_name_the_argument() -> None:
    with pytest.raises(ValueError, match="'num_blocks' needs 4 values"):
        PromptIR(num_blocks=(1, 1, 1))
    with pytest.raises(ValueError, match=r"noise_heads=5 must divide .*noise_level1 \(56\)"):
        PromptIR(dim=16, noise_heads=5, **SMALL)
    with pytest.raises(ValueError, match="inp_channels"):
        PromptIR(dim=16, out_channels=1, **SMALL)
    with pytest.raises(ValueError, match="'heads' needs 4 values, got 4"):
        PromptIR(dim=16, heads=4, **SMALL)
    with pytest.raises(ValueError, match="'dim' must be a positive even number"):
        PromptIR(dim=15, **SMALL)
    with pytest.raises(ValueError, match="not divisible by num_heads 3"):
        PromptIR(dim=16, heads=(1, 3, 4, 8), **SMALL)


def test_prompt_block_mixes_prompts_with_softmax_weights() -> None:
    block = PromptGenBlock(prompt_dim=4, prompt_len=3, prompt_size=5, lin_dim=6)
    x = _rand(2, 6, 7, 9)
    weights = torch.softmax(block.linear_layer(x.mean((-2, -1))), dim=1)
    mixed = torch.stack([(w[:, None, None, None] * block.prompt_param[0]).sum(0) for w in weights])
    resized = torch.nn.functional.interpolate(mixed, (7, 9), mode="bilinear", align_corners=False)
    expected = block.conv3x3(resized)
    for reference in (False, True):
        set_reference_mode(block, reference)
        torch.testing.assert_close(block(x), expected, atol=1e-6, rtol=1e-5)


def _fast_and_plain(dtype: torch.dtype) -> list[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    torch.manual_seed(0)
    model = create_model("promptir-tiny").to(dtype)
    with torch.no_grad():  # move norms/temperatures off their trivial initial values
        for name, p in model.named_parameters():
            if "body" in name or "temperature" in name:
                p.add_(0.2 * torch.randn_like(p))
    x = _rand(2, 3, 24, 16).to(dtype)
    results = []
    for plain in (False, True):
        set_reference_mode(model, plain)
        model.zero_grad()
        out = model(x)
        out.square().mean().backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((out.detach(), grads))
    return results


def test_fast_and_plain_paths_agree_in_float32() -> None:
    (fast, _), (plain, _) = _fast_and_plain(torch.float32)
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-5)


def test_fast_and_plain_paths_agree_in_float64_with_gradients() -> None:
    # float64 removes summation-order noise, so any real difference between the paths shows.
    (fast, fast_grads), (plain, plain_grads) = _fast_and_plain(torch.float64)
    torch.testing.assert_close(fast, plain, atol=1e-10, rtol=1e-10)
    assert fast_grads.keys() == plain_grads.keys()
    assert not any(k.startswith(("chnl_reduce", "reduce_noise_channel")) for k in fast_grads)
    for name in fast_grads:
        torch.testing.assert_close(fast_grads[name], plain_grads[name], atol=1e-10, rtol=1e-8)


def test_output_is_the_input_plus_the_output_conv() -> None:
    model = create_model("promptir-tiny")
    with torch.no_grad():
        model.output.weight.zero_()
    x = _rand(1, 3, 16, 16)
    torch.testing.assert_close(model(x), x)


def test_encoder_parameters_are_exactly_the_encoder_modules() -> None:
    model = create_model("promptir-tiny")
    ids = {id(p) for p in model.encoder_parameters()}
    prefixes = ("patch_embed.", "encoder_level", "down", "latent.")
    expected = {id(p) for n, p in model.named_parameters() if n.startswith(prefixes)}
    assert ids == expected
    assert not any(n.startswith("prompt") for n, p in model.named_parameters() if id(p) in ids)
