"""The training loop: schedule, clipping, logs, checkpoints, non-finite guard, exact resume."""

from __future__ import annotations

import csv
import itertools
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import safetensors.torch
import torch
from torch import nn

from forgetir.checkpoint import read_sidecar
from forgetir.config import ConfigError, OptimConfig, TrainConfig
from forgetir.engine import Engine, NonFiniteLossError, config_hash, fit, lr_at
from forgetir.models.base import AuxLossMixin

SRC = str(Path(__file__).resolve().parents[1] / "src")


class Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.head = nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.head(torch.relu(self.conv(x)))


def make_toy() -> Toy:
    torch.manual_seed(0)
    model = Toy()
    model.forgetir_spec = {"name": "toy", "args": {}}
    return model


def batches(start: int):
    for step in itertools.count(start):
        g = torch.Generator().manual_seed(step)
        clean = torch.rand(4, 3, 8, 8, generator=g)
        noisy = (clean + 0.2 * torch.randn(4, 3, 8, 8, generator=g)).clamp(0, 1)
        yield {"degraded": noisy, "clean": clean}


def l1_loss(batch, step, model):
    out = model(batch["degraded"])
    return {
        "loss": (out - batch["clean"]).abs().mean(),
        "mse": (out - batch["clean"]).pow(2).mean(),
    }


def train_cfg(**kw) -> TrainConfig:
    base = dict(steps=10, log_every=2, ckpt_every=4, tensorboard=False, threads=1)
    base.update(kw)
    return TrainConfig(**base)


def test_loss_decreases_on_a_denoising_toy():
    model = make_toy()
    losses = []
    Engine(model, OptimConfig(lr=1e-2), train_cfg(steps=60), quiet=True).fit(
        l1_loss, batches, on_step_end=lambda s, logs: losses.append(logs["loss"])
    )
    assert len(losses) == 60
    assert sum(losses[-10:]) / 10 < 0.7 * sum(losses[:10]) / 10


def test_schedule_warmup_then_cosine_to_min_lr():
    o = OptimConfig(lr=1e-3, warmup_steps=4, min_lr=1e-5)
    lrs = [lr_at(s, o, 14) for s in range(14)]
    assert lrs[:4] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3])
    assert lrs[4] == pytest.approx(1e-3)
    # half cosine over the 10 post-warm-up steps: the midpoint is the mean of lr and min_lr
    assert lrs[9] == pytest.approx(1e-5 + (1e-3 - 1e-5) * 0.5)
    assert all(a > b for a, b in itertools.pairwise(lrs[4:]))
    assert lr_at(14, o, 14) == pytest.approx(1e-5)
    # decay_steps longer than the run (official recipe): lr has not reached min at the end
    o2 = OptimConfig(lr=1.0, warmup_steps=0, decay_steps=20)
    assert lr_at(10, o2, 12) == pytest.approx(0.5)
    const = OptimConfig(lr=3e-4, warmup_steps=2, schedule="constant")
    assert [lr_at(s, const, 5) for s in range(5)] == pytest.approx([1.5e-4, 3e-4, 3e-4, 3e-4, 3e-4])


def test_engine_sets_scheduled_lr_each_step():
    seen = []
    o = OptimConfig(lr=1e-2, warmup_steps=3, min_lr=1e-4)
    fit(make_toy(), l1_loss, batches, o, train_cfg(steps=8), quiet=True,
        on_step_end=lambda s, logs: seen.append(logs["lr"]))  # fmt: skip
    assert seen == pytest.approx([lr_at(s, o, 8) for s in range(8)])


def test_gradient_clipping_is_applied():
    model = make_toy()
    norms = []

    def big_loss(batch, step, model):
        return {"loss": 1e3 * (model(batch["degraded"]) - batch["clean"]).pow(2).mean()}

    def check(step, logs):
        total = torch.sqrt(sum(p.grad.pow(2).sum() for p in model.parameters()))
        norms.append((logs["grad_norm"], float(total)))

    fit(model, big_loss, batches, OptimConfig(grad_clip=0.5), train_cfg(steps=3), quiet=True,
        on_step_end=check)  # fmt: skip
    for before, after in norms:
        assert before > 0.5
        assert after == pytest.approx(0.5, rel=1e-4)


def test_csv_log_tensorboard_and_atomic_checkpoints(tmp_path):
    out = tmp_path / "run"
    r = fit(make_toy(), l1_loss, batches, OptimConfig(), train_cfg(steps=6, ckpt_every=2,
            tensorboard=True), out, quiet=True, meta={"command": "pytest"})  # fmt: skip
    assert r.step == 6 and r.checkpoint == out / "model.safetensors"
    with open(out / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(row["step"]) for row in rows] == [2, 4, 6]
    assert list(rows[0])[:3] == ["step", "loss", "lr"] and list(rows[0])[-1] == "time"
    assert {"mse", "grad_norm"} <= set(rows[0])
    assert all(math.isfinite(float(row["loss"])) for row in rows)
    assert r.logs["loss"] == pytest.approx(float(rows[-1]["loss"]), rel=1e-5)
    assert any((out / "tb").iterdir())
    assert not list(out.rglob("*.tmp")) and not (out / "resume.next.pt").exists()
    state = torch.load(out / "resume.pt", weights_only=True)
    assert state["step"] == 6 and len(state["rng"]) == 1
    side = read_sidecar(out)
    assert side["step"] == 6 and side["command"] == "pytest"


