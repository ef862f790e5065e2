"""Running the cells of a grid: input checks, splits, training and unlearning cells, resume."""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from forgetir.atomic import atomic_json
from forgetir.checkpoint import TORCH_SUFFIXES, read_sidecar
from forgetir.checkpoint.shipped import resolve_checkpoint
from forgetir.config import load_config
from forgetir.data.pipeline import build_sources, resolve_tasks, train_tasks
from forgetir.data.promptir_layout import PromptIRLayout
from forgetir.data.splits import load_manifest, make_split, save_manifest
from forgetir.reproduce.grid import (
    _VERIFY_UNITS,
    CLASS_OVERRIDES,
    CPU_BATCH,
    CPU_STEPS,
    FORGET_CLASS,
    N_INSTANCES,
    SUMMARY_MD,
    Cell,
    Plan,
    ReproduceError,
    SplitSpec,
    _hms,
    _resolved,
    is_done,
    select_cells,
)
from forgetir.reproduce.results import cell_quality, mean_psnr, read_result, worst_retain_change
from forgetir.reproduce.summary import write_summary
from forgetir.runs.testbed import model_meta, parent_data_config
from forgetir.train import run_train
from forgetir.unlearn import UnlearnOptions, run_unlearn

# ------------------------------------------------------------------------------ checks


def check_inputs(plan: Plan, cells: Sequence[Cell]) -> None:
    """Fail before any work when data or checkpoints the selected cells need are missing."""
    problems: list[str] = []
    o = plan.options
    used = {
        r
        for c in cells
        for r in (c.parent, c.ut)
        if r and not r.startswith("cell:") and not plan.models.get(r, "").startswith("cell:")
    }
    if plan.scale == "paper":
        if not o.root:
            problems.append("--root DATA (the PromptIR data folder with Train/ and test/)")
        else:
            try:
                PromptIRLayout(o.root)
            except FileNotFoundError as e:
                problems.append(f"--root: {e}")
        if not o.retrain and not o.arch and str(o.checkpoint or "").endswith((".ckpt", ".pt")):
            problems.append("--arch (the architecture of the published .ckpt, e.g. promptir)")
    for ref in sorted(used):
        spec = plan.models.get(ref, "")
        # BEFORE is the positional CHECKPOINT; each UT has its --ut-KIND option.
        flag = {"before": "CHECKPOINT"}.get(ref, f"--ut-{ref[3:]}")
        if ref.startswith("inpaint-"):
            flag = "--retrain"  # the class cells' models are shipped or trained, never given
        if not spec:
            given = flag if flag.isupper() or flag == "--retrain" else f"{flag} PATH"
            problems.append(f"{given} (the {_model_words(ref)}; or --retrain to train it)")
            continue
        try:
            path = resolve_checkpoint(spec)
        except (ValueError, FileNotFoundError) as e:
            problems.append(f"{flag}: {e}")
            continue
        if not Path(path).is_file():
            problems.append(f"{flag}: checkpoint not found: {path}")
    if problems:
        raise ReproduceError(
            f"forgetir reproduce --scale {plan.scale} cannot start; missing or invalid:\n  - "
            + "\n  - ".join(problems)
        )


def _model_words(ref: str) -> str:
    words = {
        "before": "BEFORE model",
        "ut-instances": "UT model retrained without the instance split's images",
        "inpaint-before": "inpainting BEFORE of the class cells",
        "inpaint-ut": f"inpainting UT without class {FORGET_CLASS}",
    }
    return words.get(ref, f"UT model retrained without {ref[3:]}")


# ------------------------------------------------------------------------------ running


# Options that do not change what a cell computes (left out of the cache check).
_NOT_IN_SPEC = ("quiet", "threads")


def cell_spec(plan: Plan, cell: Cell) -> dict[str, Any]:
    """What a cell computes, as recorded in its run.json: a cached cell must match it."""
    spec = {
        "kind": cell.kind,
        "parent": plan.model_path(cell.parent) if cell.kind == "unlearn" else None,
        "ut": plan.model_path(cell.ut),
        "forget": cell.forget,
        "split": cell.split,
        "epochs": cell.epochs,
        "options": {k: v for k, v in cell.options.items() if k not in _NOT_IN_SPEC},
        "preset": cell.preset if cell.kind == "train" else None,
        "overrides": cell.overrides,
        "exclude": cell.exclude,
        "train_split": cell.train_split,
    }
    return json.loads(json.dumps(spec, default=str))


