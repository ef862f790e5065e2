"""The regression suite for bad input: every hostile input issue 13 found, and what must keep
holding, as one parametrised CLI test.

Each case runs a ``forgetir`` command in-process and checks: exit code 2, exactly one line on
stderr (``forgetir CMD: error: ...``, no traceback), the line names the culprit (the file or
the option), and the output folder is absent or unchanged afterwards (nothing half-written).
A case is ``(id, build)``: ``build(env)`` makes whatever files the case needs under
``env.tmp`` and returns ``(argv, culprits, out)``; ``culprits`` are strings the message must
contain (``{tmp}`` stands for the case's folder), ``out`` the folder or file that must stay
as it was (None: nothing to watch).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import stat
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from forgetir.checkpoint import read_sidecar, save_model
from forgetir.cli import main
from forgetir.config import DataConfig, from_dict
from forgetir.data.io import write_image
from forgetir.data.splits import make_split, save_manifest
from forgetir.models import create_model

TINY_TRAIN = ["train.steps=1", "train.batch_size=2", "data.pool_size=2", "data.image_size=32"]
TINY_TRAIN += ["data.patch_size=32", "data.test_max_side=32", "optim.warmup_steps=0"]
TINY_UNLEARN = ["--steps", "1", "--batch-size", "2", "--patch-size", "32", "--no-verify"]
TINY_UNLEARN += ["--method", "accurate-forgetting"]  # its hyperparameters are the cases below
TINY_UNLEARN += ["--quiet"]
FAST_EVAL = ["--max-side", "32", "--tasks", "denoise_25"]


@dataclass
class Env:
    tmp: Path
    parent: Path  # a tiny trained model.safetensors (+ model.json)
    ut: Path  # another one, a stand-in UT (the parent's weights nudged)

    def data_config(self) -> DataConfig:
        return from_dict(DataConfig, read_sidecar(self.parent)["config"]["data"], "data.")

    def unlearn(self, *extra: str, out: str = "run") -> tuple[list[str], Path]:
        path = self.tmp / out
        return ["unlearn", str(self.parent), *TINY_UNLEARN, "--out", str(path), *extra], path

    def manifest(self, by: str = "degradation", what=("dehaze",), **edit: Any) -> Path:
        """A split manifest of the parent's data, with top-level parts edited."""
        cfg = self.data_config()
        if by == "class":
            cfg.content_classes = ["disks", "squares", "stripes"]
        m = make_split(cfg, by, list(what), held_out=2, test_n=1, test_size=32)
        for part, changes in edit.items():
            if isinstance(changes, dict):
                m[part].update(changes)
            else:
                m[part] = changes
        path = self.tmp / f"split-{by}.json"
        path.write_text(json.dumps(m))
        return path

    def model_file(self, name: str, tensor_edit=None, sidecar_edit=None, of=None) -> Path:
        """A copy of the parent (or ``of``: weights + sidecar) under ``name``, optionally
        altered."""
        weights = self.tmp / f"{name}.safetensors"
        source = of or self.parent
        shutil.copy(source, weights)
        shutil.copy(source.with_suffix(".json"), weights.with_suffix(".json"))
        if tensor_edit is not None:
            model = create_model("promptir-tiny")
            model.load_state_dict(
                {k: v for k, v in _load_tensors(self.parent).items()}, strict=True
            )
            tensor_edit(model)
            save_model(model, weights)
        if sidecar_edit is not None:
            meta = json.loads(weights.with_suffix(".json").read_text())
            sidecar_edit(meta)
            weights.with_suffix(".json").write_text(json.dumps(meta))
        return weights

    def eval_on(self, root: Path, task: str) -> list[str]:
        """``forgetir eval`` of the parent on the PromptIR-layout test set under ``root``."""
        return [
            "eval",
            str(self.parent),
            "--test-set",
            "promptir",
            "--root",
            str(root),
            "--tasks",
            task,
        ]

    def promptir_root(self, name: str = "promptir") -> Path:
        """A PromptIR-layout data folder with one BSD68 image and one Rain100L pair."""
        root = self.tmp / name
        write_image(root / "test" / "denoise" / "bsd68" / "a.png", torch.rand(3, 32, 32))
        for side in ("input", "target"):
            write_image(
                root / "test" / "derain" / "Rain100L" / side / "1.png", torch.rand(3, 32, 32)
            )
        return root


def _same_config(run: Path) -> list[str]:
    """``--config`` of the run in ``run`` (its resolved config.yaml): what --resume needs."""
    return ["--config", str(run / "config.yaml")]


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    import safetensors.torch

    return safetensors.torch.load_file(str(path))


def _snapshot(path: Path | None) -> Any:
    """Everything under ``path`` (names and bytes), to compare before and after a command."""
    if path is None:
        return None
    if path.is_symlink() and not path.exists():
        return "broken link"
    if not path.exists():
        return "absent"
    if path.is_file():
        return path.read_bytes()
    return {
        str(p.relative_to(path)): (p.read_bytes() if p.is_file() else "dir")
        for p in sorted(path.rglob("*"))
    }


def _unwritable(tmp: Path) -> Path:
    """A folder path no file can be created in, as this user."""
    if os.geteuid() != 0:
        ro = tmp / "read-only"
        ro.mkdir()
        ro.chmod(0o555)
        return ro / "out"
    if os.access("/sys", os.W_OK) and not _sys_refuses():
        pytest.skip("no unwritable folder available as root here")
    return Path("/sys/forgetir-bad-input/out")


def _sys_refuses() -> bool:
    try:
        Path("/sys/.forgetir-probe").touch()
    except OSError:
        return True
    Path("/sys/.forgetir-probe").unlink()
    return False


def _full_device(tmp: Path) -> Path:
    """A character device (a twin of /dev/full, made inside ``tmp``: a test that failed would
    replace this one, not the system's); skips where devices cannot be made (not root)."""
    dev = tmp / "full"
    if not dev.exists():
        try:
            os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 7))
        except (PermissionError, AttributeError):
            pytest.skip("making a character device needs root")
    return dev


def _file(tmp: Path, name: str = "a-file", text: str = "x") -> Path:
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


