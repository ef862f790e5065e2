"""DDP under torchrun: two CPU processes (Gloo) on halves of the global batch train exactly like
one process on the whole batch, and only rank 0 writes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import safetensors.torch
import torch

SRC = str(Path(__file__).resolve().parents[1] / "src")

_WORKER = textwrap.dedent(
    """
    import itertools, sys
    import safetensors.torch
    import torch
    from torch import nn
    from forgetir.config import OptimConfig, TrainConfig
    from forgetir.engine import Engine

    torch.set_num_threads(1)
    GLOBAL_BATCH = 4

    class Toy(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.head = nn.Conv2d(8, 3, 1)

        def forward(self, x):
            return x + self.head(torch.relu(self.conv(x)))

    def main(out):
        torch.manual_seed(0)
        model = Toy()
        model.forgetir_spec = {"name": "toy", "args": {}}
        init = {k: v.clone() for k, v in model.state_dict().items()}
        cfg = TrainConfig(steps=5, batch_size=GLOBAL_BATCH, log_every=1, ckpt_every=2,
                          tensorboard=False, seed=3)
        engine = Engine(model, OptimConfig(lr=1e-2, grad_clip=0.05), cfg, out, quiet=True)
        per_rank = engine.local_batch_size()
        lo = engine.rank * per_rank

        def batches(start):
            for step in itertools.count(start):
                g = torch.Generator().manual_seed(step)
                clean = torch.rand(GLOBAL_BATCH, 3, 12, 12, generator=g)
                noisy = (clean + 0.3 * torch.randn(clean.shape, generator=g)).clamp(0, 1)
                yield noisy[lo : lo + per_rank], clean[lo : lo + per_rank]

        def loss(batch, step, model):
            noisy, clean = batch
            return {"loss": (model(noisy) - clean).abs().mean()}

        result = engine.fit(loss, batches)
        assert result.step == 5, result
        if engine.rank == 0:
            safetensors.torch.save_file(init, out + "/init.safetensors")
        if engine.world_size > 1:
            # every rank holds the same weights (DDP averaged the gradients)
            flat = torch.cat([p.detach().flatten() for p in model.parameters()])
            gathered = [torch.zeros_like(flat) for _ in range(engine.world_size)]
            torch.distributed.all_gather(gathered, flat)
            assert all(torch.equal(gathered[0], g) for g in gathered), "ranks diverged"
            # A file per rank: the ranks' stdout lines interleave character by character.
            with open(f"{out}/ok-rank{engine.rank}-of-{engine.world_size}", "w") as f:
                f.write("ok")
        engine.close()

    main(sys.argv[1])
    """
)


def _run(args: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return subprocess.run(
        [sys.executable, *args], env=env, cwd=tmp, capture_output=True, text=True, timeout=120
    )


def test_two_process_ddp_equals_one_process(tmp_path):
    worker = tmp_path / "worker.py"
    worker.write_text(_WORKER)
    one, two = tmp_path / "one", tmp_path / "two"
    p1 = _run([str(worker), str(one)], tmp_path)
    assert p1.returncode == 0, p1.stderr[-3000:]
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    p2 = _run([*launcher, str(worker), str(two)], tmp_path)
    assert p2.returncode == 0, p2.stderr[-3000:]
    # both ranks really ran, in a world of 2
    assert sorted(p.name for p in two.glob("ok-*")) == ["ok-rank0-of-2", "ok-rank1-of-2"]
    a = safetensors.torch.load_file(str(one / "model.safetensors"))
    b = safetensors.torch.load_file(str(two / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-5)
    # the weights moved: equality is not the trivial "nothing trained"
    init = safetensors.torch.load_file(str(one / "init.safetensors"))
    assert max((a[k] - init[k]).abs().max() for k in a) > 1e-3
    resume = torch.load(two / "resume.pt", weights_only=True)
    assert resume["world_size"] == 2 and len(resume["rng"]) == 2
    # rank 0 wrote one log with one row per step
    assert (two / "log.csv").read_text().count("\n") == 6
