"""Checkpoints: exact round trips, sidecar contents, official-format import, refusal of unsafe or
altered files, clear errors, and atomic writes."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import os
import pickle
from pathlib import Path

import pytest
import safetensors.torch
import torch

import forgetir
from forgetir.checkpoint import (
    CheckpointError,
    load_model,
    read_sidecar,
    save_model,
    sha256_file,
)
from forgetir.models import create_model, list_models, model_args

TINY = [name for name in list_models() if name.endswith("-tiny")]
FULL = [name for name in list_models() if not name.endswith("-tiny")]


def _perturbed(name: str, seed: int = 0) -> torch.nn.Module:
    """A model whose every weight is non-default, so a round trip that drops one shows."""
    model = create_model(name)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=gen))
    return model.eval()


def _image(seed: int = 1) -> torch.Tensor:
    # Odd sides exercise the pad/crop path as well.
    return torch.rand(1, 3, 21, 30, generator=torch.Generator().manual_seed(seed))


@functools.cache
def _training_state(name: str) -> tuple[dict, dict]:
    """Optimizer and scheduler state of a real AdamW step, as Lightning stores them."""
    model = create_model(name)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-4, weight_decay=0.01)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()  # fills step / exp_avg / exp_avg_sq
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    return opt.state_dict(), sched.state_dict()


def _lightning_ckpt(name: str, state: dict, path: Path) -> Path:
    """A file shaped like the official PromptIR/AdaIR Lightning 2.x checkpoints."""
    opt_state, sched_state = _training_state(name)
    ckpt = {
        "epoch": 119,
        "global_step": 123456,
        "pytorch-lightning_version": "2.0.0",
        "state_dict": {f"net.{k}": v.clone() for k, v in state.items()},
        "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"current": {"ready": 120}}}},
        "callbacks": {"ModelCheckpoint{'monitor': None}": {"best_model_path": "", "dirpath": "x"}},
        "optimizer_states": [opt_state],
        "lr_schedulers": [sched_state],
    }
    torch.save(ckpt, path)
    return path


def _assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert sa[key].dtype == sb[key].dtype, key
        assert torch.equal(sa[key], sb[key]), key


# ------------------------------------------------------------------------------ round trips


@pytest.mark.parametrize("name", TINY)
def test_round_trip_is_exact(name: str, tmp_path: Path) -> None:
    model = _perturbed(name)
    file = save_model(model, tmp_path / "m.safetensors")
    assert file == tmp_path / "m.safetensors"
    assert (tmp_path / "m.json").is_file()

    loaded = load_model(file)
    _assert_same_state(model, loaded)
    x = _image()
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert loaded.forgetir_spec["name"] == name
    assert loaded.forgetir_spec["args"] == json.loads(json.dumps(model_args(name)))
    assert loaded.forgetir_meta["path"] == str(file)
    assert loaded.forgetir_meta["arch"] == name
    assert not loaded.training


@pytest.mark.parametrize("name", TINY)
def test_directory_layout(name: str, tmp_path: Path) -> None:
    model = _perturbed(name, seed=3)
    out = tmp_path / "run" / "final"  # created on demand
    file = save_model(model, out)
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "model.safetensors"]
    assert file == out / "model.safetensors"
    _assert_same_state(model, load_model(out))
    assert read_sidecar(out) == read_sidecar(file) == read_sidecar(out / "model.json")


@pytest.mark.parametrize("name", TINY)
def test_float16_save_loads_as_float32(name: str, tmp_path: Path) -> None:
    model = _perturbed(name, seed=5)
    full = save_model(model, tmp_path / "full.safetensors")
    half = save_model(model, tmp_path / "half.safetensors", dtype=torch.float16)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    with safetensors.torch.safe_open(str(half), "pt") as f:
        assert all(f.get_tensor(k).dtype == torch.float16 for k in f.keys())
    assert read_sidecar(half)["dtype"] == "float16"

    loaded = load_model(half)
    for key, value in model.state_dict().items():
        got = loaded.state_dict()[key]
        assert got.dtype == torch.float32, key
        # Exactly the float16 rounding of the original weight, nothing else.
        assert torch.equal(got, value.half().float()), key
    x = _image()
    with torch.no_grad():
        assert torch.allclose(model(x), loaded(x), atol=5e-3)


def test_float16_overflow_is_refused(tmp_path: Path) -> None:
    model = create_model(TINY[0])
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = 1e6
    with pytest.raises(CheckpointError, match="overflows float16"):
        save_model(model, tmp_path / "m.safetensors", dtype=torch.float16)
    assert list(tmp_path.iterdir()) == []


def test_unsupported_dtype_lists_choices(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="torch.float16"):
        save_model(create_model(TINY[0]), tmp_path / "m.safetensors", dtype=torch.int8)


@pytest.mark.parametrize("name", FULL)
def test_full_size_models_keep_keys_and_args(name: str, tmp_path: Path) -> None:
    model = create_model(name)
    file = save_model(model, tmp_path / f"{name}.safetensors", dtype=torch.float16)
    meta = read_sidecar(file)
    assert meta["arch"] == name
    assert meta["args"] == json.loads(json.dumps(model_args(name)))
    assert meta["num_parameters"] == sum(p.numel() for p in model.parameters())
    loaded = load_model(file)
    expected = {k: v.shape for k, v in model.state_dict().items()}
    assert {k: v.shape for k, v in loaded.state_dict().items()} == expected


# ---------------------------------------------------------------------------------- sidecar


def test_sidecar_contents(tmp_path: Path) -> None:
    name = TINY[0]
    parent = save_model(_perturbed(name), tmp_path / "parent.safetensors")
    child_model = _perturbed(name, seed=9)
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    file = save_model(
        child_model,
        tmp_path / "child.safetensors",
        parent=parent,
        command=["forgetir", "forget", "--forget", "haze"],
        metrics={"psnr_forget": 11.5, "ssim": torch.tensor(0.75)},
        seed=7,
        notes={"request": "ticket-42"},
    )
    meta = json.loads((tmp_path / "child.json").read_text())
    assert meta == read_sidecar(file)
    assert meta["format"] == "forgetir-checkpoint" and meta["format_version"] == 1
    assert meta["arch"] == name
    assert meta["args"] == json.loads(json.dumps(model_args(name)))
    assert meta["weights"] == "child.safetensors"
    assert meta["sha256"] == hashlib.sha256(file.read_bytes()).hexdigest() == sha256_file(file)
    assert meta["parent"] == {
        "path": str(parent),
        "sha256": hashlib.sha256(parent.read_bytes()).hexdigest(),
    }
    assert meta["command"] == ["forgetir", "forget", "--forget", "haze"]
    assert meta["metrics"] == {"psnr_forget": 11.5, "ssim": 0.75}
    assert meta["seed"] == 7 and meta["notes"] == {"request": "ticket-42"}
    assert meta["dtype"] == "float32"
    assert meta["forgetir_version"] == forgetir.__version__
    assert meta["torch_version"] == torch.__version__
    created = dt.datetime.fromisoformat(meta["created"])
    assert created.utcoffset() == dt.timedelta(0)
    assert before <= created <= dt.datetime.now(dt.timezone.utc)

    loaded = load_model(file)
    assert loaded.forgetir_meta == {**meta, "path": str(file)}


def test_loaded_model_records_its_source_as_parent(tmp_path: Path) -> None:
    first = save_model(_perturbed(TINY[0]), tmp_path / "a.safetensors")
    model = load_model(first)
    second = save_model(model, tmp_path / "b.safetensors")
    assert read_sidecar(second)["parent"] == {"path": str(first), "sha256": sha256_file(first)}
    assert read_sidecar(first)["parent"] is None


def test_meta_must_be_json_serialisable(tmp_path: Path) -> None:
    model = create_model(TINY[0])
    with pytest.raises(TypeError, match="'optimizer'"):
        save_model(model, tmp_path / "m.safetensors", optimizer=object())
    with pytest.raises(TypeError, match="'metrics'"):
        save_model(model, tmp_path / "m.safetensors", metrics={"images": torch.zeros(3)})
    with pytest.raises(CheckpointError, match="reserved"):
        save_model(model, tmp_path / "m.safetensors", sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []


def test_model_without_spec_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="forgetir_spec"):
        save_model(torch.nn.Conv2d(3, 3, 3), tmp_path / "m.safetensors")


def test_bad_save_path(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"\.safetensors"):
        save_model(create_model(TINY[0]), tmp_path / "m.pth")


# --------------------------------------------------------------------- official-format import


@pytest.mark.parametrize("name", TINY)
def test_lightning_ckpt_import(name: str, tmp_path: Path) -> None:
    model = _perturbed(name, seed=11)
    reference = {k: v.clone() for k, v in model.state_dict().items()}
    file = _lightning_ckpt(name, reference, tmp_path / "epoch=119-step=123456.ckpt")
    loaded = load_model(file, name)
    for key, value in reference.items():
        assert torch.equal(loaded.state_dict()[key], value), key
    meta = loaded.forgetir_meta
    assert meta["source_format"] == "lightning"
    assert meta["epoch"] == 119 and meta["global_step"] == 123456
    assert meta["sha256"] == sha256_file(file)

    # And it saves as a forgetir checkpoint whose parent is the imported file.
    out = save_model(loaded, tmp_path / "converted.safetensors")
    assert read_sidecar(out)["parent"]["sha256"] == sha256_file(file)
    _assert_same_state(loaded, load_model(out))


def test_plain_state_dict_import(tmp_path: Path) -> None:
    model = _perturbed(TINY[0], seed=13)
    torch.save(model.state_dict(), tmp_path / "weights.pth")
    _assert_same_state(model, load_model(tmp_path / "weights.pth", arch=TINY[0]))
    # DataParallel / DDP checkpoints prefix every key with "module.".
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, tmp_path / "ddp.pt")
    _assert_same_state(model, load_model(tmp_path / "ddp.pt", arch=TINY[0]))


def test_bare_safetensors_needs_arch(tmp_path: Path) -> None:
    model = _perturbed(TINY[0], seed=2)
    file = tmp_path / "bare.safetensors"
    safetensors.torch.save_file(model.state_dict(), str(file))
    with pytest.raises(CheckpointError, match="bare.json") as err:
        load_model(file)
    assert all(name in str(err.value) for name in list_models())
    _assert_same_state(model, load_model(file, arch=TINY[0]))


def test_ckpt_without_arch_lists_choices(tmp_path: Path) -> None:
    file = _lightning_ckpt(TINY[0], create_model(TINY[0]).state_dict(), tmp_path / "m.ckpt")
    with pytest.raises(CheckpointError, match="pass arch=") as err:
        load_model(file)
    assert "m.ckpt" in str(err.value)
    assert all(name in str(err.value) for name in list_models())


def test_missing_and_unexpected_keys_are_listed(tmp_path: Path) -> None:
    name = TINY[0]
    model = create_model(name)
    state = dict(model.state_dict())
    dropped = sorted(state)[0]
    del state[dropped]
    state["bogus.weight"] = torch.zeros(2)
    file = _lightning_ckpt(name, state, tmp_path / "broken.ckpt")

    with pytest.raises(CheckpointError) as err:
        load_model(file, name)
    msg = str(err.value)
    assert "broken.ckpt" in msg and repr(name) in msg
    assert f"missing keys 1: {dropped}" in msg
    assert "unexpected keys 1: bogus.weight" in msg

    with pytest.warns(UserWarning, match="1 missing and 1 unexpected"):
        loose = load_model(file, name, strict=False)
    assert loose.forgetir_meta["missing_keys"] == [dropped]
    assert loose.forgetir_meta["unexpected_keys"] == ["bogus.weight"]


def test_wrong_architecture_lists_counts_and_shapes(tmp_path: Path) -> None:
    a, b = TINY[0], TINY[1]
    file = _lightning_ckpt(a, create_model(a).state_dict(), tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match=r"more\)") as err:
        load_model(file, b)
    assert "missing keys" in str(err.value) and "unexpected keys" in str(err.value)

    # Same keys, other widths: shape mismatches are reported even with strict=False.
    wide = tmp_path / "wide.safetensors"
    save_model(create_model(a, dim=create_model(a).forgetir_spec["args"]["dim"] * 2), wide)
    meta = read_sidecar(wide)
    meta["args"].pop("dim")
    wide.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="shape mismatches"):
        load_model(wide, strict=False)


# ---------------------------------------------------------------------- unsafe and bad files


class _Payload:
    """Unpickling this creates ``marker``: stands in for a malicious checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("suffix", [".ckpt", ".pth"])
