"""The report of a fake run directory built from tiny stand-in models and tensors.

``make_run_dir`` is also used by scripts/check_report_browser.py to render a sample page.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import re
from pathlib import Path

import pytest
import safetensors.torch
import torch
from torch import nn

from forgetir.checks import verify
from forgetir.cli import report as report_cli
from forgetir.data.testsets import TestSet
from forgetir.errors import IntegrityError
from forgetir.render.figures import write_model_grid
from forgetir.report import write as report
from forgetir.scoring.evaluate import write_results

TASKS = ("dehaze", "derain", "denoise_15", "denoise_25", "denoise_50")
EVIL = '<script>alert("x")</script> & <b>'


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fake_checkpoint(folder: Path, value: float) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / "model.safetensors"
    safetensors.torch.save_file({"w": torch.full((3,), value)}, str(weights))
    meta = {"format": "forgetir-checkpoint", "format_version": 1, "arch": "toy", "args": {}}
    meta.update(sha256=_sha(weights), num_parameters=3)
    (folder / "model.json").write_text(json.dumps(meta))
    return weights


def _toy_sets(size: int = 16, n: int = 2) -> dict[str, TestSet]:
    g = torch.Generator().manual_seed(0)
    sets = {}
    for t in TASKS:
        clean = [torch.rand(1, 3, size, size, generator=g) for _ in range(n)]
        degraded = [(0.6 * c + 0.2).clamp(0, 1) for c in clean]
        sets[t] = TestSet(t, f"toy {t}", [f"im{i}" for i in range(n)], degraded, clean)
    return sets


class Affine(nn.Module):
    """A stand-in restoration model: out = a * x + b."""

    def __init__(self, a: float, b: float) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a))
        self.b = nn.Parameter(torch.tensor(b))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a * x + self.b


def make_run_dir(root: Path, method: str = "accurate-forgetting", sweeps: bool = True) -> Path:
    """A complete run directory with every file the report reads (tiny and fast)."""
    run = root / "run"
    weights = _fake_checkpoint(run, 0.5)
    parent = _fake_checkpoint(root / "before", 1.0)
    ut = _fake_checkpoint(root / "ut", 2.0)
    split = root / "split.json"
    entries = [{"id": f"dl-{i:06d}", "class": "disks", "sha256": f"{i:064x}"} for i in range(3)]
    split.write_text(json.dumps({"kind": "degradation", "forget": {"entries": entries}}))

    sets = _toy_sets()
    before = Affine(0.97 / 0.6, -0.2 / 0.6)  # a good but imperfect restorer
    unlearned, ut_model = Affine(1.0, 0.0), Affine(1.0, 0.01)
    g = torch.Generator().manual_seed(1)

    def pairs(n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        out = []
        for _ in range(n):
            c = torch.rand(1, 3, 8, 8, generator=g)
            out.append(((0.6 * c + 0.2), c))
        return out

    result = verify.verify_run(
        unlearned,
        before,
        ut_model,
        ["dehaze"],
        [t for t in TASKS if t != "dehaze"],
        sets,
        relearn_samples=pairs(2),
        relearn_steps=3,
        relearn_lr=0.05,
        ain_max_steps=30,
        membership={"members": pairs(4), "nonmembers": pairs(4), "forgotten": pairs(2)},
        cost_info={"unlearn_steps": 20, "unlearn_seconds": 2.0, "train_steps": 400},
    )
    verify.write_verification(run / "verify.json", result)
    rows = result["quality"]["rows"]
    write_results(run / "quality.json", rows, "promptir", result["test_set"])
    with open(run / "log.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "loss", "lr", "loss_forget", "forget_psnr", "time"])
        for s in range(1, 21):
            w.writerow([s, 1 / s, 2e-4, -0.1 * s, 30 - s, 0.1 * s])
    run_json = {
        "format": "forgetir-run",
        "version": 1,
        "method": method,
        "hyperparameters": {"lr": 2e-4, "batch_size": 16, "weights": [1, 1, 1]},
        "target": "ut",
        "split": {
            "kind": "degradation",
            "forget": ["dehaze"],
            "retain": list(TASKS[1:]),
            "manifest": {"path": str(split), "sha256": _sha(split)},
        },
        "forget_tasks": ["dehaze"],
        "retain_tasks": list(TASKS[1:]),
        "parent": {"path": str(parent), "sha256": _sha(parent)},
        "ut": {"path": str(ut.parent), "sha256": _sha(ut)},
        "files": {
            role: {"path": name, "sha256": _sha(run / name)}
            for role, name in (
                ("model", "model.safetensors"),
                ("model_sidecar", "model.json"),
                ("quality", "quality.json"),
            )
        },  # fmt: skip
        "steps": 20,
        "wall_time_s": 2.0,
        "command": "forgetir unlearn --method accurate-forgetting --forget dehaze",
        "software": report.software_versions(),
        "seed": 0,
    }
    (run / "run.json").write_text(json.dumps(run_json))
    assert weights.is_file()
    if sweeps:
        sw = [
            {"param": "lr", "value": v, "psnr": {"dehaze": 12 + 1e4 * v, "derain": 30.0}}
            for v in (1e-4, 1.5e-4, 2e-4)
        ]
        sw += [
            {"param": "batch", "value": b, "dehaze": 14.0 - b / 10, "derain": 30} for b in (12, 16)
        ]
        (run / "sweeps.json").write_text(json.dumps(sw))
    grid_models = {"BEFORE": before, "unlearned": unlearned, "UT": ut_model}
    write_model_grid(run / "grids" / "photo0.png", grid_models, sets, ["dehaze"])
    return run


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    run = make_run_dir(tmp_path_factory.mktemp("r"), method=f"accurate-forgetting {EVIL}")
    return run, report.write_report(run)


def test_html_has_every_section_and_the_paper_table(built):
    run, paths = built
    page = paths["html"].read_text(encoding="utf-8")
    for anchor in ("quality", "grids", "curves", "sweeps", "verify", "audit"):
        assert f'id="{anchor}"' in page, anchor
    for text in (
        "Gaps to UT and to BEFORE",
        "Output gap",
        "Relearning",
        "Anamnesis index (AIN)",
        "Membership inference",
        "Cost",
        "Every verification figure",
        "Protocol: PSNR/SSIM, promptir protocol",
    ):
        assert text in page, text
    header = re.search(r"<tr><th class=\"l\">model</th>(.*?)</tr>", page).group(1)
    cols = re.findall(r"<th[^>]*>(.*?)</th>", header)
    assert cols == ["dehaze (forget)", "derain", "denoise σ15", "denoise σ25", "denoise σ50"]
    labels = re.findall(r"<tr><td class=\"l\">(degraded input|BEFORE|unlearned|UT)</td>", page)
    assert labels[:4] == ["degraded input", "BEFORE", "unlearned", "UT"]
    assert re.search(r"<td class=\"forget\">\d+\.\d\d/\d\.\d{3}</td>", page)


def test_html_is_self_contained(built):
    _, paths = built
    page = paths["html"].read_text(encoding="utf-8")
    srcs = re.findall(r'src="([^"]*)"', page)
    assert len(srcs) >= 5  # quality, grid, loss, sweeps, relearn, membership
    assert all(s.startswith("data:image/png;base64,") for s in srcs)
    for bad in ("http://", "https://", 'src="file', "<link", "@import", "url("):
        assert bad not in page, bad


def test_html_escapes_text(built):
    _, paths = built
    page = paths["html"].read_text(encoding="utf-8")
    assert "<script" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;" in page


def test_json_manifest_has_hashes_and_figures(built):
    run, paths = built
    data = json.loads(paths["json"].read_text())
    audit = data["audit"]
    run_json = json.loads((run / "run.json").read_text())
    assert audit["parent_checkpoint"]["sha256"] == run_json["parent"]["sha256"]
    assert audit["parent_checkpoint"]["check"] == "match"
    assert audit["ut_checkpoint"]["check"] == "match"  # a directory path is hashed as its weights
    manifest = audit["forgotten"]["manifest"]
    assert manifest["sha256"] == run_json["split"]["manifest"]["sha256"]
    assert manifest["check"] == "match"
    assert [e["id"] for e in audit["forgotten"]["forget_entries"]] == [
        "dl-000000",
        "dl-000001",
        "dl-000002",
    ]
    assert audit["unlearned_checkpoint"]["sha256"] == _sha(run / "model.safetensors")
    assert audit["unlearned_checkpoint"]["check"] == "match"
    assert set(audit["software"]["run"]) >= {"python", "torch", "forgetir", "numpy"}
    names = [k["figure"] for k in audit["key_figures"]]
    assert "output gap (unlearned vs UT)" in names
    assert any(n.startswith("AIN (") for n in names)
    assert any(n.startswith("MIA UT") for n in names)
    assert any(n.startswith("relearn unlearned") for n in names)
    assert data["verification"]["format"] == "forgetir-verification"
    assert data["quality"]["protocol"] == "promptir"


def test_markdown_and_png_files(built):
    run, paths = built
    md = paths["md"].read_text(encoding="utf-8")
    assert "| degraded input |" in md and "| dehaze (forget) |" in md
    assert "<script" not in md and "&lt;script&gt;" in md
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert "grids/photo0.png" in links
    assert any(link.startswith("report_files/") for link in links)
    for link in links:
        assert (run / link).is_file(), link
        assert (run / link).read_bytes()[:4] == b"\x89PNG"
    assert not list(run.rglob(".*.tmp"))


def test_a_changed_parent_is_refused_naming_it(tmp_path):
    # Issue 13: a report describes the run's own files or none (tamper-evident run folders).
    run = make_run_dir(tmp_path, sweeps=False)
    parent = tmp_path / "before" / "model.safetensors"
    parent.write_bytes(parent.read_bytes() + b"tampered")
    with pytest.raises(IntegrityError, match=r"parent file .*before/model.safetensors"):
        report.write_report(run)
    assert not (run / "report.html").exists()


def test_verdict_comes_first(tmp_path):
    paths = report.write_report(make_run_dir(tmp_path, sweeps=False))
    page = paths["html"].read_text()
    assert page.index('id="verdict"') < page.index('id="quality"')
    assert "VERDICT " in page and "VERDICT " in paths["md"].read_text()
    data = json.loads(paths["json"].read_text())
    assert list(data)[:6] == ["format", "version", "generated", "run_dir", "title", "verdict"]
    assert data["verdict"]["verdict"] in ("forgotten", "hidden", "over-forgotten", "not forgotten")


@pytest.mark.parametrize("name", ["run.json", "verify.json", "quality.json", "log.csv"])
def test_missing_required_file_is_named(tmp_path, name):
    run = make_run_dir(tmp_path, sweeps=False)
    (run / name).unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(name)):
        report.write_report(run)
    assert not (run / "report.html").exists()


def test_bad_run_json(tmp_path):
    run = make_run_dir(tmp_path, sweeps=False)
    (run / "run.json").write_text("{not json")
    with pytest.raises(ValueError, match="run.json is not valid JSON"):
        report.write_report(run)
    (run / "run.json").write_text(json.dumps({"method": "x"}))
    with pytest.raises(ValueError, match="parent"):
        report.write_report(run)


def test_report_command(built, capsys):
    run, _ = built
    parser = argparse.ArgumentParser()
    report_cli.add_arguments(parser)
    assert report_cli.run(parser.parse_args([str(run)])) == 0
    assert "report.html" in capsys.readouterr().out