class _Evil:
    """Unpickling this would create a file: proof that the pickle's code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _malicious_ckpt(tmp: Path, name: str = "evil.ckpt", raw: bool = False) -> Path:
    path = tmp / name
    payload = {"state_dict": create_model("promptir-tiny").state_dict(), "x": _Evil(tmp / "PWNED")}
    if raw:  # the legacy, non-zip format
        path.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, path)
    return path


_HARMLESS_NET = "from torch import nn\n\ndef build():\n    return nn.Conv2d(3, 3, 3, padding=1)\n"


def _sidecar_naming_evil_module(tmp: Path) -> Path:
    """A checkpoint whose sidecar names, with its true SHA-256, a module that would create
    ``tmp/PWNED`` when imported: what an attacker ships beside weights."""
    from forgetir.models import external
    from forgetir.models.registry import MODELS

    good = tmp / "net_ok.py"
    good.write_text(_HARMLESS_NET)
    name = external.register_module_factory(f"{good}:build", f"evil-{tmp.name}")
    weights = tmp / "evil-model.safetensors"
    save_model(create_model(name), weights)
    del MODELS._items[name]  # as in a new process: nothing registered
    evil = tmp / "net_evil.py"
    evil.write_text(
        f"from pathlib import Path\nPath({str(tmp / 'PWNED')!r}).touch()\n" + _HARMLESS_NET
    )
    meta = json.loads(weights.with_suffix(".json").read_text())
    meta["model_source"].update(
        module=str(evil), sha256=__import__("hashlib").sha256(evil.read_bytes()).hexdigest()
    )
    weights.with_suffix(".json").write_text(json.dumps(meta))
    return weights


def test_loading_weights_never_imports_the_module_a_sidecar_names(tmp_path):
    from forgetir.checkpoint import load_model
    from forgetir.errors import InputFileError

    weights = _sidecar_naming_evil_module(tmp_path)
    with pytest.raises(InputFileError, match="never runs code"):
        load_model(weights)
    assert not (tmp_path / "PWNED").exists(), "the sidecar's module was imported"


def _huge_header(tmp: Path) -> Path:
    """A valid safetensors file whose header is 17 MiB: one tensor and a long metadata string
    (the issue's 63 MB header took 96 s to refuse)."""
    header = {
        "__metadata__": {"padding": "x" * (17 << 20)},
        "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
    }
    data = json.dumps(header).encode()
    path = tmp / "huge.safetensors"
    path.write_bytes(struct.pack("<Q", len(data)) + data + b"\0" * 4)
    return path


def _finished_run(e: Env) -> tuple[Path, Path, Path]:
    """A tiny unlearning run whose parent and UT are copies the case may then swap."""
    from forgetir.unlearn import UnlearnOptions, run_unlearn

    own_parent = e.model_file("own-parent")
    own_ut = e.model_file("own-ut", of=e.ut)
    opts = UnlearnOptions(
        steps=1,
        batch_size=2,
        patch_size=32,
        test_max_side=32,
        verify=False,
        grids=False,
        quiet=True,
    )
    run = e.tmp / "done"
    run_unlearn(own_parent, run, opts, forget=["dehaze"], ut=own_ut)
    return run, own_parent, own_ut


def _reported_run(e: Env) -> Path:
    """A finished run with the verify.json a report needs (its content is not read before the
    refusals these cases test)."""
    run, _, _ = _finished_run(e)
    (run / "verify.json").write_text("{}")
    return run


# --------------------------------------------------------------------------------- the cases
# Each builder returns (argv, culprits, watched output).


def _cases() -> list[tuple[str, Any]]:
    c: list[tuple[str, Any]] = []

    def case(name):
        def deco(fn):
            c.append((name, fn))
            return fn

        return deco

    # ---- 2. split manifests that contradict themselves, or do not fit the parent -----------
    @case("split-tasks-overlap-partly")
    def _(e):
        m = e.manifest(retain={"tasks": ["dehaze", "derain"]})
        argv, out = e.unlearn("--split", str(m))
        return argv, [str(m), "dehaze", "both"], out

    @case("split-tasks-overlap-entirely")
    def _(e):
        tasks = ["dehaze", "derain", "denoise_15", "denoise_25", "denoise_50"]
        m = e.manifest(forget={"tasks": tasks}, retain={"tasks": tasks})
        argv, out = e.unlearn("--split", str(m))
        return argv, [str(m), "both forget.tasks and retain.tasks"], out

    @case("split-forgets-a-task-the-data-never-had")
    def _(e):
        m = e.manifest(forget={"tasks": ["inpaint_4"]})
        argv, out = e.unlearn("--split", str(m))
        return argv, [str(m), "inpaint_4"], out

    @case("split-forgets-a-task-the-parent-never-learned")
    def _(e):
        cfg = e.data_config()
        cfg.tasks = ["dehaze", "inpaint_4"]
        m = e.tmp / "inpaint.json"
        save_manifest(make_split(cfg, "degradation", ["inpaint_4"], test_n=1, test_size=32), m)
        argv, out = e.unlearn("--split", str(m))
        return argv, [str(m), "inpaint_4", "parent"], out

    @case("split-instances-overlap-partly")
    def _(e):
        m0 = json.loads(e.manifest("instances", ["dl-000001"]).read_text())
        retain = m0["retain"]["entries"] + m0["forget"]["entries"]
        m = e.manifest("instances", ["dl-000001"], retain={"entries": retain, "count": len(retain)})
        argv, out = e.unlearn("--split", str(m))
        return argv, [str(m), "dl-000001", "both forget and retain"], out

    @case("split-instances-overlap-entirely")
    def _(e):
        m0 = json.loads(e.manifest("instances", ["dl-000001"]).read_text())
        m = e.manifest("instances", ["dl-000001"], retain=m0["forget"])
        argv, out = e.unlearn("--split", str(m))
        return argv, [str(m), "both forget and retain"], out

    @case("split-classes-overlap")
    def _(e):
        m = e.manifest("class", ["disks"], retain={"classes": ["disks", "squares"]})
        argv, out = e.unlearn("--split", str(m))
        return argv, [str(m), "disks", "both"], out

    @case("split-not-json")
    def _(e):
        m = _file(e.tmp, "split.json", "{nope")
        argv, out = e.unlearn("--split", str(m))
        return argv, [str(m), "not valid JSON"], out

    @case("split-missing")
    def _(e):
        argv, out = e.unlearn("--split", str(e.tmp / "nowhere.json"))
        return argv, ["nowhere.json"], out

    @case("split-altered-image-hash")
    def _(e):
        m0 = json.loads(e.manifest("instances", ["dl-000001"]).read_text())
        m0["forget"]["entries"][0]["sha256"] = "0" * 64
        m = _file(e.tmp, "altered.json", json.dumps(m0))
        argv, out = e.unlearn("--split", str(m))
        return argv, [str(m), "dl-000001"], out

    @case("split-unknown-kind")
    def _(e):
        m = e.manifest(kind="everything")
        argv, out = e.unlearn("--split", str(m))
        return argv, [str(m), "everything"], out

    @case("split-command-forgets-untrained-task")
    def _(e):
        out = e.tmp / "s.json"
        return (
            ["split", "--by", "degradation", "--forget", "inpaint_4", "--out", str(out)],
            ["inpaint_4"],
            out,
        )

    # ---- 3. options that contradict each other ------------------------------------------
    @case("forget-with-split")
    def _(e):
        m = e.manifest()
        argv, out = e.unlearn("--split", str(m), "--forget", "derain")
        return argv, ["--forget", "--split", "not both"], out

    @case("unlearn-neither-forget-nor-split")
    def _(e):
        argv, out = e.unlearn()
        return argv, ["--forget", "--split"], out

    @case("split-list-without-instances")
    def _(e):
        lst = _file(e.tmp, "ids.txt", "dl-000001\n")
        out = e.tmp / "s.json"
        return (
            ["split", "--by", "class", "--forget", "disks", "--forget-file", str(lst)]
            + ["--out", str(out)],
            ["--forget-file"],
            out,
        )

    # ---- 4. non-finite or nonsensical hyperparameters ------------------------------------
    for key, value, culprit in [
        ("optim.lr", "inf", "optim.lr"),
        ("optim.lr", "nan", "optim.lr"),
        ("optim.lr", "-1e-3", "in (0, 1]"),
        ("optim.lr", "0", "in (0, 1]"),
        ("optim.grad_clip", "nan", "optim.grad_clip"),
        ("optim.grad_clip", "-1", "> 0"),
        ("optim.warmup_steps", "-5", ">= 0"),
        ("optim.betas", "[0.9,1.5]", "in [0, 1)"),
        ("optim.weight_decay", "-0.1", "optim.weight_decay"),
        ("train.steps", "0", ">= 1"),
        ("train.steps", "-3", "train.steps"),
        ("train.threads", "0", ">= 1"),
        ("train.threads", "-1", "train.threads"),
        ("train.batch_size", "0", "train.batch_size"),
        ("data.patch_size", "4", "data.patch_size"),
        ("data.pool_size", "0", "data.pool_size"),
        ("model.args", "{bogus: 1}", "bogus"),
        ("model.args", "{dim: 3}", "model.args"),
    ]:

        @case(f"train-{key}={value}")
        def _(e, key=key, value=value, culprit=culprit):
            out = e.tmp / "train"
            return ["train", "--out", str(out), *TINY_TRAIN, f"{key}={value}"], [key, culprit], out

    for option, value, culprit in [
        ("--lr", "inf", "finite"),
        ("--lr", "nan", "--lr"),
        ("--lr", "-1", "in (0, 1]"),
        ("--steps", "0", ">= 1"),
        ("--batch-size", "0", "--batch-size"),
        ("--patch-size", "4", ">= 8"),
        ("--threads", "0", "--threads"),
        ("--threads", "-1", ">= 1"),
        ("--retain-budget", "nan", "--retain-budget"),
        ("--forget-floor", "inf", "--forget-floor"),
        ("--method", "nope", "accurate-forgetting"),
        ("--seed", "-1", "--seed"),
    ]:

        @case(f"unlearn{option}={value}")
        def _(e, option=option, value=value, culprit=culprit):
            argv, out = e.unlearn("--forget", "dehaze", option, value)
            return argv, [option if option != "--method" else "nope", culprit], out

    for hparam, culprit in [
        ("w_adv=nan", "w_adv"),
        ("w_adv=inf", "finite"),
        ("w_ul=-1", ">= 0"),
        ("w_r=-0.5", "w_r"),
        ("bogus_knob=1", "bogus_knob"),
        ("use_adv=maybe", "use_adv"),
    ]:

        @case(f"unlearn-hparam-{hparam}")
        def _(e, hparam=hparam, culprit=culprit):
            argv, out = e.unlearn("--forget", "dehaze", hparam)
            return argv, [culprit], out

    @case("unlearn-retrain-like-with-collapse-only-method")
    def _(e):
        argv, out = e.unlearn(
            "--forget", "dehaze", "--method", "gradient-ascent", "--target", "retrain-like"
        )
        return argv, ["gradient-ascent", "retrain-like"], out

    @case("unlearn-unknown-forget-task")
    def _(e):
        argv, out = e.unlearn("--forget", "fog")
        return argv, ["fog", "--forget"], out

    @case("unlearn-forget-untrained-task")
    def _(e):
        argv, out = e.unlearn("--forget", "inpaint_4")
        return argv, ["inpaint_4"], out

    @case("demo-steps-0")
    def _(e):
        out = e.tmp / "demo"
        return ["demo", "--steps", "0", "--out", str(out), "--quiet"], ["--steps", ">= 1"], out

    @case("demo-threads-0")
    def _(e):
        out = e.tmp / "demo"
        return ["demo", "--threads", "0", "--out", str(out)], ["--threads", ">= 1"], out

    @case("verify-relearn-steps-negative")
    def _(e):
        run = e.tmp / "fake-run"
        _file(run, "run.json", "{}")
        return ["verify", str(run), "--relearn-steps", "-1"], ["--relearn-steps", ">= 0"], run

    @case("reproduce-steps-0")
    def _(e):
        out = e.tmp / "grid"
        return ["reproduce", "--steps", "0", "--out", str(out)], ["--steps", ">= 1"], out

    # ---- 5. output paths, devices, configs ----------------------------------------------
    @case("train-out-is-a-file")
    def _(e):
        out = _file(e.tmp)
        return ["train", "--out", str(out), *TINY_TRAIN], [str(out), "is a file"], out

    @case("train-out-under-a-file")
    def _(e):
        f = _file(e.tmp)
        return ["train", "--out", str(f / "run"), *TINY_TRAIN], [str(f), "not a folder"], f

    @case("train-out-unwritable")
    def _(e):
        out = _unwritable(e.tmp)
        return ["train", "--out", str(out), *TINY_TRAIN], [str(out)], out

    @case("unlearn-out-is-a-file")
    def _(e):
        out = _file(e.tmp)
        argv, _ = e.unlearn("--forget", "dehaze", out="a-file")
        return argv, [str(out), "is a file"], out

    @case("unlearn-out-under-a-file")
    def _(e):
        f = _file(e.tmp)
        argv, _ = e.unlearn("--forget", "dehaze", out="a-file/run")
        return argv, [str(f), "not a folder"], f

    @case("unlearn-out-unwritable")
    def _(e):
        out = _unwritable(e.tmp)
        argv = ["unlearn", str(e.parent), *TINY_UNLEARN, "--forget", "dehaze", "--out", str(out)]
        return argv, [str(out)], out

    @case("unlearn-out-holds-a-run")
    def _(e):
        out = e.tmp / "run"
        _file(out, "run.json", "{}")
        _file(out, "split.json", "{}")
        argv, _ = e.unlearn("--forget", "dehaze")
        return argv, [str(out), "already holds", "--out"], out

    @case("unlearn-out-not-empty")
    def _(e):
        out = e.tmp / "run"
        _file(out, "notes.txt")
        argv, _ = e.unlearn("--forget", "dehaze")
        return argv, [str(out), "not empty", "notes.txt"], out

    @case("split-out-is-a-folder")
    def _(e):
        out = e.tmp / "folder"
        out.mkdir()
        return (
            ["split", "--by", "degradation", "--forget", "dehaze", "--out", str(out)],
            [str(out), "is a folder"],
            out,
        )

    @case("split-out-under-a-file")
    def _(e):
        f = _file(e.tmp)
        return (
            ["split", "--by", "degradation", "--forget", "dehaze", "--out", str(f / "s.json")],
            [str(f), "not a folder"],
            f,
        )

    @case("split-out-unwritable")
    def _(e):
        out = _unwritable(e.tmp)
        return (
            ["split", "--by", "degradation", "--forget", "dehaze", "--out", str(out / "s.json")],
            [str(out)],
            None,
        )

    @case("eval-out-is-a-folder")
    def _(e):
        out = e.tmp / "folder"
        out.mkdir()
        return (
            ["eval", str(e.parent), *FAST_EVAL, "--out", str(out)],
            [str(out), "is a folder"],
            out,
        )

    @case("eval-out-under-a-file")
    def _(e):
        f = _file(e.tmp)
        return ["eval", str(e.parent), *FAST_EVAL, "--out", str(f / "r.json")], [str(f)], f

    @case("eval-batch-size-0")
    def _(e):
        return ["eval", str(e.parent), "--batch-size", "0"], ["--batch-size", ">= 1"], None

    @case("eval-max-side-negative")
    def _(e):
        return ["eval", str(e.parent), "--max-side", "-1"], ["--max-side", ">= 0"], None

    @case("split-held-out-fraction-1.5")
    def _(e):
        out = e.tmp / "s.json"
        return (
            [
                "split",
                "--by",
                "class",
                "--forget",
                "disks",
                "--held-out-fraction",
                "1.5",
                "--out",
                str(out),
            ],
            ["--held-out-fraction", "in [0, 1)"],
            out,
        )

    @case("split-pool-size-0")
    def _(e):
        out = e.tmp / "s.json"
        return (
            [
                "split",
                "--by",
                "degradation",
                "--forget",
                "dehaze",
                "--pool-size",
                "0",
                "--out",
                str(out),
            ],
            ["--pool-size", ">= 1"],
            out,
        )

    @case("eval-device-unknown")
    def _(e):
        return ["eval", str(e.parent), "--device", "nope"], ["--device", "nope", "cpu"], None

    @case("eval-device-cuda-without-gpu")
    def _(e):
        if torch.cuda.is_available():
            pytest.skip("a GPU is present")
        return ["eval", str(e.parent), "--device", "cuda"], ["--device", "cuda", "no CUDA"], None

    @case("train-device-cuda-without-gpu")
    def _(e):
        if torch.cuda.is_available():
            pytest.skip("a GPU is present")
        out = e.tmp / "train"
        return (
            ["train", "--out", str(out), *TINY_TRAIN, "train.device=cuda"],
            ["train.device", "cuda"],
            out,
        )

    @case("config-file-missing")
    def _(e):
        return ["train", "--config", str(e.tmp / "nope.yaml")], ["nope.yaml"], None

    @case("config-file-not-yaml")
    def _(e):
        cfg = _file(e.tmp, "bad.yaml", "model: [unclosed")
        return ["train", "--config", str(cfg), "--out", str(e.tmp / "t")], [str(cfg)], None

    @case("config-file-binary")
    def _(e):
        cfg = e.tmp / "binary.yaml"
        cfg.write_bytes(b"\xff\xfe\x00binary")
        return ["train", "--config", str(cfg), "--out", str(e.tmp / "t")], [str(cfg)], None

    @case("verify-run-json-not-json")
    def _(e):
        run = e.tmp / "fake-run"
        _file(run, "run.json", "{nope")
        return ["verify", str(run)], [str(run / "run.json"), "not valid JSON"], run

    @case("unlearn-split-is-a-folder")
    def _(e):
        d = e.tmp / "split-dir"
        d.mkdir()
        argv, out = e.unlearn("--split", str(d))
        return argv, [str(d)], out

    @case("config-unknown-key")
    def _(e):
        return ["train", "--out", str(e.tmp / "t"), "optim.lrr=1"], ["optim.lrr", "optim.lr"], None

    @case("verify-run-json-unknown-option")
    def _(e):
        run = e.tmp / "fake-run"
        record = {
            "method": "finetune",
            "parent": {"path": "p.safetensors", "sha256": "0" * 64},
            "split": {"kind": "degradation", "forget": [], "retain": [], "manifest": None},
            "options": {"bogus_option": 1},
        }
        _file(run, "run.json", json.dumps(record))
        return ["verify", str(run)], [str(run / "run.json"), "bogus_option"], run

    @case("verify-not-a-run")
    def _(e):
        return ["verify", str(e.tmp)], [str(e.tmp), "run.json"], e.tmp

    @case("report-not-a-run")
    def _(e):
        return ["report", str(e.tmp / "nowhere")], ["nowhere"], None

    @case("promptir-layout-input-is-a-file")
    def _(e):
        root = e.promptir_root()
        inp = root / "test" / "derain" / "Rain100L" / "input"
        shutil.rmtree(inp)
        _file(inp.parent, "input")
        return e.eval_on(root, "derain"), [str(inp), "not a folder"], None

    @case("resume-damaged-checkpoint")
    def _(e):
        run = e.tmp / "before"
        shutil.copytree(e.parent.parent, run)
        data = bytearray((run / "model.safetensors").read_bytes())
        data[-1] ^= 0xFF
        (run / "model.safetensors").write_bytes(bytes(data))
        return (
            ["train", "--out", str(run), "--resume", "--quiet", *_same_config(run)],
            [str(run / "model.safetensors"), "cannot resume"],
            run,
        )

    @case("resume-without-resume-state")
    def _(e):
        run = e.tmp / "before"
        shutil.copytree(e.parent.parent, run)
        (run / "resume.pt").unlink()
        return (
            ["train", "--out", str(run), "--resume", "--quiet", *_same_config(run)],
            [str(run), "resume.pt"],
            run,
        )

    @case("train-into-a-finished-run-without-resume")
    def _(e):
        run = e.tmp / "before"
        shutil.copytree(e.parent.parent, run)
        return (
            ["train", "--out", str(run), "--quiet", *_same_config(run)],
            [str(run), "--resume"],
            run,
        )

    # ---- 6. nothing half-written: failures after the work started ------------------------
    @case("unlearn-fails-mid-run-on-a-bad-ut")
    def _(e):
        ut = _file(e.tmp, "ut.safetensors", "not weights")
        argv, out = e.unlearn("--forget", "dehaze", "--ut", str(ut))
        return argv, [str(ut)], out

    @case("unlearn-fails-mid-run-on-an-altered-split")
    def _(e):
        m0 = json.loads(e.manifest("instances", ["dl-000002"]).read_text())
        m0["retain"]["entries"][0]["sha256"] = "f" * 64
        m = _file(e.tmp, "altered.json", json.dumps(m0))
        argv, out = e.unlearn("--split", str(m), out="nested/deeper/run")
        return argv, [str(m)], e.tmp / "nested"

    @case("train-fails-after-writing-its-config")
    def _(e):
        # A promptir test set without its BSD68 folder: found after config.yaml is written.
        root = e.tmp / "data"
        (root / "Train").mkdir(parents=True)
        out = e.tmp / "train"
        return (
            [
                "train",
                "--out",
                str(out),
                *TINY_TRAIN,
                "data.test_set=promptir",
                f"data.root={root}",
                "data.tasks=[denoise_25]",
            ],
            ["bsd68"],
            out,
        )

    # ---- 7. entries that used to be dropped without a word -------------------------------
    @case("data-folder-with-a-looping-symlink")
    def _(e):
        root = e.promptir_root()
        loop = root / "test" / "denoise" / "bsd68" / "loop.png"
        loop.symlink_to(loop)
        return e.eval_on(root, "denoise_25"), [str(loop), "looping symlink"], None

    @case("data-folder-with-a-folder-named-png")
    def _(e):
        root = e.promptir_root()
        d = root / "test" / "denoise" / "bsd68" / "b.png"
        d.mkdir()
        return e.eval_on(root, "denoise_25"), [str(d), "a folder"], None

    @case("class-folder-with-a-folder-named-png")
    def _(e):
        root = e.tmp / "classes"
        for cls in ("cats", "dogs"):
            write_image(root / cls / "1.png", torch.rand(3, 16, 16))
        (root / "cats" / "2.png").mkdir()
        out = e.tmp / "s.json"
        return (
            [
                "split",
                "--by",
                "class",
                "--forget",
                "cats",
                "--source",
                "classes",
                "--root",
                str(root),
                "--out",
                str(out),
            ],
            [str(root / "cats" / "2.png")],
            out,
        )

    # ---- 8. smaller ones ----------------------------------------------------------------
    @case("one-pixel-test-image")
    def _(e):
        root = e.promptir_root()
        tiny = root / "test" / "denoise" / "bsd68" / "tiny.png"
        write_image(tiny, torch.rand(3, 1, 1))
        return e.eval_on(root, "denoise_25"), [str(tiny), "1x1"], None

    @case("corrupt-test-image")
    def _(e):
        root = e.promptir_root()
        bad = _file(root / "test" / "denoise" / "bsd68", "bad.png", "not a png")
        return e.eval_on(root, "denoise_25"), [str(bad)], None

    @case("nan-weights-eval")
    def _(e):
        w = e.model_file("nan", tensor_edit=lambda m: next(m.parameters()).data.fill_(float("nan")))
        return ["eval", str(w), *FAST_EVAL], [str(w), "NaN"], None

    @case("nan-weights-as-parent")
    def _(e):
        w = e.model_file("nan", tensor_edit=lambda m: next(m.parameters()).data.fill_(float("inf")))
        argv, out = e.unlearn("--forget", "dehaze")
        argv[1] = str(w)
        return argv, [str(w), "NaN or infinite"], out

    @case("huge-safetensors-header")
    def _(e):
        return (
            ["eval", str(_huge_header(e.tmp)), "--arch", "promptir-tiny", *FAST_EVAL],
            ["huge.safetensors", "header"],
            None,
        )

    @case("sidecar-args-would-build-a-huge-model")
    def _(e):
        w = e.model_file("big", sidecar_edit=lambda m: m["args"].update(dim=4096))
        return ["eval", str(w), *FAST_EVAL], [str(w), "do not fit"], None

    @case("sidecar-args-unknown-key")
    def _(e):
        w = e.model_file("odd", sidecar_edit=lambda m: m["args"].update(bogus=1))
        return ["eval", str(w), *FAST_EVAL], [str(w), "bogus"], None

    @case("eval-unknown-shipped-name")
    def _(e):
        return ["eval", "shipped:nope"], ["shipped:nope", "shipped:before"], None

    @case("eval-missing-checkpoint")
    def _(e):
        return ["eval", str(e.tmp / "gone.safetensors"), *FAST_EVAL], ["gone.safetensors"], None

    # ---- what must keep holding --------------------------------------------------------
    @case("malicious-pickle-eval")
    def _(e):
        ckpt = _malicious_ckpt(e.tmp)
        return (
            ["eval", str(ckpt), "--arch", "promptir-tiny", *FAST_EVAL],
            [str(ckpt), "not loadable safely"],
            None,
        )

    @case("malicious-pickle-unlearn")
    def _(e):
        ckpt = _malicious_ckpt(e.tmp)
        argv, out = e.unlearn("--forget", "dehaze", "--arch", "promptir-tiny")
        argv[1] = str(ckpt)
        return argv, [str(ckpt), "not loadable safely"], out

    @case("malicious-pickle-as-ut")
    def _(e):
        ckpt = _malicious_ckpt(e.tmp)
        argv, out = e.unlearn("--forget", "dehaze", "--ut", str(ckpt), "--arch", "promptir-tiny")
        return argv, [str(ckpt)], out

    @case("malicious-pickle-train-checkpoint")
    def _(e):
        ckpt = _malicious_ckpt(e.tmp)
        out = e.tmp / "train"
        return (
            ["train", "--out", str(out), *TINY_TRAIN, f"model.checkpoint={ckpt}"],
            [str(ckpt), "not loadable safely"],
            out,
        )

    @case("malicious-raw-pickle-eval")
    def _(e):
        ckpt = _malicious_ckpt(e.tmp, "evil.pth", raw=True)
        return (
            ["eval", str(ckpt), "--arch", "promptir-tiny", *FAST_EVAL],
            [str(ckpt), "not loadable safely"],
            None,
        )

    @case("verify-swapped-parent")
    def _(e):
        run, own_parent, _ = _finished_run(e)
        shutil.copy(run / "model.safetensors", own_parent)
        shutil.copy(run / "model.json", own_parent.with_suffix(".json"))
        return ["verify", str(run)], [str(own_parent), "BEFORE"], run

    @case("verify-swapped-ut")
    def _(e):
        run, own_parent, own_ut = _finished_run(e)
        shutil.copy(run / "model.safetensors", own_ut)
        shutil.copy(run / "model.json", own_ut.with_suffix(".json"))
        return ["verify", str(run)], [str(own_ut), "UT"], run

    @case("garbage-safetensors")
    def _(e):
        w = _file(e.tmp, "junk.safetensors", "garbage bytes, not a safetensors file")
        return ["eval", str(w), "--arch", "promptir-tiny", *FAST_EVAL], [str(w)], None

    @case("truncated-safetensors")
    def _(e):
        w = e.model_file("cut")
        w.write_bytes(w.read_bytes()[:-1000])
        meta = json.loads(w.with_suffix(".json").read_text())
        meta["sha256"] = __import__("hashlib").sha256(w.read_bytes()).hexdigest()
        w.with_suffix(".json").write_text(json.dumps(meta))
        return ["eval", str(w), *FAST_EVAL], [str(w)], None

    @case("sidecar-not-json")
    def _(e):
        w = e.model_file("bad-sidecar")
        w.with_suffix(".json").write_text("{not json")
        return ["eval", str(w), *FAST_EVAL], [str(w.with_suffix(".json")), "not valid JSON"], None

    @case("weights-do-not-match-sidecar-hash")
    def _(e):
        w = e.model_file("swapped", tensor_edit=lambda m: next(m.parameters()).data.add_(1.0))
        shutil.copy(e.parent.with_suffix(".json"), w.with_suffix(".json"))
        return ["eval", str(w), *FAST_EVAL], [str(w), "sha256"], None

    @case("deletion-list-missing")
    def _(e):
        out = e.tmp / "s.json"
        return (
            ["split", "--by", "instances", "--forget-file", str(e.tmp / "gone.txt")]
            + ["--out", str(out)],
            ["gone.txt"],
            out,
        )

    @case("deletion-list-names-unknown-images")
    def _(e):
        lst = _file(e.tmp, "ids.txt", "dl-999999\n")
        out = e.tmp / "s.json"
        return (
            [
                "split",
                "--by",
                "instances",
                "--forget-file",
                str(lst),
                "--pool-size",
                "4",
                "--image-size",
                "16",
                "--out",
                str(out),
            ],
            ["dl-999999"],
            out,
        )

    # ---- issue 23: writes that never destroy -----------------------------------------------
    @case("eval-out-is-a-fifo")
    def _(e):
        fifo = e.tmp / "pipe"
        os.mkfifo(fifo)
        return ["eval", str(e.parent), *FAST_EVAL, "--out", str(fifo)], [str(fifo), "FIFO"], fifo

    @case("eval-out-is-a-character-device")
    def _(e):
        return (
            ["eval", str(e.parent), *FAST_EVAL, "--out", str(_full_device(e.tmp))],
            ["character device"],
            _full_device(e.tmp),
        )

    @case("split-out-is-a-fifo")
    def _(e):
        fifo = e.tmp / "split-pipe"
        os.mkfifo(fifo)
        argv = ["split", "--by", "degradation", "--forget", "dehaze", "--out", str(fifo)]
        return argv, [str(fifo), "FIFO"], fifo

    @case("unlearn-out-is-a-symlink-to-a-folder")
    def _(e):
        real = e.tmp / "elsewhere"
        real.mkdir()
        link = e.tmp / "link"
        link.symlink_to(real)
        argv, _ = e.unlearn("--forget", "dehaze", out="link")
        return argv, [str(link), "symlink"], real

    @case("report-through-a-symlinked-figure-folder")
    def _(e):
        run = _reported_run(e)
        outside = e.tmp / "outside"
        outside.mkdir()
        (outside / "keep.png").write_bytes(b"not yours")
        (run / "report_files").symlink_to(outside)
        return ["report", str(run)], [str(run / "report_files"), "symlink"], outside

    @case("report-html-is-a-symlink-to-a-file-outside")
    def _(e):
        run = _reported_run(e)
        victim = _file(e.tmp, "victim.html", "precious")
        (run / "report.html").symlink_to(victim)
        return ["report", str(run)], [str(run / "report.html"), "symlink"], victim

    # ---- issue 23: data never runs ---------------------------------------------------------
    @case("sidecar-names-a-module-with-a-matching-hash")
    def _(e):
        w = _sidecar_naming_evil_module(e.tmp)
        return ["eval", str(w), *FAST_EVAL], [str(w), "--model-module", "never runs code"], None

    # ---- issue 23: everything a verdict reads is hashed or recomputed ------------------------
    @case("verify-edited-quality-table")
    def _(e):
        run, _, _ = _finished_run(e)
        q = json.loads((run / "quality.json").read_text())
        for task in q["rows"]["unlearned"].values():
            task["psnr"] = 5.0  # "forgotten" by decree
        (run / "quality.json").write_text(json.dumps(q))
        return ["verify", str(run)], [str(run / "quality.json"), "changed"], run

    @case("report-edited-quality-table")
    def _(e):
        run = _reported_run(e)
        q = json.loads((run / "quality.json").read_text())
        q["rows"]["unlearned"] = q["rows"]["UT"]
        (run / "quality.json").write_text(json.dumps(q))
        return ["report", str(run)], ["quality", "changed"], run

    @case("verify-run-json-without-files")
    def _(e):
        run, own_parent, _ = _finished_run(e)
        data = json.loads((run / "run.json").read_text())
        del data["files"]  # not "an older version": nothing could be checked
        (run / "run.json").write_text(json.dumps(data))
        shutil.copy(e.ut, run / "model.safetensors")  # so a swapped model would pass
        shutil.copy(e.ut.with_suffix(".json"), run / "model.json")
        return ["verify", str(run)], [str(run / "run.json"), "records no files"], run

    @case("report-run-json-without-files")
    def _(e):
        run = _reported_run(e)
        data = json.loads((run / "run.json").read_text())
        del data["files"]
        (run / "run.json").write_text(json.dumps(data))
        return ["report", str(run)], [str(run / "run.json"), "records no files"], run

    @case("verify-ut-is-the-parent-itself")
    def _(e):
        run, own_parent, _ = _finished_run(e)
        copy = e.model_file("parent-again", of=own_parent)  # another path, the same bytes
        return ["verify", str(run), "--ut", str(copy)], [str(copy), "parent (BEFORE) itself"], run

    @case("unlearn-ut-is-the-parent-itself")
    def _(e):
        argv, out = e.unlearn("--forget", "dehaze", "--ut", str(e.parent))
        return argv, [str(e.parent), "--ut", "itself"], out

    # ---- issue 23: bounds on numbers that mean nothing ---------------------------------------
    for name, extra, culprit in (
        ("unlearn-lr-1e308", ("--lr", "1e308"), "--lr"),
        ("unlearn-retain-budget-negative", ("--retain-budget", "-5"), "--retain-budget"),
        ("unlearn-seed-beyond-64-bits", ("--seed", str(10**23)), "--seed"),
        ("unlearn-loss-weight-1e308", ("w_r=1e308",), "w_r"),
        ("unlearn-keep-ratio-1e-300", ("--method", "proxy-retrain", "keep_ratio=1e-300"), "keep"),
    ):

        def build(e, extra=extra, culprit=culprit):
            argv, out = e.unlearn("--forget", "dehaze", *extra)
            return argv, [culprit, "valid"] if culprit != "keep" else ["keep_ratio"], out

        case(name)(build)

    @case("train-seed-beyond-64-bits")
    def _(e):
        out = e.tmp / "t"
        return (
            ["train", *TINY_TRAIN, f"train.seed={10**23}", "--out", str(out)],
            [
                "train.seed",
                "valid",
            ],
            out,
        )

    @case("verify-recorded-parent-is-now-a-fifo")
    def _(e):
        run, own_parent, _ = _finished_run(e)
        own_parent.unlink()
        os.mkfifo(own_parent)  # hashing it would block forever
        return ["verify", str(run)], [str(own_parent), "not a regular file"], run

    @case("eval-checkpoint-is-a-fifo")
    def _(e):
        fifo = e.tmp / "weights.safetensors"
        os.mkfifo(fifo)
        return ["eval", str(fifo), *FAST_EVAL], [str(fifo), "not a regular file"], None

    return c


CASES = _cases()


@pytest.fixture
def env(parent, ut_ckpt, tmp_path) -> Env:
    return Env(tmp_path, Path(parent), Path(ut_ckpt))


@pytest.mark.parametrize("build", [b for _, b in CASES], ids=[n for n, _ in CASES])
def test_bad_input_is_refused_cleanly(build, env, capsys):
    argv, culprits, watched = build(env)
    before = _snapshot(watched)
    code = main(argv)
    err = capsys.readouterr().err.strip()
    lines = err.splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith(f"forgetir {argv[0]}: error: "), err
    for culprit in culprits:
        assert culprit in lines[0], f"{culprit!r} not named in: {lines[0]}"
    assert _snapshot(watched) == before, "the output changed"
    partial = [p.name for p in env.tmp.rglob(".*partial*")] + [
        p.name for p in env.tmp.rglob(".*.tmp")
    ]
    assert not partial, f"half-written leftovers: {partial}"
    assert not (env.tmp / "PWNED").exists(), "a pickle's code ran"
    if argv[0] == "unlearn":
        assert "--resume" not in lines[0], "unlearn has no --resume"


def test_there_are_enough_cases():
    assert len(CASES) >= 60


# ------------------------------------------------------------------- what is accepted instead


def test_eval_accepts_shipped_names(capsys, tmp_path):
    out = tmp_path / "r.json"
    assert (
        main(
            [
                "eval",
                "shipped:before",
                "--tasks",
                "denoise_25",
                "--max-side",
                "32",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "| before |" in capsys.readouterr().out
    assert json.loads(out.read_text())["checkpoints"]["before"] == "shipped:before"


def test_resume_cleans_orphans_and_keeps_one_event_file(parent, tmp_path, capsys):
    run = tmp_path / "before"
    shutil.copytree(Path(parent).parent, run)
    orphan = run / ".model.safetensors.abc123.tmp"
    orphan.write_bytes(b"half a save")
    assert len(list((run / "tb").glob("events.out.tfevents.*"))) == 1
    assert main(["train", "--out", str(run), "--resume", "--quiet", *_same_config(run)]) == 0
    assert not orphan.exists()
    events = list((run / "tb").glob("events.out.tfevents.*"))
    assert len(events) == 1, events


def test_a_huge_header_is_refused_fast(tmp_path, capsys):
    path = _huge_header(tmp_path)
    t0 = time.perf_counter()
    assert main(["eval", str(path), "--arch", "promptir-tiny", *FAST_EVAL]) == 2
    assert time.perf_counter() - t0 < 10  # it took 96 s when the header was parsed
    assert "header" in capsys.readouterr().err


def test_a_bug_keeps_its_traceback(monkeypatch):
    from forgetir.cli.main import _COMMANDS

    def broken(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setitem(_COMMANDS, "eval", (*_COMMANDS["eval"][:2], broken))
    with pytest.raises(ZeroDivisionError):
        main(["eval", "shipped:before"])


def test_a_finished_unlearn_run_appears_whole(parent, tmp_path):
    from forgetir.unlearn import UnlearnOptions, run_unlearn

    out = tmp_path / "run"
    stale = tmp_path / ".run.partial-k1lled_x"  # what a SIGKILLed run leaves (no lock held)
    (stale / "model.safetensors").parent.mkdir()
    (stale / "model.safetensors").write_bytes(b"half")
    (stale / ".forgetir.lock").write_text('{"pid": 1, "host": "h", "started": "t"}')  # not held
    older = tmp_path / ".run.partial-0ld3r___"  # killed before it took its lock: aged 1 h
    older.mkdir()
    os.utime(older, (time.time() - 3600,) * 2)
    opts = UnlearnOptions(
        steps=1,
        batch_size=2,
        patch_size=32,
        test_max_side=32,
        verify=False,
        grids=False,
        quiet=True,
    )
    run = run_unlearn(parent, out, opts, forget=["dehaze"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert {"run.json", "model.safetensors", "model.json", "split.json"} <= {
        p.name for p in out.iterdir()
    }
    assert not (out / "resume.pt").exists()  # unlearn has no --resume
    assert run["split"]["manifest"]["path"] == str(out / "split.json")


# ------------------------------------------------- issue 23: run folders locked, names bounded


def test_a_second_run_into_the_same_out_is_refused_naming_the_holder(parent, tmp_path, capsys):
    import socket

    from forgetir.runs.lock import working_folder

    out = tmp_path / "run"
    with working_folder(out.absolute()) as work:  # a first run, working now
        (work / "half.bin").write_bytes(b"the first run's work")
        argv = ["unlearn", str(parent), *TINY_UNLEARN, "--forget", "dehaze", "--out", str(out)]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert f"pid {os.getpid()}" in err and socket.gethostname() in err and str(out) in err
        # The first run's working folder is untouched.
        assert (work / "half.bin").read_bytes() == b"the first run's work"
    assert not out.exists()


def test_stale_cleanup_touches_only_folders_named_exactly_ours(tmp_path):
    from forgetir.runs.lock import remove_stale

    old = time.time() - 3600
    others = [tmp_path / ".other.partial-abcdefgh", tmp_path / ".run.partial-abc"]
    for folder in others:
        folder.mkdir()
        os.utime(folder, (old, old))
    # `--out '*'` is a name, not a pattern: another run's working folder is not its own.
    assert remove_stale(tmp_path / "*") == []
    assert remove_stale(tmp_path / "run") == []  # ".run.partial-abc" is not a mkdtemp name
    assert all(f.is_dir() for f in others)
    link = tmp_path / ".run.partial-abcdefgh"
    link.symlink_to(others[0])  # a symlink is never followed into
    assert remove_stale(tmp_path / "run") == []
    assert others[0].is_dir()


def test_long_out_names_keep_their_working_names_within_the_limit(tmp_path):
    from forgetir.atomic import atomic_write
    from forgetir.runs.lock import partial_prefix, working_folder

    name = "r" * 250
    assert len(partial_prefix(tmp_path / name)) + 8 <= 255
    with working_folder(tmp_path / name) as work:
        assert work.is_dir() and (work / ".forgetir.lock").is_file()
    shutil.rmtree(work)
    target = tmp_path / ("x" * 255)  # the longest name: its temporary file is shortened
    assert atomic_write(target, "a").read_text() == "a"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_atomic_writes_never_replace_special_files(tmp_path):
    from forgetir.atomic import atomic_json, atomic_write
    from forgetir.errors import OutputPathError

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(OutputPathError, match="FIFO"):
        atomic_json(fifo, {"a": 1})
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    victim = _file(tmp_path, "victim", "precious")
    link = tmp_path / "link"
    link.symlink_to(victim)
    with pytest.raises(OutputPathError, match="symlink"):
        atomic_write(link, "overwritten")
    assert link.is_symlink() and victim.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "pipe", "victim"]


# ------------------------------------------------------- issue 23: interrupts end in one line


@pytest.mark.parametrize(("sig", "code"), [("SIGTERM", 143), ("SIGINT", 130)])
def test_an_interrupted_unlearn_ends_in_one_line_and_leaves_nothing(parent, tmp_path, sig, code):
    import signal
    import subprocess
    import sys

    import forgetir

    out = tmp_path / "run"
    argv = ["unlearn", str(parent), "--forget", "dehaze", "--steps", "100000", "--batch-size"]
    argv += ["2", "--patch-size", "32", "--no-verify", "--quiet", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(Path(forgetir.__file__).parents[1])}
    # A shell without job control starts background jobs with SIGINT ignored, and Python keeps
    # an ignored SIGINT ignored: the child gets the default action back, as in a terminal.
    proc = subprocess.Popen(
        [sys.executable, "-m", "forgetir.cli", *argv],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 120
    while not list(tmp_path.glob(".run.partial-*/*.json")) and time.time() < deadline:
        time.sleep(0.2)  # until the run works in its folder
    assert proc.poll() is None, proc.communicate()[1]
    proc.send_signal(getattr(signal, sig))
    _, err = proc.communicate(timeout=120)
    lines = err.strip().splitlines()
    assert proc.returncode == code, err
    assert lines == [
        f"forgetir unlearn: {'terminated' if code == 143 else 'interrupted'}"
        + (" (SIGTERM)" if code == 143 else " (Ctrl-C)")
    ], err
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "a partial run was left"


def test_a_second_train_into_the_same_out_is_refused_naming_the_holder(tmp_path, capsys):
    from forgetir.runs.lock import hold

    out = tmp_path / "train"
    with hold(out):  # a first training, working in place now
        (out / "log.csv").write_text("the first run's log\n")
        assert main(["train", "--out", str(out), *TINY_TRAIN, "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"pid {os.getpid()}" in err, err
        assert sorted(p.name for p in out.iterdir()) == [".forgetir.lock", "log.csv"]
        assert (out / "log.csv").read_text() == "the first run's log\n"
    assert [p.name for p in out.iterdir()] == ["log.csv"]  # the lock goes with its holder
