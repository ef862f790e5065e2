"""Bring your own model: the Python API and the CLI (--model-module, entry points) on a network
defined only here, end to end to the report; rebuilding it from its recorded source."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from forgetir import unlearn_model
from forgetir.checkpoint import load_model, read_sidecar
from forgetir.cli import main
from forgetir.errors import InputFileError, InvalidInputError
from forgetir.models import create_model
from forgetir.models.registry import MODELS

MY_NET = textwrap.dedent(
    '''
    import torch
    from torch import nn


    class MyNet(nn.Module):
        """A residual CNN: encoder (image -> features) and decoder; any input size."""

        def __init__(self, width: int = 8) -> None:
            super().__init__()
            self.encoder = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU())
            self.decoder = nn.Conv2d(width, 3, 3, padding=1)

        def forward(self, x):
            return x + self.decoder(self.encoder(x))


    def build(width: int = 8) -> nn.Module:
        return MyNet(width)
    '''
)
TINY = ["--steps", "2", "--batch-size", "2", "--patch-size", "32", "--quiet"]
EVAL = ["--tasks", "denoise_25", "--max-side", "32"]
DATA = ["--data", "pool_size=6", "--data", "image_size=32", "--data", "test_max_side=32"]
# The same tiny run through the Python API.
TINY_API = {
    "steps": 2,
    "batch_size": 2,
    "patch_size": 32,
    "data": {"pool_size": 6, "image_size": 32, "test_max_side": 32},
    "options": {"grids": False, "test_max_side": 32, "relearn_steps": 2, "ain_max_steps": 2},
}


@pytest.fixture
def my_net(tmp_path: Path) -> Path:
    path = tmp_path / "my_net.py"
    path.write_text(MY_NET)
    return path


def test_cli_unlearns_a_model_module_end_to_end_and_writes_the_report(
    my_net, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "run"
    module = f"{my_net}:build"
    args = ["unlearn", "--model-module", module, "--forget", "dehaze", *TINY, *DATA]
    assert main([*args, "--out", str(out)]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["forget_tasks"] == ["dehaze"]
    before = read_sidecar(out / "before.safetensors")
    assert before["arch"] == "my_net.build"
    source = before["model_source"]
    assert source["module"] == str(my_net) and source["factory"] == "build"
    assert main(["report", str(out)]) == 0
    assert (out / "report.html").is_file() and (out / "report.md").is_file()
    # verify rebuilds BEFORE and the unlearned model from the recorded module file.
    assert main(["verify", str(out), "--relearn-steps", "2"]) == 0
    # The unlearned checkpoint rebuilds the network from the registered module code...
    model = load_model(out / "model.safetensors")
    assert type(model).__name__ == "MyNet"
    # ...which a new process must register itself: the sidecar's module is never imported...
    monkeypatch.delitem(MODELS._items, "my_net.build")
    with pytest.raises(InputFileError, match="--model-module"):
        load_model(out / "model.safetensors")
    capsys.readouterr()
    assert main(["eval", str(out / "model.safetensors"), *EVAL, "--model-module", module]) == 0
    # ...and a changed file is refused rather than given weights of another network.
    monkeypatch.delitem(MODELS._items, "my_net.build")
    my_net.write_text(MY_NET.replace("width: int = 8", "width: int = 9"))
    assert main(["eval", str(out / "model.safetensors"), *EVAL, "--model-module", module]) == 2
    assert "changed since the checkpoint was saved" in capsys.readouterr().err


def test_python_api_runs_a_live_module_with_its_encoder(my_net, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_net", raising=False)
    from my_net import MyNet  # a class defined in a file: rebuildable without a factory

    torch.manual_seed(0)
    net = MyNet()
    original = {k: v.clone() for k, v in net.state_dict().items()}
    result = unlearn_model(
        net,
        forget="dehaze",
        method="encoder-noise",
        encoder="encoder",
        out=tmp_path / "api-run",
        **TINY_API,
    )
    assert result.report is not None and result.report["html"].is_file()
    # encoder-noise trains the encoder only; the caller's module is untouched.
    assert not torch.equal(result.model.encoder[0].weight, original["encoder.0.weight"])
    assert torch.equal(result.model.decoder.weight, original["decoder.weight"])
    assert all(torch.equal(v, original[k]) for k, v in net.state_dict().items())
    assert read_sidecar(result.run_dir / "before.safetensors")["model_source"]["factory"] == "MyNet"


def test_api_errors_name_the_bad_input(tmp_path):
    with pytest.raises(InvalidInputError, match="torch.nn.Module"):
        unlearn_model("not a model", forget="dehaze", out=tmp_path / "a")
    net = create_model("promptir-tiny", dim=8)
    with pytest.raises(InvalidInputError, match="unknown option.*valid:.*retain_budget"):
        unlearn_model(net, forget="dehaze", out=tmp_path / "b", options={"retain_budgte": 1})
    with pytest.raises(InvalidInputError, match="sub-modules: patch_embed"):
        unlearn_model(net, forget="dehaze", out=tmp_path / "c", encoder="enc")


def test_fresh_moceir_tiny_runs_the_pipeline_end_to_end(tmp_path, tiny_opts):
    # The demo's pipeline (unlearn, verify, report) on a newly created moceir-tiny.
    from forgetir.report.write import write_report
    from forgetir.unlearn import run_unlearn

    out = tmp_path / "moce"
    data = {"pool_size": 6, "image_size": 32, "test_max_side": 32}
    run = run_unlearn(
        "fresh:moceir-tiny", out, tiny_opts(), forget=["dehaze"], command="test", data=data
    )
    assert (out / "before.safetensors").is_file()  # the fresh model is saved inside the run
    assert run["steps"] == 2 and (out / "verify.json").is_file()
    assert load_model(out / "model.safetensors").forgetir_spec["name"] == "moceir-tiny"
    assert set(run["expert_usage"]) == {"BEFORE", "unlearned"}  # no UT in this run
    shares = run["expert_usage"]["unlearned"]["dehaze"]
    assert len(shares) == 3 and all(abs(sum(level) - 1) < 1e-6 for level in shares)
    paths = write_report(out)
    assert "Expert usage (mixture-of-experts routing)" in paths["md"].read_text()


PROMPTED = textwrap.dedent(
    '''
    import torch
    from torch import nn


    class Prompted(nn.Module):
        """Takes the task as an input, like instruction-driven all-in-one models."""

        def __init__(self) -> None:
            super().__init__()
            self.convs = nn.ModuleDict(
                {t: nn.Conv2d(3, 3, 3, padding=1) for t in ("restore", "dehaze")}
            )

        def forward(self, x, task):
            return x + self.convs[task](x)
    '''
)


def test_a_model_that_takes_the_task_as_input_is_fed_one_fixed_condition(tmp_path, monkeypatch):
    (tmp_path / "prompted.py").write_text(PROMPTED)
    monkeypatch.syspath_prepend(str(tmp_path))
    from prompted import Prompted

    torch.manual_seed(0)
    result = unlearn_model(
        Prompted(),
        forget="dehaze",
        method="finetune",
        condition={"task": "restore"},
        out=tmp_path / "run",
        **TINY_API,
    )
    # Only the branch of the fixed condition was fed, hence trained.
    unlearned, before = result.model, load_model(result.run_dir / "before.safetensors")
    assert not torch.equal(unlearned.convs["restore"].weight, before.convs["restore"].weight)
    assert torch.equal(unlearned.convs["dehaze"].weight, before.convs["dehaze"].weight)
    # The checkpoint re-applies the condition: model(x) works after loading.
    again = load_model(result.run_dir / "model.safetensors")
    x = torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(again(x), unlearned(x))
    md = (result.run_dir / "report.md").read_text()
    assert "fixed input task='restore' for every image" in md
    with pytest.raises(InvalidInputError, match="takes no such argument; its arguments: x, task"):
        unlearn_model(Prompted(), "dehaze", condition={"prompt": "x"}, out=tmp_path / "b")
