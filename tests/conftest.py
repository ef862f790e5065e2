"""Test-suite set-up: one torch thread, and a tiny trained parent model shared by the tests.

The tests run tiny tensors, for which intra-op threads cost more than they save (and much more
on a busy machine). ``OMP_NUM_THREADS`` keeps commands run in-process (``forgetir.cli.main``)
at one thread too: they otherwise take the free cores
(``forgetir.runtime.threads.apply_threads``)."""

import os
import tempfile

import pytest
import torch

from forgetir.config import load_config
from forgetir.train import run_train
from forgetir.unlearn import UnlearnOptions

os.environ["OMP_NUM_THREADS"] = "1"
torch.set_num_threads(1)
# UT reference logs computed by tests go to a throw-away folder, never the user's cache.
os.environ.setdefault("FORGETIR_CACHE_DIR", tempfile.mkdtemp(prefix="forgetir-test-cache-"))


@pytest.fixture(scope="session")
def parent(tmp_path_factory):
    """A tiny model trained for a few steps on a small dead-leaves pool."""
    out = tmp_path_factory.mktemp("before")
    cfg = load_config(
        "cpu",
        [
            "train.steps=3",
            "train.batch_size=2",
            "data.pool_size=6",
            "data.image_size=32",
            "data.patch_size=32",
            "data.test_max_side=32",
            "optim.warmup_steps=0",
        ],
    )
    return run_train(cfg, out, quiet=True)


@pytest.fixture(scope="session")
def tiny_opts():
    """``tiny_opts(**changes)``: UnlearnOptions small enough for the tiny parent (2 steps)."""

    def make(**kw):
        base = dict(
            steps=2,
            batch_size=2,
            patch_size=32,
            test_max_side=32,
            relearn_steps=2,
            ain_max_steps=2,
            verify_eval_every=1,
            quiet=True,
        )
        return UnlearnOptions(**{**base, **kw})

    return make


def nudged_copy(source, folder):
    """A copy of the checkpoint ``source`` in ``folder`` with its weights nudged and its sidecar
    kept: a stand-in UT (forgetir refuses a UT that is the parent itself, byte for byte)."""
    import json
    import shutil
    from pathlib import Path

    import safetensors.torch

    from forgetir.checkpoint import sha256_file

    out = Path(folder) / "model.safetensors"
    g = torch.Generator().manual_seed(1)
    tensors = {
        k: v + 1e-3 * torch.randn(v.shape, generator=g) if v.is_floating_point() else v
        for k, v in safetensors.torch.load_file(str(source)).items()
    }
    safetensors.torch.save_file(tensors, str(out))
    shutil.copy(Path(source).with_suffix(".json"), out.with_suffix(".json"))
    meta = json.loads(out.with_suffix(".json").read_text())
    meta["sha256"] = sha256_file(out)
    out.with_suffix(".json").write_text(json.dumps(meta))
    return out


@pytest.fixture(scope="session")
def ut_ckpt(parent, tmp_path_factory):
    """A stand-in UT for the tiny parent (see :func:`nudged_copy`)."""
    return nudged_copy(parent, tmp_path_factory.mktemp("ut"))


@pytest.fixture(scope="session")
def nudge():
    """:func:`nudged_copy`, for tests that make their own parent."""
    return nudged_copy