def test_malicious_pickle_is_refused_not_run(suffix: str, tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    file = tmp_path / f"evil{suffix}"
    state = create_model(TINY[0]).state_dict()
    torch.save(
        {"state_dict": {f"net.{k}": v for k, v in state.items()}, "x": _Payload(marker)}, file
    )
    assert not marker.exists()

    with pytest.raises(CheckpointError, match="not loadable safely") as err:
        load_model(file, TINY[0])
    assert f"evil{suffix}" in str(err.value)
    assert not marker.exists()

    # Control: the payload is live, so the refusal above is what kept it from running.
    torch.load(file, weights_only=False)  # our own file, built just above
    assert marker.exists()


def test_raw_malicious_pickle_is_refused_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    file = tmp_path / "evil.pth"
    file.write_bytes(pickle.dumps(_Payload(marker)))  # legacy, non-zip format
    with pytest.raises(CheckpointError, match="evil.pth.*not loadable safely"):
        load_model(file, TINY[0])
    assert not marker.exists()
    pickle.loads(file.read_bytes())  # control: the payload is live
    assert marker.exists()


def test_tampered_weights_are_detected(tmp_path: Path) -> None:
    file = save_model(_perturbed(TINY[0]), tmp_path / "m.safetensors")
    data = bytearray(file.read_bytes())
    data[-3] ^= 0x01  # one bit of the last weight: still a valid safetensors file
    file.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="altered") as err:
        load_model(file)
    assert "m.safetensors" in str(err.value) and "m.json" in str(err.value)


