"""scripts/gpu_check.sh --smoke: the paper-scale check runs end to end on a CPU at toy sizes and
writes its JSON; the official-code comparison is skipped, saying so, when the code is absent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_smoke_writes_every_figure(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(key, None)
    missing = tmp_path / "no-official-code"
    missing.mkdir()
    cmd = ["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--smoke", "--device", "cpu"]
    cmd += ["--out", str(tmp_path / "out"), "--official", str(missing)]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    assert p.returncode == 0, p.stderr[-3000:]
    assert f"skipped: {missing}/promptir/net/model.py not found" in p.stdout
    record = json.loads((tmp_path / "out" / "gpu_cpu.json").read_text())
    assert record["device"] == "cpu" and record["smoke"] is True
    assert sorted(record["models"]) == ["adair", "moceir", "promptir"]
    for arch, r in record["models"].items():
        assert r["model"] == f"{arch}-tiny" and r["parameters"] > 0
        assert r["official"].startswith("skipped:")
        assert r["step"]["ours"]["median_s"] > 0 and "official" not in r["step"]
        assert r["unlearn"]["steps"] == 2 and r["unlearn"]["s_per_step"] > 0
        assert r["unlearn"]["method"] and r["unlearn"]["precision"] == "bf16"
        assert r["tiled"]["image"] == 96 and r["tiled"]["s"] > 0
        # Peak memory is a GPU figure: absent, not invented, on a CPU.
        assert all(v is None for v in r["memory"].values())
