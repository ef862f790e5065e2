"""The paper-scale check of issue 26 on one device; run through ``scripts/gpu_check.sh``.

For promptir, adair and moceir at their published sizes (``--smoke``: the ``-tiny`` variants
at toy sizes, so that CI runs it on a CPU in seconds), it measures and writes to
``OUT/gpu_<device>.json``:

1. ``step``: forward+backward time of a batch of 8 128² crops (mean-output loss, fp32), ours
   and, where ``--official DIR`` holds the official code, the official model's, steps
   alternated in this one process so that both see the same machine state; median and
   minimum over ``--reps`` after warm-up steps, and our speed-up (official / ours).
2. ``memory``: peak GPU memory (``torch.cuda.max_memory_allocated``) of one such step at
   128² x 8 and at 512² x 1 (None on a CPU: see ``benchmarks/bench_models.py`` for RSS).
3. ``unlearn``: ``--unlearn-steps`` (50) steps of the method ``forgetir unlearn`` recommends
   for forgetting haze, through the engine in bf16 autocast (fp32 master weights), on
   synthetic batches (time and memory only: the loss values mean nothing); seconds per step.
4. ``tiled``: tiled bf16 restoration of one 2048² image (512² tiles, 32-pixel overlaps):
   seconds and peak memory.

Official code (never committed; a folder given by ``--official``): ``DIR/promptir/net/model.py``
(github.com/va1shn9v/PromptIR), ``DIR/adair/net/model.py`` (github.com/c-yn/AdaIR) and
``DIR/moceir/src/net/moce_ir.py`` (github.com/eduardzamfir/MoCE-IR), imported from those
files (they need ``einops``). A missing folder or file skips that comparison with a line
saying so; the rest still runs.

Run: bash scripts/gpu_check.sh [--smoke] [--official DIR] [--out DIR] [--device auto]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import statistics
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from forgetir.config import OptimConfig, TrainConfig
from forgetir.engine import Engine
from forgetir.methods import create_method
from forgetir.methods.recommend import method_and_schedule
from forgetir.models import create_model
from forgetir.models.base import collect_aux_losses
from forgetir.runtime.process import resolve_device
from forgetir.scoring.inference import forward

ARCHS = ("promptir", "adair", "moceir")
MIB = 2**20
# MoCE-IR's published configuration (as scripts/make_moceir_reference.py builds it).
MOCEIR_PUBLISHED = {
    "dim": 48,
    "num_blocks": [4, 6, 6, 8],
    "num_dec_blocks": [2, 4, 4],
    "levels": 4,
    "heads": [1, 2, 4, 8],
    "num_refinement_blocks": 4,
    "topk": 1,
    "num_experts": 4,
    "rank": 2,
    "with_complexity": False,
    "depth_type": "constant",
    "stage_depth": [1, 1, 1],
    "rank_type": "spread",
    "complexity_scale": "max",
}
# arch -> (file under --official, class name, constructor arguments of the published model)
OFFICIAL = {
    "promptir": ("promptir/net/model.py", "PromptIR", {"decoder": True}),
    "adair": ("adair/net/model.py", "AdaIR", {"decoder": True}),
    "moceir": ("moceir/src/net/moce_ir.py", "MoCEIR", MOCEIR_PUBLISHED),
}
FULL = {"batch": 8, "crop": 128, "big": 512, "tile_image": 2048, "tile": 512, "overlap": 32}
SMOKE = {"batch": 2, "crop": 32, "big": 64, "tile_image": 96, "tile": 64, "overlap": 16}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_start(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / MIB, 1)


def load_official(root: Path | None, arch: str) -> tuple[nn.Module | None, str]:
    """The official model of ``arch`` from ``root`` (None and why when it cannot be had)."""
    rel, cls, kwargs = OFFICIAL[arch]
    if root is None:
        return None, "skipped: no --official DIR given (the official code is never committed)"
    path = root / rel
    if not path.is_file():
        return None, f"skipped: {path} not found"
    if "fvcore" not in sys.modules:  # MoCE-IR imports it for FLOP counts only
        stub = types.ModuleType("fvcore.nn")
        stub.FlopCountAnalysis = stub.flop_count_table = None  # type: ignore[attr-defined]
        sys.modules["fvcore"], sys.modules["fvcore.nn"] = types.ModuleType("fvcore"), stub
    try:
        spec = importlib.util.spec_from_file_location(f"official_{arch}", path)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        return getattr(module, cls)(**kwargs), f"official code from {path}"
    except Exception as e:  # noqa: BLE001 - any import failure skips the comparison, said why
        return None, f"skipped: importing {path} failed: {type(e).__name__}: {e}"


def _step_fn(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    """One forward+backward; our MoCE-IR's router balance loss joins the loss, as in the
    engine (the official MoCE-IR returns its own and the timing covers its forward)."""

    def step() -> None:
        model.zero_grad(set_to_none=True)
        with collect_aux_losses(model) as aux:
            loss = model(x).mean()
        (loss + sum(aux)).backward()

    return step


def _time(step: Callable[[], None], device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    step()
    _sync(device)
    return time.perf_counter() - t0


def step_times(
    ours: nn.Module, official: nn.Module | None, x: torch.Tensor, warmup: int, reps: int
) -> dict[str, Any]:
    """Forward+backward seconds of ours and the official model, steps alternated."""
    device = x.device
    steps = {"ours": _step_fn(ours, x)}
    if official is not None:
        steps["official"] = _step_fn(official, x)
    for _ in range(warmup):
        for step in steps.values():
            step()
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(reps):
        for k, step in steps.items():
            times[k].append(_time(step, device))
    out: dict[str, Any] = {
        k: {"median_s": statistics.median(v), "min_s": min(v)} for k, v in times.items()
    }
    if official is not None:
        out["speedup_median"] = out["official"]["median_s"] / out["ours"]["median_s"]
        out["speedup_min"] = out["official"]["min_s"] / out["ours"]["min_s"]
    return out


def step_memory(model: nn.Module, x: torch.Tensor) -> float | None:
    """Peak GPU MiB of one forward+backward step on ``x`` (None on a CPU)."""
    _peak_start(x.device)
    _step_fn(model, x)()
    _sync(x.device)
    model.zero_grad(set_to_none=True)
    return _peak_mib(x.device)


def unlearn_steps(model: nn.Module, sizes: dict[str, int], steps: int, device: str) -> dict:
    """``steps`` steps of the method recommended for forgetting haze, bf16 autocast, through
    the engine, on synthetic batches; seconds per step (after the first) and peak memory."""
    name, _, _ = method_and_schedule(None, ["dehaze"], {})
    method = create_method(name, model, generator=torch.Generator().manual_seed(0))
    b, s = sizes["batch"], sizes["crop"]

    def batches(start: int) -> Any:
        g = torch.Generator().manual_seed(start)
        while True:
            parts = {}
            for part in ("forget", "retain"):
                clean = torch.rand(b, 3, s, s, generator=g)
                degraded = (clean + 0.1 * torch.randn(clean.shape, generator=g)).clamp(0, 1)
                parts[part] = {"degraded": degraded, "clean": clean}
            yield parts

    first = next(iter(batches(0)))
    method.prepare(first["forget"], first["retain"])
    stamps: list[float] = []

    def loss_fn(batch: dict[str, Any], step: int, model: nn.Module) -> dict[str, Any]:
        return method.loss(batch["forget"], batch["retain"], model=model)

    def on_step_end(step: int, logs: dict[str, float]) -> bool:
        _sync(engine.device)
        stamps.append(time.perf_counter())
        return False

    train = TrainConfig(
        steps=steps, batch_size=b, precision="bf16", device=device, tensorboard=False,
        log_every=max(1, steps), ckpt_every=0,
    )  # fmt: skip
    optim = OptimConfig(**{**method.default_optim, "schedule": "constant"})
    engine = Engine(model, optim, train, None, params=method.trainable_parameters(), quiet=True)
    _peak_start(engine.device)
    engine.fit(loss_fn, batches, on_step_end=on_step_end)
    engine.close()
    per_step = (stamps[-1] - stamps[0]) / (len(stamps) - 1) if len(stamps) > 1 else None
    return {
        "method": name,
        "steps": steps,
        "batch": b,
        "crop": s,
        "precision": "bf16",
        "s_per_step": per_step,
        "peak_mib": _peak_mib(engine.device),
    }


def tiled_eval(model: nn.Module, sizes: dict[str, int], device: torch.device) -> dict:
    """Tiled bf16 restoration of one ``tile_image``² image: seconds and peak memory."""
    side, tile, overlap = sizes["tile_image"], sizes["tile"], sizes["overlap"]
    x = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0)).to(device)
    model.eval()
    with torch.no_grad():
        forward(model, x[..., :tile, :tile], tile, overlap, "bf16")  # warm-up
        _peak_start(device)
        seconds = _time(lambda: forward(model, x, tile, overlap, "bf16"), device)
    model.train()
    return {
        "image": side,
        "tile": tile,
        "overlap": overlap,
        "precision": "bf16",
        "s": seconds,
        "peak_mib": _peak_mib(device),
    }


def check_arch(arch: str, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Every measurement of one architecture."""
    sizes = SMOKE if args.smoke else FULL
    torch.manual_seed(0)
    ours = create_model(f"{arch}-tiny" if args.smoke else arch).to(device)
    official, source = load_official(args.official, arch)
    print(f"{arch}: {source}", flush=True)
    if official is not None:
        official = official.to(device)
    x = torch.rand(sizes["batch"], 3, sizes["crop"], sizes["crop"]).to(device)
    result: dict[str, Any] = {
        "model": f"{arch}-tiny" if args.smoke else arch,
        "parameters": sum(p.numel() for p in ours.parameters()),
        "official": source,
        "step": {"batch": sizes["batch"], "crop": sizes["crop"], "precision": "fp32"},
    }
    result["step"].update(step_times(ours, official, x, args.warmup, args.reps))
    del official
    big = torch.rand(1, 3, sizes["big"], sizes["big"]).to(device)
    result["memory"] = {
        f"{sizes['crop']}x{sizes['batch']}_mib": step_memory(ours, x),
        f"{sizes['big']}x1_mib": step_memory(ours, big),
    }
    del ours  # its timed forwards left graph tensors in the model (MoCE-IR's routing state)
    torch.manual_seed(0)
    fresh = create_model(result["model"]).to(device)
    result["unlearn"] = unlearn_steps(fresh, sizes, args.unlearn_steps, str(device))
    result["tiled"] = tiled_eval(fresh, sizes, device)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny models, toy sizes (CPU, CI)")
    ap.add_argument("--official", type=Path, default=None, metavar="DIR")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"), metavar="DIR")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    ap.add_argument("--archs", nargs="+", default=list(ARCHS), choices=ARCHS)
    ap.add_argument("--reps", type=int, default=None, help="timed steps (default 10; smoke 2)")
    ap.add_argument("--warmup", type=int, default=None, help="default 3; smoke 1")
    ap.add_argument("--unlearn-steps", type=int, default=None, dest="unlearn_steps",
                    help="default 50; smoke 2")  # fmt: skip
    args = ap.parse_args(argv)
    args.reps = args.reps or (2 if args.smoke else 10)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.smoke else 3)
    args.unlearn_steps = args.unlearn_steps or (2 if args.smoke else 50)
    if args.official is not None and not args.official.is_dir():
        print(f"--official {args.official}: not a folder; the official comparison is skipped")
        args.official = None
    device = resolve_device(args.device, option="--device")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    slug = "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")
    t0 = time.perf_counter()
    record: dict[str, Any] = {
        "device": name,
        "smoke": args.smoke,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "command": "bash scripts/gpu_check.sh " + " ".join(argv or sys.argv[1:]),
        "models": {arch: check_arch(arch, args, device) for arch in args.archs},
    }
    record["wall_s"] = round(time.perf_counter() - t0, 1)
    for arch, r in record["models"].items():
        st = r["step"]
        vs = f", {st['speedup_median']:.2f}x the official code" if "speedup_median" in st else ""
        print(f"{arch}: step {st['ours']['median_s']:.4f} s{vs}; unlearn "
              f"{r['unlearn']['s_per_step'] or float('nan'):.4f} s/step; tiled "
              f"{r['tiled']['image']}² {r['tiled']['s']:.3f} s; memory {r['memory']}")  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"gpu_{slug}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {path} ({record['wall_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
