"""One unlearning cell, measured cheaply: unlearn, then score against BEFORE and UT.

A *cell* is (method, forget type, seed). :func:`run_cell` unlearns a copy of BEFORE with the
method's loss for ``steps`` Adam steps and returns every figure of issue 11 on each evaluation
set (the shipped photos, the held-out dead-leaves test set, or the dead-leaves validation set
used for tuning):

- ``forget_psnr`` (mean over the forget tasks; denoise = mean of σ15/25/50), ``ut_forget_psnr``,
  ``before_forget_psnr`` and ``forget_vs_ut`` (dB);
- ``retain_delta`` per retained task and ``worst_retain_delta`` (dB vs BEFORE);
- ``output_gap`` (mean per-image L1 to UT's outputs on forget-test) and ``gap_ratio`` (that over
  BEFORE's gap; 0 = UT's outputs, 1 = as far as BEFORE);
- ``ain``: steps for the unlearned model / steps for UT until the forget L1 on the dead-leaves
  test set is within 5% of BEFORE's, relearning on a few forget patches (``ain_kind`` says when
  it is a bound because a model did not get there within ``ain_max_steps``);
- ``steps``, ``step_fraction`` (of BEFORE's training steps) and ``wall_s``.

UT's relearning run is deterministic, so it is computed once per forget type and cached.

Example:
    >>> opts = CellOptions(steps=1, eval_sets=("val",), ain_max_steps=0)
    >>> r = run_cell("finetune", "dehaze", 0, opts)  # doctest: +SKIP
    >>> sorted(r["eval"]["val"])[:2]  # doctest: +SKIP
    ['before_forget_psnr', 'forget_psnr']
"""

from __future__ import annotations

import copy
import functools
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from forgetir.metrics import psnr
from forgetir.scoring.evaluate import restore

FORGET_TYPES = {
    "dehaze": ["dehaze"],
    "derain": ["derain"],
    "denoise": ["denoise_15", "denoise_25", "denoise_50"],
}
ALL = ["dehaze", "derain", "denoise_15", "denoise_25", "denoise_50"]
EVAL_SETS = ("photos", "deadleaves", "val")


@dataclass
class CellOptions:
    """How a cell unlearns and measures (the issue-11 benchmark's defaults)."""

    steps: int = 30  # 2% of the shipped BEFORE's 1500 training steps
    batch_size: int = 8  # images per step: half forget, half retain when both are used
    patch_size: int = 32
    lr: float | None = None  # None: the method's default
    target: str = "collapse"
    hparams: dict[str, Any] = field(default_factory=dict)
    before: str = "shipped:before"
    ut: dict[str, str] = field(default_factory=dict)  # forget type -> UT checkpoint
    clean_source: str | None = None  # None: BEFORE's training data; "deadleaves" or a folder
    eval_sets: tuple[str, ...] = ("photos", "deadleaves")
    test_max_side: int = 128
    deadleaves_n: int = 8
    deadleaves_size: int = 64
    relearn_steps: int = 20  # relearning attack: forget PSNR regained in this many steps
    ain_max_steps: int = 0  # > 0: also the anamnesis index, up to this many steps
    ain_eval_every: int = 4
    relearn_patches: int = 4
    ain_eval: str = "deadleaves"  # the set the relearning attack is scored on ("val" to tune)


@functools.lru_cache(maxsize=8)
def cell_model(spec: str) -> nn.Module:
    """The model ``spec`` names (e.g. ``shipped:ut-dehaze``), loaded once and cached."""
    from forgetir.unlearn import load_eval_model

    return load_eval_model(spec)


def before_steps(spec: str) -> float:
    """BEFORE's training steps, from its sidecar (nan if it does not say)."""
    from forgetir.runs.testbed import model_meta

    meta = model_meta(spec)
    return float(meta.steps) if meta is not None and meta.steps else float("nan")


def ut_spec(forget_type: str, opts: CellOptions) -> str:
    """The UT checkpoint of ``forget_type``: ``opts.ut`` or the shipped one."""
    return opts.ut.get(forget_type, f"shipped:ut-{forget_type}")


