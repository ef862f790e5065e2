"""Models from the user's code: module files, entry points, rebuild checks, encoder access."""

from __future__ import annotations

import importlib.metadata
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from forgetir.errors import InputFileError, InvalidInputError
from forgetir.models import create_model, external, list_models

MY_NET = textwrap.dedent(
    """
    from torch import nn


    def build(width: int = 8) -> nn.Module:
        return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.Conv2d(width, 3, 1))
    """
)


@pytest.fixture
def my_net(tmp_path: Path) -> Path:
    path = tmp_path / "ext_net.py"
    path.write_text(MY_NET)
    return path


def test_model_module_errors(tmp_path, my_net):
    with pytest.raises(InvalidInputError, match="give FILE.py:FACTORY"):
        external.register_module_factory(str(my_net))
    with pytest.raises(InputFileError, match="does not exist"):
        external.register_module_factory(f"{tmp_path}/nope.py:build")
    with pytest.raises(InvalidInputError, match="no callable 'bild'; callables there: .*build"):
        external.register_module_factory(f"{my_net}:bild")


def test_entry_point_plugins_register_their_models(tmp_path, my_net, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    ep = importlib.metadata.EntryPoint("toy-net", "ext_net:build", external.ENTRY_POINT_GROUP)
    real = importlib.metadata.entry_points

    def fake(**kw):
        return [ep] if kw.get("group") == external.ENTRY_POINT_GROUP else real(**kw)

    monkeypatch.setattr(importlib.metadata, "entry_points", fake)
    external.reset_entry_points()
    try:
        assert "toy-net" in list_models()
        model = create_model("toy-net", width=4)
        assert model[0].weight.shape[0] == 4
        assert model.forgetir_spec["source"]["entry_point"] == "toy-net = ext_net:build"
    finally:
        external.reset_entry_points()


def test_rebuilding_needs_the_recorded_code_registered_and_never_imports_it(
    my_net, tmp_path, monkeypatch
):
    name = external.register_module_factory(f"{my_net}:build", "ext-test-net")
    source = create_model(name).forgetir_spec["source"]
    external.ensure_registered(name, source, "ckpt")  # the recorded code is registered: fine
    # A new process: nothing registered. The file is there and its hash matches, yet it is
    # information only: the user must register it.
    monkeypatch.delitem(external.MODELS._items, name)
    with pytest.raises(InputFileError, match=f"never runs code.*--model-module {my_net}:build"):
        external.ensure_registered(name, source, "ckpt")
    assert name not in list_models()
    # The same code registered from a moved copy serves under the recorded name.
    moved = tmp_path / "moved_net.py"
    moved.write_text(MY_NET)
    external.register_module_factory(f"{moved}:build")
    external.ensure_registered(name, source, "ckpt")
    assert name in list_models()
    # Other code registered under the recorded name is refused.
    monkeypatch.delitem(external.MODELS._items, name)
    my_net.write_text(MY_NET + "\n# edited\n")
    external.register_module_factory(f"{my_net}:build", name)
    with pytest.raises(InputFileError, match="changed since the checkpoint was saved"):
        external.ensure_registered(name, source, "ckpt")
    with pytest.raises(InputFileError, match="cannot rebuild"):
        external.ensure_registered("x", {"kind": "object", "object": "m.X"}, "ckpt")


def test_a_name_cannot_be_taken_by_other_code(my_net, tmp_path):
    other = tmp_path / "other.py"
    other.write_text(MY_NET)
    external.register_module_factory(f"{my_net}:build", "ext-clash")
    with pytest.raises(InvalidInputError, match="already registered"):
        external.register_module_factory(f"{other}:build", "ext-clash")


def test_encoder_access_by_sub_module_name():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 3, 1))
    assert not external.has_encoder(net)
    external.set_encoder(net, "0")
    x = torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(external.encode(net, x), net[0](x))
    assert external.encoder_parameters(net) == list(net[0].parameters())
    with pytest.raises(InvalidInputError, match="sub-modules: 0, 1"):
        external.set_encoder(net, "encoder")
