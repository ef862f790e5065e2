"""Shared Restormer layers: fast paths equal the published arithmetic, names match checkpoints."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from forgetir.models.layers import (
    Attention,
    Downsample,
    FeedForward,
    LayerNorm2d,
    OverlapPatchEmbed,
    TransformerBlock,
    Upsample,
    set_reference_mode,
    transformer_stack,
)


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _randomise(module: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    """Non-trivial norm weights/biases and temperatures (the defaults are ones and zeros)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(p + 0.3 * torch.randn(p.shape, generator=gen))
    return module


def _explicit_layer_norm(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """Per-pixel normalisation over channels, written out in float64."""
    xd = x.double()
    mu = xd.mean(1, keepdim=True)
    var = ((xd - mu) ** 2).mean(1, keepdim=True)
    if b is None:  # BiasFree: divide by the standard deviation, no centring
        return (xd / torch.sqrt(var + 1e-5) * w.double()[:, None, None]).float()
    out = (xd - mu) / torch.sqrt(var + 1e-5) * w.double()[:, None, None] + b.double()[:, None, None]
    return out.float()


@pytest.mark.parametrize("kind", ["WithBias", "BiasFree"])
@pytest.mark.parametrize("reference", [False, True])
def test_layer_norm_matches_explicit_formula(kind: str, reference: bool) -> None:
    norm = set_reference_mode(_randomise(LayerNorm2d(12, kind)), reference)
    x = _rand(2, 12, 5, 7) * 3 + 1
    bias = norm.body.bias if kind == "WithBias" else None
    expected = _explicit_layer_norm(x, norm.body.weight, bias)
    torch.testing.assert_close(norm(x), expected, atol=1e-5, rtol=1e-5)


def test_layer_norm_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="'WithBias', 'BiasFree'"):
        LayerNorm2d(8, "withbias")


def _reference_attention(att: Attention, x: torch.Tensor) -> torch.Tensor:
    """MDTA written per head with explicit loops, independent of both code paths."""
    b, c, h, w = x.shape
    qkv = att.qkv_dwconv(att.qkv(x))
    q, k, v = qkv[:, :c], qkv[:, c : 2 * c], qkv[:, 2 * c :]
    ch = c // att.num_heads
    outs = []
    for i in range(att.num_heads):
        sl = slice(i * ch, (i + 1) * ch)
        qi = q[:, sl].flatten(2)
        ki = k[:, sl].flatten(2)
        qi = qi / qi.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        ki = ki / ki.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        a = torch.softmax(qi @ ki.transpose(1, 2) * att.temperature[i], dim=-1)
        outs.append((a @ v[:, sl].flatten(2)).reshape(b, ch, h, w))
    return att.project_out(torch.cat(outs, 1))


@pytest.mark.parametrize("heads", [1, 2, 4])
@pytest.mark.parametrize("reference", [False, True])
def test_attention_matches_per_head_loop(heads: int, reference: bool) -> None:
    att = set_reference_mode(_randomise(Attention(16, heads)), reference)
    x = _rand(2, 16, 6, 9)
    torch.testing.assert_close(att(x), _reference_attention(att, x), atol=1e-5, rtol=1e-5)


def test_attention_rejects_heads_that_do_not_divide_the_width() -> None:
    with pytest.raises(ValueError, match="not divisible by num_heads 3"):
        Attention(16, 3)


def test_feed_forward_hidden_width_and_gating() -> None:
    ffn = FeedForward(48, 2.66)
    assert ffn.project_in.weight.shape == (254, 48, 1, 1)  # 2 * int(48 * 2.66)
    assert ffn.project_out.weight.shape == (48, 127, 1, 1)
    x = _rand(1, 48, 4, 4)
    h1, h2 = ffn.dwconv(ffn.project_in(x)).chunk(2, 1)
    expected = ffn.project_out(0.5 * h1 * (1 + torch.erf(h1 / 2**0.5)) * h2)
    torch.testing.assert_close(ffn(x), expected, atol=1e-5, rtol=1e-5)


def test_transformer_block_names_match_the_published_checkpoints() -> None:
    names = list(TransformerBlock(8, 2).state_dict())
    assert names == [
        "norm1.body.weight",
        "norm1.body.bias",
        "attn.temperature",
        "attn.qkv.weight",
        "attn.qkv_dwconv.weight",
        "attn.project_out.weight",
        "norm2.body.weight",
        "norm2.body.bias",
        "ffn.project_in.weight",
        "ffn.dwconv.weight",
        "ffn.project_out.weight",
    ]
    assert list(transformer_stack(2, 8, 2, 2.66, False, "WithBias").state_dict())[0] == (
        "0.norm1.body.weight"
    )


@pytest.mark.parametrize("heads", [1, 2])
@pytest.mark.parametrize("kind", ["WithBias", "BiasFree"])
def test_block_fast_and_reference_paths_agree_with_gradients(kind: str, heads: int) -> None:
    # heads=1 takes the copy-free q^T k product of the fast path, heads=2 the per-head one.
    block = _randomise(TransformerBlock(16, heads, layer_norm_type=kind))
    x = _rand(2, 16, 7, 5)
    results = []
    for reference in (False, True):
        set_reference_mode(block, reference)
        block.zero_grad()
        xi = x.clone().requires_grad_()
        out = block(xi)
        out.square().mean().backward()
        results.append((out, xi.grad, [p.grad.clone() for p in block.parameters()]))
    (o1, g1, p1), (o2, g2, p2) = results
    torch.testing.assert_close(o1, o2, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(g1, g2, atol=1e-5, rtol=1e-5)
    for a, b in zip(p1, p2, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("heads", [1, 2])
def test_attention_gradients_stay_finite_for_an_all_zero_query_map(heads: int) -> None:
    # F.normalize's clamp gives a zero map zero gradient; the fast path's squared norms must
    # not turn it into 0 * inf = NaN.
    att = _randomise(Attention(8, heads))
    with torch.no_grad():
        att.qkv.weight[:1].zero_()  # query channel 0 is zero everywhere
    x = _rand(2, 8, 5, 6)
    grads = []
    for reference in (False, True):
        set_reference_mode(att, reference)
        att.zero_grad()
        att(x).square().mean().backward()
        grads.append([p.grad.clone() for p in att.parameters()])
    for a, b in zip(*grads, strict=True):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_block_accepts_channels_last_input() -> None:
    block = _randomise(TransformerBlock(16, 4))
    x = _rand(1, 16, 8, 6)
    cl = x.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(block(cl), block(x), atol=1e-6, rtol=1e-5)


def test_set_reference_mode_switches_every_layer_and_back() -> None:
    block = TransformerBlock(8, 2)
    flags = lambda: [block.norm1.reference, block.attn.reference, block.norm2.reference]  # noqa: E731
    assert flags() == [False] * 3
    assert set_reference_mode(block) is block
    assert flags() == [True] * 3
    set_reference_mode(block, False)
    assert flags() == [False] * 3


def test_resampling_shapes() -> None:
    x = _rand(1, 8, 6, 10)
    assert Downsample(8)(x).shape == (1, 16, 3, 5)
    assert Upsample(8)(x).shape == (1, 4, 12, 20)
    assert OverlapPatchEmbed(3, 8)(_rand(1, 3, 5, 7)).shape == (1, 8, 5, 7)
    # Downsample is a conv then a space-to-depth: a pixel-unshuffle of the conv output.
    down = Downsample(8)
    torch.testing.assert_close(down(x), F.pixel_unshuffle(down.body[0](x), 2))