def test_existing_run_needs_resume_and_same_config(tmp_path):
    cfg = {"train": {"steps": 4, "log_every": 2}, "optim": {"lr": 1e-3}}
    fit(make_toy(), l1_loss, batches, OptimConfig(), train_cfg(steps=4), tmp_path, quiet=True,
        config=cfg)  # fmt: skip
    with pytest.raises(FileExistsError, match="resume"):
        fit(make_toy(), l1_loss, batches, OptimConfig(), train_cfg(steps=4), tmp_path, quiet=True)
    changed = {"train": {"steps": 4, "log_every": 2}, "optim": {"lr": 5e-3}}
    with pytest.raises(ConfigError, match="optim.lr"):
        fit(make_toy(), l1_loss, batches, OptimConfig(), train_cfg(steps=4), tmp_path,
            resume=True, quiet=True, config=changed)  # fmt: skip
    # log_every may change: a finished run resumes to a no-op
    safe = {"train": {"steps": 4, "log_every": 1}, "optim": {"lr": 1e-3}}
    r = fit(make_toy(), l1_loss, batches, OptimConfig(), train_cfg(steps=4), tmp_path,
            resume=True, quiet=True, config=safe)  # fmt: skip
    assert r.resumed_from == 4 and r.steps_run == 0
    assert config_hash(cfg) == config_hash(safe) != config_hash(changed)
    (tmp_path / "resume.pt").unlink()  # weights alone cannot be resumed exactly
    with pytest.raises(FileNotFoundError, match="no resume.pt"):
        fit(make_toy(), l1_loss, batches, OptimConfig(), train_cfg(steps=4), tmp_path,
            resume=True, quiet=True)  # fmt: skip


def test_nonfinite_loss_rolls_back_to_last_good_weights(tmp_path):
    model = make_toy()
    kept = {}

    def loss(batch, step, model):
        value = (model(batch["degraded"]) - batch["clean"]).abs().mean()
        return {"loss": value * float("nan") if step == 7 else value}

    def remember(step, logs):
        kept[step] = {k: v.clone() for k, v in model.state_dict().items()}

    r = fit(model, loss, batches, OptimConfig(lr=1e-2), train_cfg(steps=10, guard_every=5),
            tmp_path, quiet=True, on_step_end=remember)  # fmt: skip
    # the last snapshot is the state before update 6 (after 5 steps), which gave a finite loss
    assert r.step == 5 and "non-finite loss" in r.stopped_early and "rolled back" in r.stopped_early
    for k, v in model.state_dict().items():
        assert torch.equal(v, kept[5][k])
    saved = safetensors.torch.load_file(str(tmp_path / "model.safetensors"))
    assert all(torch.equal(saved[k], v) for k, v in kept[5].items())
    assert read_sidecar(tmp_path)["step"] == 5
    with pytest.raises(NonFiniteLossError):
        Engine(make_toy(), OptimConfig(), train_cfg(steps=10), quiet=True).fit(
            loss, batches, raise_on_nonfinite=True
        )