def test_corrupt_files(tmp_path: Path) -> None:
    name = TINY[0]
    file = save_model(create_model(name), tmp_path / "m.safetensors")
    sidecar = tmp_path / "m.json"

    sidecar.write_text('{"format": "forgetir-checkpoint", ')
    with pytest.raises(CheckpointError, match="m.json.*not valid JSON"):
        load_model(file)

    sidecar.unlink()
    with pytest.raises(CheckpointError, match="sidecar .*m.json.* is missing"):
        load_model(file)

    file.write_bytes(file.read_bytes()[:100])  # truncated
    with pytest.raises(CheckpointError, match="m.safetensors.*not a readable safetensors"):
        load_model(file, arch=name)

    garbage = tmp_path / "g.ckpt"
    garbage.write_bytes(b"not a checkpoint" * 64)
    with pytest.raises(CheckpointError, match="g.ckpt.*not a readable PyTorch checkpoint"):
        load_model(garbage, arch=name)

    notes = tmp_path / "list.pth"
    torch.save([1, 2, 3], notes)
    with pytest.raises(CheckpointError, match="list.pth.*not a state dict"):
        load_model(notes, arch=name)

    with pytest.raises(FileNotFoundError, match="nothere.safetensors"):
        load_model(tmp_path / "nothere.safetensors")
    (tmp_path / "w.npz").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"w.npz.*\.safetensors, \.ckpt"):
        load_model(tmp_path / "w.npz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="empty.*no model.safetensors"):
        load_model(tmp_path / "empty")


def test_newer_format_version_is_refused(tmp_path: Path) -> None:
    file = save_model(create_model(TINY[0]), tmp_path / "m.safetensors")
    meta = read_sidecar(file)
    meta["format_version"] = 99
    (tmp_path / "m.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="format_version 99"):
        load_model(file)


def test_unknown_arch_lists_valid_choices(tmp_path: Path) -> None:
    file = save_model(create_model(TINY[0]), tmp_path / "m.safetensors")
    meta = read_sidecar(file)
    meta["arch"] = "restormer-xl"
    (tmp_path / "m.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="'restormer-xl'.*valid choices") as err:
        load_model(file)
    assert "m.safetensors" in str(err.value)
    assert all(name in str(err.value) for name in list_models())

    ckpt = _lightning_ckpt(TINY[0], create_model(TINY[0]).state_dict(), tmp_path / "m.ckpt")
    with pytest.raises(CheckpointError, match="'nope'.*valid choices"):
        load_model(ckpt, arch="nope")
    with pytest.raises(CheckpointError, match="not 'nope'"):
        load_model(file, arch="nope")


# -------------------------------------------------------------------------------- atomicity


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_failed_weights_write_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    def half_write(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", half_write)
    with pytest.raises(OSError, match="disk full"):
        save_model(create_model(TINY[0]), tmp_path / "m.safetensors")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(OSError, match="disk full"):
        save_model(create_model(TINY[0]), tmp_path / "new_dir")
    assert list(tmp_path.iterdir()) == []


def test_failed_save_keeps_previous_checkpoint(tmp_path: Path, monkeypatch) -> None:
    name = TINY[0]
    old = _perturbed(name, seed=1)
    file = save_model(old, tmp_path / "m.safetensors")
    before = _snapshot(tmp_path)

    real_dump = json.dump

    def failing_dump(*args, **kwargs):
        real_dump(*args, **kwargs)  # the sidecar temp file is fully written first...
        raise OSError("quota exceeded")  # ...then the write fails before the rename

    monkeypatch.setattr(json, "dump", failing_dump)
    with pytest.raises(OSError, match="quota exceeded"):
        save_model(_perturbed(name, seed=2), file)
    monkeypatch.undo()

    assert _snapshot(tmp_path) == before
    _assert_same_state(old, load_model(file))


def test_no_temp_files_after_success(tmp_path: Path) -> None:
    save_model(create_model(TINY[0]), tmp_path)
    save_model(create_model(TINY[0]), tmp_path)  # overwriting works
    assert sorted(os.listdir(tmp_path)) == ["model.json", "model.safetensors"]