@functools.lru_cache(maxsize=4)
def validation_sets(n: int = 8, size: int = 64) -> dict[str, Any]:
    """Dead-leaves images of the test namespace drawn with another seed than the test set's (so
    disjoint from it and from every training pool), degraded with their own seeds: for tuning."""
    from forgetir.data.pool import DeadLeavesPool
    from forgetir.data.testsets import TestSet
    from forgetir.degradations import degrade

    pool = DeadLeavesPool(n, size, seed=7, namespace="test")
    clean = [pool.get(i).unsqueeze(0) for i in range(n)]
    out = {}
    for k, task in enumerate(ALL):
        degraded = [degrade(task, c, 4321 + 100 * k + i)[0] for i, c in enumerate(clean)]
        desc = f"{n} dead-leaves validation images ({size}x{size}, seed 7); {task}"
        out[task] = TestSet(task, desc, [f"val-{i}" for i in range(n)], degraded, clean)
    return out


def eval_sets(name: str, opts: CellOptions) -> dict[str, Any]:
    """Evaluation set ``name`` (photos | deadleaves | val) for every task."""
    from forgetir.data.testsets import build_test_sets

    if name == "photos":
        return build_test_sets("photos", ALL, opts.test_max_side)
    if name == "deadleaves":
        return build_test_sets("deadleaves", ALL, n=opts.deadleaves_n, size=opts.deadleaves_size)
    if name == "val":
        return validation_sets(opts.deadleaves_n, opts.deadleaves_size)
    raise ValueError(f"unknown evaluation set {name!r}; valid: {', '.join(EVAL_SETS)}")


def _psnr_and_outputs(model: nn.Module, ts: Any) -> tuple[float, list[torch.Tensor]]:
    outs = [o.clamp(0, 1) for o in restore(model, ts.degraded)]
    vals = [float(psnr(o, c, "promptir")[0]) for o, c in zip(outs, ts.clean, strict=True)]
    return sum(vals) / len(vals), outs


@functools.lru_cache(maxsize=128)
def _reference(spec: str, set_name: str, task: str, sizes: tuple[int, int, int]) -> tuple:
    # BEFORE's and UT's outputs do not change between cells: computed once per process.
    opts = CellOptions(test_max_side=sizes[0], deadleaves_n=sizes[1], deadleaves_size=sizes[2])
    return _psnr_and_outputs(cell_model(spec), eval_sets(set_name, opts)[task])


def _key(opts: CellOptions) -> tuple[int, int, int]:
    return (opts.test_max_side, opts.deadleaves_n, opts.deadleaves_size)


def score(model: nn.Module, forget_type: str, set_name: str, opts: CellOptions) -> dict[str, Any]:
    """Forget/retain PSNR, deltas and output gap of ``model`` on evaluation set ``set_name``."""
    sets = eval_sets(set_name, opts)
    forget = FORGET_TYPES[forget_type]
    ut = ut_spec(forget_type, opts)
    own, ref_b, ref_u, gap, gap_b = {}, {}, {}, [], []
    for task in ALL:
        own[task], outs = _psnr_and_outputs(model, sets[task])
        ref_b[task], outs_b = _reference(opts.before, set_name, task, _key(opts))
        if task in forget:
            ref_u[task], outs_u = _reference(ut, set_name, task, _key(opts))
            gap += [float((a - u).abs().mean()) for a, u in zip(outs, outs_u, strict=True)]
            gap_b += [float((b - u).abs().mean()) for b, u in zip(outs_b, outs_u, strict=True)]
    mean = lambda d: sum(d[t] for t in forget) / len(forget)  # noqa: E731
    delta = {t: own[t] - ref_b[t] for t in ALL if t not in forget}
    g, gb = sum(gap) / len(gap), sum(gap_b) / len(gap_b)
    return {
        "forget_psnr": mean(own),
        "ut_forget_psnr": mean(ref_u),
        "before_forget_psnr": mean(ref_b),
        "forget_vs_ut": mean(own) - mean(ref_u),
        "retain_delta": delta,
        "worst_retain_delta": min(delta.values()),
        "output_gap": g,
        "before_output_gap": gb,
        "gap_ratio": g / gb if gb > 0 else float("nan"),
    }


# ------------------------------------------------------------------------------ unlearning


def unlearn_data(forget_type: str, seed: int, opts: CellOptions) -> dict[str, Any]:
    """The split's ``forget``/``retain`` patch datasets: BEFORE's own training data, or, with
    ``opts.clean_source``, every task synthesised on other clean images (data-free mode)."""
    from forgetir.data.splits import build_split_datasets, make_split
    from forgetir.runs.testbed import model_meta, parent_data_config
    from forgetir.unlearn import clean_source_images

    data = parent_data_config(model_meta(opts.before))
    data.patch_size = opts.patch_size
    manifest = make_split(data, "degradation", FORGET_TYPES[forget_type])
    sources = None
    if opts.clean_source is not None:
        sources = (clean_source_images(opts.clean_source, data, seed), {})
    return build_split_datasets(manifest, opts.patch_size, seed=seed, sources=sources)