def test_nonfinite_skip_policy_skips_the_step():
    model = make_toy()
    before = {}

    def loss(batch, step, model):
        value = (model(batch["degraded"]) - batch["clean"]).abs().mean()
        return {"loss": value + float("inf") if step == 2 else value}

    def watch(step, logs):
        before[step] = [p.detach().clone() for p in model.parameters()]

    r = fit(model, loss, batches, OptimConfig(), train_cfg(steps=5, nonfinite="skip"), quiet=True,
            on_step_end=watch)  # fmt: skip
    assert r.step == 5 and r.skipped_steps == 1 and r.stopped_early is None
    assert all(torch.equal(a, b) for a, b in zip(before[2], before[3], strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(before[3], before[4], strict=True))


def test_params_subset_freezes_the_rest_then_restores():
    model = make_toy()
    head0 = model.head.weight.detach().clone()
    conv0 = model.conv.weight.detach().clone()
    fit(model, l1_loss, batches, OptimConfig(lr=1e-2), train_cfg(steps=3), quiet=True,
        params=list(model.conv.parameters()))  # fmt: skip
    assert torch.equal(model.head.weight, head0) and not torch.equal(model.conv.weight, conv0)
    assert all(p.requires_grad for p in model.parameters())


def test_callback_stop_and_plain_iterable_source():
    model = make_toy()
    data = [next(batches(i)) for i in range(3)]  # a finite list is re-iterated like epochs

    def loss(batch, step):  # no `model` argument: closes over the module (single process)
        return {"loss": (model(batch["degraded"]) - batch["clean"]).abs().mean()}

    r = fit(model, loss, data, OptimConfig(), train_cfg(steps=50), quiet=True,
            on_step_end=lambda s, logs: s >= 7)  # fmt: skip
    assert r.step == 7 and "on_step_end" in r.stopped_early


def test_channels_last_and_bf16_autocast_run_on_cpu():
    cfg = train_cfg(steps=3, channels_last=True, precision="bf16")
    seen = []
    r = fit(make_toy(), l1_loss, batches, OptimConfig(), cfg, quiet=True,
            on_step_end=lambda s, logs: seen.append(logs["loss"]))  # fmt: skip
    assert r.step == 3 and all(math.isfinite(v) for v in seen)


def test_bad_settings_are_named():
    with pytest.raises(ConfigError, match="train.precision"):
        Engine(make_toy(), OptimConfig(), train_cfg(precision="fp8"), quiet=True)
    with pytest.raises(ConfigError, match="fp16 needs a CUDA"):
        Engine(make_toy(), OptimConfig(), train_cfg(precision="fp16", device="cpu"), quiet=True)
    with pytest.raises(ConfigError, match="optim.name"):
        Engine(make_toy(), OptimConfig(name="rmsprop"), train_cfg(), quiet=True)
    with pytest.raises(TypeError, match="'loss'"):
        fit(make_toy(), lambda b, s: {"l": 1}, batches, OptimConfig(), train_cfg(), quiet=True)


_CHILD = textwrap.dedent(
    """
    import itertools, os, signal, sys
    import torch
    from torch import nn
    from forgetir.config import OptimConfig, TrainConfig
    from forgetir.engine import fit

    torch.set_num_threads(1)

    class Toy(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)
            self.head = nn.Conv2d(3, 3, 1)

        def forward(self, x):
            return x + self.head(torch.relu(self.conv(x)))

    def batches(start):
        for step in itertools.count(start):
            g = torch.Generator().manual_seed(step)
            clean = torch.rand(4, 3, 8, 8, generator=g)
            yield {"degraded": (clean + 0.2 * torch.randn(4, 3, 8, 8, generator=g)).clamp(0, 1),
                   "clean": clean}

    def loss(batch, step, model):
        # a random target jitter, so that the restored global RNG matters
        target = (batch["clean"] + 0.05 * torch.rand_like(batch["clean"])).clamp(0, 1)
        return {"loss": (model(batch["degraded"]) - target).abs().mean()}

    def run(out, resume, kill_at=None):
        torch.manual_seed(0)
        model = Toy()
        model.forgetir_spec = {"name": "toy", "args": {}}

        def killer(step, logs):
            if step == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

        cfg = TrainConfig(steps=10, ckpt_every=3, log_every=1, seed=5, tensorboard=True)
        fit(model, loss, batches, OptimConfig(lr=1e-2, warmup_steps=2, min_lr=1e-4), cfg, out,
            resume=resume, quiet=True, on_step_end=killer, config={"x": 1})

    mode, out = sys.argv[1], sys.argv[2]
    if mode == "kill":
        run(out, False, kill_at=7)
    else:
        run(out, True)
        run(sys.argv[3], False)
    """
)


def test_sigkill_then_resume_gives_identical_weights(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    killed, full = tmp_path / "killed", tmp_path / "full"
    p = subprocess.run([sys.executable, str(script), "kill", str(killed)], env=env, timeout=120)
    assert p.returncode == -9  # really killed, mid-run (after the checkpoint at step 6)
    assert read_sidecar(killed)["step"] == 6
    p = subprocess.run(
        [sys.executable, str(script), "resume", str(killed), str(full)], env=env, timeout=120
    )
    assert p.returncode == 0
    a = safetensors.torch.load_file(str(killed / "model.safetensors"))
    b = safetensors.torch.load_file(str(full / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert read_sidecar(killed)["step"] == read_sidecar(full)["step"] == 10

    def losses(d: Path) -> list[tuple[str, str]]:
        with open(d / "log.csv") as f:
            return [(r["step"], r["loss"]) for r in csv.DictReader(f)]

    assert losses(killed) == losses(full) and len(losses(full)) == 10


class AuxToy(AuxLossMixin, Toy):
    """A Toy whose training forwards record an auxiliary loss: the mean head weight squared."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.record_aux_loss(self.head.weight.square().sum())
        return super().forward(x)


def test_auxiliary_losses_recorded_by_the_model_join_the_step_loss():
    torch.manual_seed(0)
    model = AuxToy()
    logs_seen = []
    Engine(model, OptimConfig(lr=1e-2), train_cfg(steps=2, log_every=1), quiet=True).fit(
        l1_loss, batches, on_step_end=lambda s, logs: logs_seen.append(dict(logs))
    )
    assert all(logs["aux_loss"] > 0 for logs in logs_seen)
    # The step's loss is the loss_fn's plus the auxiliary term.
    torch.manual_seed(0)
    again = AuxToy()
    batch = next(batches(0))
    expected = (again(batch["degraded"]) - batch["clean"]).abs().mean()
    expected = expected + again.head.weight.square().sum()
    assert logs_seen[0]["loss"] == pytest.approx(float(expected.detach()), rel=1e-5)
    assert model._aux_sink is None  # nothing kept once the step is over