def _stale_cells(plan: Plan, cells: Sequence[Cell]) -> list[str]:
    stale = []
    for c in cells:
        run = read_result(plan.cell_dir(c) / "run.json") if is_done(plan, c) else None
        if run is not None and run.get("reproduce_cell") != cell_spec(plan, c):
            stale.append(c.name)
    return stale


def _split_data(plan: Plan, spec: SplitSpec) -> Any:
    if spec.data == "inpaint":
        return load_config("cpu", [*CLASS_OVERRIDES, *plan.options.train_overrides]).data
    if plan.scale == "paper" and not plan.options.retrain:
        return load_config("paper", [f"data.root={plan.options.root}"]).data
    return parent_data_config(model_meta(_resolved(plan, "before")))


def _spread_ids(data: Any, n: int) -> list[str]:
    """``n`` image ids spread evenly over the training data's clean images."""
    clean, _ = build_sources(data, train_tasks(data))
    if clean is None:
        raise ReproduceError("the instance cell needs a clean-image source in the training data")
    n = min(n, max(1, len(clean) // 2))  # always leave most of the data to retain
    step = len(clean) / n
    return [clean.name(int(i * step)) for i in range(n)]


def ensure_split(plan: Plan, name: str) -> Path:
    """The manifest of split ``name``, made (atomically) the first time it is needed."""
    path = plan.out / "splits" / f"{name}.json"
    if path.is_file():
        return path
    spec = plan.splits[name]
    if spec.manifest:
        load_manifest(spec.manifest, verify=True)  # every file's hash re-checked
        path.parent.mkdir(parents=True, exist_ok=True)
        return save_manifest(json.loads(Path(spec.manifest).read_text()), path)
    data = _split_data(plan, spec)
    forget = _spread_ids(data, N_INSTANCES) if spec.by == "instances" else spec.forget
    manifest = make_split(data, spec.by, forget, seed=plan.options.seed)
    return save_manifest(manifest, path)


def _run_train_cell(plan: Plan, cell: Cell) -> dict[str, Any]:
    overrides = list(cell.overrides)
    if cell.train_split:
        overrides.append(f"data.split={ensure_split(plan, cell.train_split)}")
    cfg = load_config(cell.preset, overrides)
    if cell.exclude:
        cfg.data.exclude = resolve_tasks([*cfg.data.exclude, *cell.exclude], "exclude")
    if plan.options.threads is not None:
        cfg.train.threads = plan.options.threads
    out = plan.cell_dir(cell)
    command = f"forgetir reproduce --scale {plan.scale} (cell {cell.name}): {cell.describe()}"
    t0 = time.time()
    path = run_train(cfg, out, resume=True, command=command, quiet=True)
    meta = read_sidecar(path)
    return {
        "kind": "train",
        "cell": cell.name,
        "model": path.name,
        "steps": meta.get("step"),
        "wall_time_s": meta.get("wall_time"),
        "command": command,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cell_seconds": round(time.time() - t0, 2),
    }


def _steps_for(plan: Plan, cell: Cell, split_path: Path | None) -> int:
    if not cell.epochs:
        return int(cell.options["steps"])
    if split_path is None:
        raise ReproduceError(f"cell {cell.name}: epochs need a split manifest")
    count = int(load_manifest(split_path)["forget"]["count"])
    return max(1, math.ceil(cell.epochs * count / int(cell.options["batch_size"])))


def _run_unlearn_cell(plan: Plan, cell: Cell) -> dict[str, Any]:
    out = plan.cell_dir(cell)
    if out.exists():
        # No run.json: an interrupted unlearning run. It is short: start it afresh.
        shutil.rmtree(out)
    split_path = ensure_split(plan, cell.split) if cell.split else None
    options = dict(cell.options)
    options["steps"] = _steps_for(plan, cell, split_path)
    opts = UnlearnOptions(**options)
    command = f"forgetir reproduce --scale {plan.scale} (cell {cell.name}): {cell.describe()}"
    t0 = time.time()
    run = run_unlearn(
        plan.model_path(cell.parent) or "",
        out,
        opts,
        forget=cell.forget,
        split=str(split_path) if split_path else None,
        ut=plan.model_path(cell.ut),
        arch=_arch_for(plan, cell.parent),
        command=command,
    )
    run["cell_seconds"] = round(time.time() - t0, 2)
    run["cell"] = cell.name
    run["reproduce_cell"] = cell_spec(plan, cell)
    atomic_json(out / "run.json", run, default=str)  # the same record, with the cell's total time
    return run


def _arch_for(plan: Plan, ref: str) -> str | None:
    """``--arch`` for a published checkpoint; forgetir checkpoints carry theirs."""
    spec = plan.model_path(ref) or ""
    return plan.options.arch if Path(spec).suffix in TORCH_SUFFIXES else None


def run_cell(plan: Plan, cell: Cell) -> dict[str, Any]:
    """Run one cell into its folder; returns its run record (``run.json``)."""
    if cell.kind == "train":
        run = _run_train_cell(plan, cell)
        run["reproduce_cell"] = cell_spec(plan, cell)
        atomic_json(plan.cell_dir(cell) / "run.json", run, default=str)
        return run
    return _run_unlearn_cell(plan, cell)


def _units(cell: Cell) -> float:
    if cell.kind == "train":
        return 1.0
    o = cell.options
    return float(o.get("steps") or CPU_STEPS) * float(o.get("batch_size") or CPU_BATCH) / (
        CPU_STEPS * CPU_BATCH
    ) + (_VERIFY_UNITS if o.get("verify") else 0.0)


def run_plan(
    plan: Plan,
    only: Sequence[str] | None = None,
    runner: Callable[[Plan, Cell], dict[str, Any]] | None = None,
    log: Callable[[str], None] = print,
    check: bool = True,
) -> dict[str, Any]:
    """Run every selected cell that is not done yet (in grid order), then write the summary.

    ``runner`` replaces :func:`run_cell` (tests). Returns the summary (``summary.json``).
    """
    cells = select_cells(plan, only)
    if check:
        check_inputs(plan, cells)
    stale = _stale_cells(plan, cells)
    if stale:
        raise ReproduceError(
            f"{len(stale)} finished cell(s) in {plan.out} were run with other settings than "
            f"these ({', '.join(stale)}): choose another --out, or delete those folders"
        )
    runner = runner or run_cell
    plan.out.mkdir(parents=True, exist_ok=True)
    todo = [c for c in cells if not is_done(plan, c)]
    cached = len(cells) - len(todo)
    log(
        f"forgetir reproduce --scale {plan.scale}: {len(cells)} cells, {cached} already done, "
        f"{len(todo)} to run; writing {plan.out}"
    )
    total_units = sum(_units(c) for c in todo)
    done_units, t_start = 0.0, time.time()
    for i, cell in enumerate(todo, 1):
        elapsed = time.time() - t_start
        eta = elapsed / done_units * (total_units - done_units) if done_units else None
        eta_text = _hms(eta) if eta is not None else "?"
        log(
            f"[{i}/{len(todo)}] {cell.name} ({cell.describe()}); elapsed {_hms(elapsed)}, "
            f"ETA {eta_text}"
        )
        t0 = time.time()
        run = runner(plan, cell)
        done_units += _units(cell)
        log(f"    done in {time.time() - t0:.0f} s{_headline(plan, cell, run)}")
    summary = write_summary(plan)
    log(
        f"all {len(cells)} cells done in {_hms(time.time() - t_start)} (this session); "
        f"summary: {plan.out / SUMMARY_MD}"
    )
    return summary


def _headline(plan: Plan, cell: Cell, run: dict[str, Any]) -> str:
    """One line of results for the progress log: forget PSNR against BEFORE and UT."""
    q = cell_quality(plan, cell)
    if q is None or not run.get("forget_tasks"):
        return ""
    rows = q["rows"]
    f = run["forget_tasks"]
    parts = [
        f"{r} {mean_psnr(rows.get(k), f):.2f}"
        for k, r in (("unlearned", "forget PSNR"), ("BEFORE", "BEFORE"), ("UT", "UT"))
        if k in rows
    ]
    drop = worst_retain_change(rows, run.get("retain_tasks") or [])
    if drop is not None:
        parts.append(f"worst retained change {drop:+.2f} dB")
    return ": " + ", ".join(parts)