def _batches(datasets: dict[str, Any], method: Any, opts: CellOptions, seed: int) -> Any:
    from forgetir.data.pipeline import make_train_loader

    both = method.needs_forget and method.needs_retain
    size = opts.batch_size // 2 if both else opts.batch_size
    parts = [p for p in ("forget", "retain") if need_of(method, p)]
    its = {p: iter(make_train_loader(datasets[p], size, seed=seed)) for p in parts}
    while True:
        yield {p: next(it) for p, it in its.items()}


def need_of(method: Any, part: str) -> bool:
    """Whether ``method`` uses the ``part`` ("forget" or "retain") batch."""
    return bool(method.needs_forget if part == "forget" else method.needs_retain)


def unlearn_copy(
    method_name: str, forget_type: str, seed: int, opts: CellOptions
) -> tuple[nn.Module, dict[str, Any]]:
    """A copy of BEFORE unlearned with ``method_name`` for ``opts.steps`` steps; and its log."""
    from forgetir.config import OptimConfig, from_dict
    from forgetir.engine import build_optimizer
    from forgetir.methods import create_method

    torch.manual_seed(seed)
    before = cell_model(opts.before)
    model = copy.deepcopy(before).train()
    model.requires_grad_(True)
    g = torch.Generator().manual_seed(seed)
    method = create_method(method_name, model, before, opts.hparams, opts.target, generator=g)
    optim_cfg = from_dict(OptimConfig, {**method.default_optim, "schedule": "constant"}, "o.")
    if opts.lr is not None:
        optim_cfg.lr = opts.lr
    optim = build_optimizer(method.trainable_parameters(), optim_cfg)
    batches = _batches(unlearn_data(forget_type, seed, opts), method, opts, seed)
    t0 = time.time()
    first = next(batches)
    method.prepare(first.get("forget"), first.get("retain"))
    logs: dict[str, Any] = {}
    for step in range(opts.steps):
        batch = first if step == 0 else next(batches)
        out = method.loss(batch.get("forget"), batch.get("retain"))
        optim.zero_grad(set_to_none=True)
        out["loss"].backward()
        optim.step()
        logs = {k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in out.items()}
    if hasattr(method, "remove_hooks"):
        method.remove_hooks()
    model.eval().requires_grad_(False)
    return model, {"wall_s": time.time() - t0, "last_logs": logs, "lr": optim_cfg.lr}


# ------------------------------------------------------------------------------ relearning


def relearn_samples(
    forget_type: str, opts: CellOptions, first: int = 0, n: int | None = None
) -> list[tuple[torch.Tensor, ...]]:
    """The attacker's (degraded, clean) patches: ``n`` (default ``opts.relearn_patches``) from
    ``first`` in BEFORE's own forget set, drawn with seed 0."""
    # Fixed across seeds and methods: the attack is the same for every model it is run on.
    ds = unlearn_data(forget_type, 0, replace_opts(opts, clean_source=None))["forget"]
    n = opts.relearn_patches if n is None else n
    return [(ds[i]["degraded"][None], ds[i]["clean"][None]) for i in range(first, first + n)]


def replace_opts(opts: CellOptions, **changes: Any) -> CellOptions:
    """A copy of ``opts`` with ``changes``."""
    return CellOptions(**{**asdict(opts), **changes})


def attack_pairs(forget_type: str, opts: CellOptions) -> list[tuple[torch.Tensor, ...]]:
    """(degraded, clean) pairs of the forget tasks on ``opts.ain_eval``: where attacks score."""
    sets = eval_sets(opts.ain_eval, opts)
    return [
        (x, y)
        for t in FORGET_TYPES[forget_type]
        for x, y in zip(sets[t].degraded, sets[t].clean, strict=True)
    ]


def relearn_gain(model: nn.Module, forget_type: str, opts: CellOptions) -> float:
    """Forget PSNR (dB, on ``opts.ain_eval``) regained by ``opts.relearn_steps`` Adam steps
    (lr 2e-4, full batch on the relearning patches, L1): the relearning attack."""
    from forgetir.checks.verify import relearn

    run = relearn(
        model,
        relearn_samples(forget_type, opts),
        steps=opts.relearn_steps,
        eval_set=attack_pairs(forget_type, opts),
        eval_every=max(opts.relearn_steps, 1),
    )
    return float(run["recovered_db"])


