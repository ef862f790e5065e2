"""Evaluation: per-task metrics, the degraded-input row, the paper-layout table, the CLI."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torch import nn

from forgetir.checkpoint import save_model
from forgetir.cli.eval import add_arguments as add_eval_arguments
from forgetir.cli.eval import run as eval_command
from forgetir.data.testsets import build_test_sets
from forgetir.metrics import describe_protocol
from forgetir.models import create_model
from forgetir.scoring.evaluate import (
    describe_test_sets,
    evaluate_degraded_input,
    evaluate_model,
    format_table,
    restore,
    write_results,
)


@pytest.fixture(scope="module")
def sets():
    # mixed sizes (the photos are 32x32 and 32x16 after shrinking): exercises the grouping
    return build_test_sets("photos", tasks=("dehaze", "denoise_25"), max_side=32)


class Shift(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        return x + 0.1 * self.conv(x)


def test_identity_model_equals_the_input_row_exactly(sets):
    inp = evaluate_degraded_input(sets)
    ident = evaluate_model(nn.Identity(), sets)
    assert inp == ident
    assert set(inp) == {"dehaze", "denoise_25"} and inp["dehaze"]["n"] == 7


def test_input_row_matches_a_per_image_scikit_image_loop(sets):
    ts = sets["denoise_25"]
    ps, ss = [], []
    for deg, clean in zip(ts.degraded, ts.clean, strict=True):
        d = deg[0].permute(1, 2, 0).double().numpy()
        c = clean[0].permute(1, 2, 0).double().numpy()
        ps.append(peak_signal_noise_ratio(c, d, data_range=1))
        ss.append(structural_similarity(c, d, channel_axis=2, data_range=1))
    m = evaluate_degraded_input(sets, per_image=True)["denoise_25"]
    assert m["psnr"] == pytest.approx(np.mean(ps), abs=1e-6)
    assert m["ssim"] == pytest.approx(np.mean(ss), abs=1e-6)
    assert list(m["images"]) == ts.names


def test_batching_does_not_change_results(sets):
    torch.manual_seed(0)
    model = Shift()
    one = evaluate_model(model, sets, batch_size=1)
    many = evaluate_model(model, sets, batch_size=8)
    for task in one:
        assert one[task]["psnr"] == pytest.approx(many[task]["psnr"], abs=1e-5)
        assert one[task]["ssim"] == pytest.approx(many[task]["ssim"], abs=1e-6)
    assert one["dehaze"]["psnr"] != evaluate_degraded_input(sets)["dehaze"]["psnr"]
    model.train()
    restore(model, sets["dehaze"].degraded)
    assert model.training  # mode restored


def test_table_layout_and_caption():
    rows = {
        "input": {"dehaze": {"psnr": 11.0, "ssim": 0.5, "n": 1}},
        "BEFORE": {
            "denoise_50": {"psnr": 27.123, "ssim": 0.7777, "n": 1},
            "dehaze": {"psnr": 28.891, "ssim": 0.97649, "n": 1},
            "derain": {"psnr": 36.37, "ssim": 0.972, "n": 1},
            "denoise_15": {"psnr": 33.98, "ssim": 0.933, "n": 1},
            "denoise_25": {"psnr": float("inf"), "ssim": 1.0, "n": 1},
        },
    }
    text = format_table(rows, "promptir", "SOTS outdoor")
    lines = text.splitlines()
    assert describe_protocol("promptir") in lines[0] and "Test set: SOTS outdoor" in lines[0]
    assert lines[2] == "| model | dehaze | derain | denoise σ15 | denoise σ25 | denoise σ50 |"
    assert lines[3] == "|---|---|---|---|---|---|"
    assert lines[4] == "| input | 11.00/0.500 | – | – | – | – |"
    assert (
        lines[5] == "| BEFORE | 28.89/0.976 | 36.37/0.972 | 33.98/0.933 | inf/1.000 | 27.12/0.778 |"
    )


def test_describe_test_sets_names_the_source_once(sets):
    text = describe_test_sets(sets)
    assert text.startswith("7 shipped photos") and "each task" in text
    assert "dehaze" not in text


def test_write_results_is_atomic_json(tmp_path):
    rows = {"m": {"dehaze": {"psnr": float("inf"), "ssim": 1.0, "n": 1}}}
    path = write_results(tmp_path / "sub" / "r.json", rows, "gaussian", "photos", {"k": 1})
    data = json.loads(path.read_text())
    assert data["rows"]["m"]["dehaze"]["psnr"] == "inf" and data["k"] == 1
    assert data["protocol_description"] == describe_protocol("gaussian")
    assert not list(path.parent.glob("*.tmp"))


def test_eval_command_prints_table_with_input_row(tmp_path, capsys):
    torch.manual_seed(0)
    ckpt = save_model(create_model("adair-tiny"), tmp_path / "before")
    parser = argparse.ArgumentParser()
    add_eval_arguments(parser)
    out = tmp_path / "results.json"
    args = parser.parse_args(
        [str(ckpt), "--tasks", "denoise_25", "--max-side", "32", "--out", str(out)]
    )
    assert eval_command(args) == 0
    printed = capsys.readouterr().out
    assert "| model | denoise σ25 |" in printed
    assert "| input |" in printed and "| before |" in printed
    data = json.loads(out.read_text())
    assert list(data["rows"]) == ["input", "before"]
    assert data["checkpoints"]["before"] == str(ckpt)
    with pytest.raises(SystemExit):
        parser.parse_args([str(ckpt), "--protocol", "fid"])


def test_tiled_evaluation_with_a_tile_covering_the_images_is_exact(sets):
    torch.manual_seed(0)
    net = create_model("promptir-tiny").eval()
    whole = evaluate_model(net, sets, per_image=True)
    assert evaluate_model(net, sets, per_image=True, tile=32, tile_overlap=8) == whole
    tiled = evaluate_model(net, sets, per_image=True, tile=16, tile_overlap=8)
    assert tiled != whole  # 32x32 photos in 16x16 tiles: really tiled


def test_tiling_scope_reaches_restore_and_an_argument_overrides_it(monkeypatch):
    import forgetir.scoring.inference as ev

    seen = []
    real = ev.restore_tiled
    monkeypatch.setattr(
        ev, "restore_tiled", lambda m, x, t, o: seen.append((t, o)) or real(m, x, t, o)
    )
    images = [torch.rand(1, 3, 40, 24)]
    with ev.tiling_scope(16, 4):
        assert torch.allclose(restore(nn.Identity(), images)[0], images[0], atol=1e-6)
        restore(nn.Identity(), images, tile=24, tile_overlap=8)
    restore(nn.Identity(), images)  # outside the scope: whole images
    assert seen == [(16, 4), (24, 8)]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--tile", "4"], "--tile=4 is out of range; valid: >= 8 (the model's size multiple)"),
        (["--tile", "32", "--tile-overlap", "32"], "--tile-overlap=32 must be smaller than"),
        (["--tile-overlap", "8"], "--tile-overlap=8 needs --tile N"),
        (["--tile", "64", "--tile-overlap", "-1"], "--tile-overlap=-1 is out of range"),
    ],
)
def test_eval_command_refuses_bad_tiling_naming_the_option(options, message, capsys):
    from forgetir.cli import main

    args = ["eval", "shipped:before", "--tasks", "denoise_25", "--max-side", "32", "--quiet"]
    assert main([*args, *options]) == 2
    assert message in capsys.readouterr().err


def test_eval_command_tiles_and_records_it(tmp_path, capsys):
    from forgetir.cli import main

    out = tmp_path / "r.json"
    args = ["eval", "shipped:before", "--tasks", "denoise_25", "--max-side", "32", "--quiet"]
    assert main([*args, "--tile", "16", "--out", str(out)]) == 0
    assert "Restored in 16x16 tiles" in capsys.readouterr().out
    assert json.loads(out.read_text())["tiling"] == {"tile": 16, "overlap": 4}


class _Counting(nn.Conv2d):
    """A 1x1 convolution that counts the images it restores."""

    def __init__(self) -> None:
        super().__init__(3, 3, 1)
        self.images = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.images += x.shape[0]
        return super().forward(x)


def test_reuse_outputs_restores_each_image_once_per_model_state():
    from forgetir.scoring.evaluate import restore
    from forgetir.scoring.inference import reuse_outputs

    net, xs = _Counting().eval(), [torch.rand(1, 3, 8, 8) for _ in range(3)]
    plain = restore(net, xs)
    assert net.images == 3
    with reuse_outputs():
        first = restore(net, xs)
        again = restore(net, [x.clone() for x in xs])  # equal pixels: the same images
        assert net.images == 6
        assert all(
            torch.equal(a, b) and torch.equal(a, p)
            for a, b, p in zip(first, again, plain, strict=True)
        )
        again[0].zero_()  # a caller writing into its outputs does not change the stored ones
        assert torch.equal(restore(net, xs)[0], first[0])
        with torch.no_grad():
            net.weight.mul_(2)  # another model state: restored anew
        assert not torch.equal(restore(net, xs)[0], first[0]) and net.images == 9
        restore(net, xs[:2])  # other images: restored anew
        assert net.images == 11
        net.train()  # a model being fine-tuned is never cached
        restore(net, xs)
        restore(net, xs)
        assert net.images == 17 and net.training
    restore(net.eval(), xs)  # outside the block: restored every time
    assert net.images == 20