@functools.lru_cache(maxsize=8)
def _ut_relearn_gain(spec: str, forget_type: str, key: tuple) -> float:
    opts = CellOptions(**dict(zip(_RELEARN_KEYS, key, strict=True)))
    return relearn_gain(cell_model(spec), forget_type, opts)


def relearn_steps(model: nn.Module, forget_type: str, opts: CellOptions) -> int | None:
    """Adam steps (lr 2e-4, full batch on the relearning patches, L1) until the forget L1 on
    ``opts.ain_eval`` is at most 1.05 x BEFORE's; None if not within ``ain_max_steps``."""
    from forgetir.checks.verify import relearn

    pairs = attack_pairs(forget_type, opts)
    before_l1 = sum(
        float((o.clamp(0, 1) - y).abs().mean())
        for o, (_, y) in zip(
            restore(cell_model(opts.before), [x for x, _ in pairs]), pairs, strict=True
        )
    ) / len(pairs)
    run = relearn(
        model,
        relearn_samples(forget_type, opts),
        steps=opts.ain_max_steps,
        eval_set=pairs,
        eval_every=opts.ain_eval_every,
        stop_l1=1.05 * before_l1,
    )
    return run["reached_step"]


_RELEARN_KEYS = (
    "before",
    "ain_eval",
    "patch_size",
    "relearn_patches",
    "ain_max_steps",
    "ain_eval_every",
    "deadleaves_n",
    "deadleaves_size",
)


@functools.lru_cache(maxsize=8)
def _ut_relearn_steps(spec: str, forget_type: str, key: tuple) -> int | None:
    # Deterministic for a given UT and attack: run once per process.
    opts = CellOptions(**dict(zip(_RELEARN_KEYS, key, strict=True)))
    return relearn_steps(cell_model(spec), forget_type, opts)


def anamnesis(model: nn.Module, forget_type: str, opts: CellOptions) -> dict[str, Any]:
    """AIN = steps(unlearned) / steps(UT); a bound when one of them did not get there."""
    key = tuple(getattr(opts, k) for k in _RELEARN_KEYS)
    s_ut = _ut_relearn_steps(ut_spec(forget_type, opts), forget_type, key)
    s_u = relearn_steps(model, forget_type, opts)
    cap = opts.ain_max_steps + opts.ain_eval_every
    if s_ut in (None, 0):
        return {"ain": None, "ain_kind": "undefined", "steps_unlearned": s_u, "steps_ut": s_ut}
    if s_u is None:
        return {
            "ain": cap / s_ut,
            "ain_kind": "lower_bound",
            "steps_unlearned": None,
            "steps_ut": s_ut,
        }
    return {"ain": s_u / s_ut, "ain_kind": "exact", "steps_unlearned": s_u, "steps_ut": s_ut}


def run_cell(method: str, forget_type: str, seed: int, opts: CellOptions) -> dict[str, Any]:
    """Unlearn ``forget_type`` from BEFORE with ``method`` (seed ``seed``) and measure it."""
    if forget_type not in FORGET_TYPES:
        raise ValueError(f"unknown forget type {forget_type!r}; valid: {', '.join(FORGET_TYPES)}")
    model, log = unlearn_copy(method, forget_type, seed, opts)
    out: dict[str, Any] = {
        "method": method,
        "target": opts.target,
        "hparams": dict(opts.hparams),
        "forget_type": forget_type,
        "seed": seed,
        "steps": opts.steps,
        "step_fraction": opts.steps / before_steps(opts.before),
        "wall_s": log["wall_s"],
        "lr": log["lr"],
        "eval": {name: score(model, forget_type, name, opts) for name in opts.eval_sets},
    }
    if opts.relearn_steps > 0:
        key = tuple(getattr(opts, k) for k in _RELEARN_KEYS)
        gain, ut_gain = (
            relearn_gain(model, forget_type, opts),
            _ut_relearn_gain(ut_spec(forget_type, opts), forget_type, key),
        )
        out["relearn"] = {"gain_db": gain, "ut_gain_db": ut_gain, "set": opts.ain_eval}
    if opts.ain_max_steps > 0:
        out["anamnesis"] = anamnesis(model, forget_type, opts)
    return out
