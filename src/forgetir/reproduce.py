"""``forgetir reproduce``: the seed paper's whole experiment grid in one command.

The grid (``--list`` prints it; every cell is a run folder ``<out>/<cell>/``):

- ``main/<t>-collapse`` and ``main/<t>-retrain-like`` for t in dehaze, derain, denoise: the paper's
  method (``accurate-forgetting``, published defaults) with both forget targets, verified
  (gaps, output gap, relearning, anamnesis index, cost): the paper's Tables 2/3;
- ``control/<t>-finetune``: continued training on the retain data for the same number of steps;
- ``ablation/<t>-no-adv``, ``-no-instance``, ``-neither``: Table 4;
- ``sweep/<t>-lr-*``, ``-batch-*``, ``-wadv-*``: Fig. 3 / Table 5 (lr 1e-4, 1.5e-4, 2e-4; batch
  12, 16, 20 with the steps scaled so that every run sees the same number of samples, as the
  paper's fixed 2 epochs do; w_adv:w_ul 0.5:1, 1:1, 1.5:1). The 2e-4 and 1:1 points are the main
  cell itself. ``sweeps.json`` (the format :mod:`forgetir.report` reads) goes into the main
  cell of each forget type, so ``forgetir report <out>/main/dehaze-collapse`` plots them;
- ``methods/<name>``: every other registered method on the dehaze split, same steps;
- ``instances/accurate-forgetting-16``: a deletion request of 16 training images (membership
  inference in its verification);
- ``class/*`` (cpu scale): the second seed's setting: a small inpainting BEFORE trained on three
  dead-leaves content classes, its UT trained on the retain part of the class split
  (``data.split``/``data.part``), and ``encoder-noise`` forgetting the class.

BEFORE and the UT models are the shipped ones unless ``--retrain`` (then ``train/*`` cells train
them with the scale's preset). A cell is done once its ``run.json`` exists: an interrupted run
resumes at the first unfinished cell (an unfinished unlearning folder is started afresh, an
unfinished training resumes from its checkpoint). At the end ``summary.md`` and
``summary.json`` hold the tables in the seed paper's layout, with protocol, test set, steps,
wall time and cost relative to BEFORE's training; ``--docs`` copies ``summary.md`` to
``docs/reproduce.md``.

Example:
    >>> plan = build_plan(ReproduceOptions(out="/tmp/r"))
    >>> len([c for c in plan.cells if c.name.startswith("main/")])
    6
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forgetir.atomic import atomic_json, atomic_write

SCALES = ("cpu", "paper")
FORGET_TYPES = ("dehaze", "derain", "denoise")
MAIN_METHOD = "accurate-forgetting"
CONTROL_METHOD = "finetune"
CPU_STEPS, CPU_BATCH, CPU_PATCH = 60, 8, 64
PAPER_EPOCHS, PAPER_BATCH, PAPER_PATCH = 2.0, 16, 128
SWEEP_LRS = (1e-4, 1.5e-4, 2e-4)
SWEEP_BATCHES = (12, 16, 20)
SWEEP_W_ADV = (0.5, 1.0, 1.5)  # the paper's Table 5 is W_adv : W_ins with W_ins (= w_ul) at 1
ABLATIONS = {
    "no-adv": ("without the adversarial term", {"use_adv": False}),
    "no-instance": ("without the instance-wise term", {"use_instance": False}),
    "neither": ("without both", {"use_adv": False, "use_instance": False}),
}
N_INSTANCES = 16
# --ut KIND=PATH: a forget type, or "instances" (retrained without the instance split's images).
UT_KINDS = (*FORGET_TYPES, "instances")
FORGET_CLASS = "stripes"
INPAINT_TASK = "inpaint_4"
INPAINT_CLASSES = ("disks", "squares", "stripes")
# The small inpainting BEFORE of the class cells: a few hundred steps on a 192-image pool.
INPAINT_OVERRIDES = (
    f"data.tasks=[{INPAINT_TASK}]",
    f"data.content_classes=[{','.join(INPAINT_CLASSES)}]",
    "data.pool_size=192",
    "train.steps=300",
    "optim.warmup_steps=20",
)
SUMMARY_MD, SUMMARY_JSON = "summary.md", "summary.json"
# Relative cost of a cell for the ETA: unlearning samples seen, verification, training.
_VERIFY_UNITS, _TRAIN_UNITS_PER_SAMPLE = 2.0, 0.5 / (CPU_STEPS * CPU_BATCH)


class ReproduceError(ValueError):
    """The inputs of ``forgetir reproduce`` are missing or invalid; the message says which."""


@dataclass
class ReproduceOptions:
    """Everything ``forgetir reproduce`` takes (the command-line options, typed)."""

    scale: str = "cpu"
    out: str | None = None  # None: runs/reproduce-<scale>
    retrain: bool = False  # train BEFORE and the UT models instead of the shipped/given ones
    checkpoint: str | None = None  # BEFORE (cpu default: shipped:before)
    arch: str | None = None  # architecture of a published .ckpt (paper: promptir)
    ut: dict[str, str] = field(default_factory=dict)  # forget type -> UT checkpoint
    root: str | None = None  # PromptIR data root (paper scale)
    steps: int | None = None  # None: cpu 60; paper: 2 epochs of the forget set
    batch_size: int | None = None  # None: cpu 8, paper 16
    patch_size: int | None = None  # None: cpu 64, paper 128
    # Photos' longest side (cpu scale; the paper scale uses the full test images). 128, not the
    # demo's 256: every cell evaluates BEFORE, UT and the unlearned model, and at 256 that
    # evaluation costs about 6x more (measured 10.3 vs 1.6 s per model, 1 thread).
    test_max_side: int | None = 128
    train_overrides: list[str] = field(default_factory=list)  # extra overrides of train cells
    threads: int | None = None
    seed: int = 0
    relearn_steps: int = 20
    ain_max_steps: int = 40


@dataclass
class SplitSpec:
    """A split manifest made when a cell first needs it (``<out>/splits/<name>.json``)."""

    name: str
    by: str  # degradation | class | instances
    forget: list[str]  # tasks or classes; instances: chosen from the data at build time
    data: str  # "before" (the BEFORE's training data) or "inpaint" (the class cells' data)
    manifest: str | None = None  # use this manifest (the one a shipped UT was trained on)


@dataclass
class Cell:
    """One run of the grid: an unlearning run (``kind="unlearn"``) or a training run."""

    name: str  # also its folder under the output directory
    table: str  # the summary table it belongs to
    label: str  # its row in that table
    kind: str = "unlearn"  # unlearn | train
    parent: str = "before"  # model reference (a key of Plan.models or "cell:<name>")
    forget: list[str] | None = None  # degradation types (cpu scale)
    split: str | None = None  # a SplitSpec name (class, instances; paper-scale degradation)
    ut: str | None = None  # model reference of the UT compared against
    options: dict[str, Any] = field(default_factory=dict)  # UnlearnOptions fields
    epochs: float | None = None  # paper scale: steps = epochs x forget images / batch
    preset: str = "cpu"  # train cells: config preset ...
    overrides: list[str] = field(default_factory=list)  # ... its overrides ...
    exclude: list[str] = field(default_factory=list)  # ... tasks left out (UT)
    train_split: str | None = None  # ... or the retain part of this SplitSpec (UT)
    sweep: tuple[str, float] | None = None  # (param, value) for sweeps.json
    forget_type: str | None = None
    needs: list[str] = field(default_factory=list)  # cells that must be done first

    def describe(self) -> str:
        if self.kind == "train":
            what = " ".join([f"train --config {self.preset}", *self.overrides])
            if self.exclude:
                what += " " + " ".join(f"--exclude {t}" for t in self.exclude)
            if self.train_split:
                what += f" data.split=<{self.train_split}> data.part=retain"
            return what
        o = self.options
        target = o.get("target", "collapse")
        hp = " ".join(f"{k}={v}" for k, v in (o.get("hparams") or {}).items())
        steps = f"{self.epochs:g} epochs" if self.epochs else f"{o.get('steps')} steps"
        bits = [o.get("method", MAIN_METHOD), target, f"{steps} x batch {o.get('batch_size')}"]
        if o.get("lr") is not None:
            bits.append(f"lr {o['lr']:g}")
        if hp:
            bits.append(hp)
        bits.append("verify" if o.get("verify") else "quality only")
        return ", ".join(bits)


@dataclass
class Plan:
    """The grid of one scale, with the models and splits it refers to."""

    scale: str
    out: Path
    cells: list[Cell]
    models: dict[str, str]  # reference -> checkpoint spec
    splits: dict[str, SplitSpec]
    options: ReproduceOptions
    notes: list[str] = field(default_factory=list)

    def cell(self, name: str) -> Cell:
        for c in self.cells:
            if c.name == name:
                return c
        raise KeyError(f"no cell {name!r}; cells: {', '.join(c.name for c in self.cells)}")

    def cell_dir(self, cell: Cell | str) -> Path:
        return self.out / (cell if isinstance(cell, str) else cell.name)

    def model_path(self, ref: str | None) -> str | None:
        """Checkpoint spec of a model reference (``cell:<name>`` -> that cell's weights)."""
        if ref is None:
            return None
        if not ref.startswith("cell:"):
            if ref not in self.models:
                raise ReproduceError(
                    f"no model {ref!r} in the plan; models: {', '.join(self.models)}"
                )
            ref = self.models[ref]
        if ref.startswith("cell:"):
            return str(self.cell_dir(ref[5:]) / "model.safetensors")
        return ref


# ------------------------------------------------------------------------------ the grid


def _family_ut(t: str) -> str:
    return f"ut-{t}"


def build_plan(opts: ReproduceOptions) -> Plan:
    """The experiment grid of ``opts.scale`` (nothing is checked or run yet).

    Example:
        >>> plan = build_plan(ReproduceOptions(scale="paper", out="/tmp/p"))
        >>> plan.cell("main/dehaze-collapse").epochs
        2.0
    """
    if opts.scale not in SCALES:
        raise ReproduceError(f"unknown --scale {opts.scale!r}; valid choices: {', '.join(SCALES)}")
    paper = opts.scale == "paper"
    out = Path(opts.out or f"runs/reproduce-{opts.scale}")
    batch = opts.batch_size or (PAPER_BATCH if paper else CPU_BATCH)
    patch = opts.patch_size or (PAPER_PATCH if paper else CPU_PATCH)
    steps = opts.steps or CPU_STEPS
    epochs = PAPER_EPOCHS if paper and opts.steps is None else None
    base = {
        "batch_size": batch,
        "patch_size": patch,
        "steps": steps,
        "seed": opts.seed,
        "threads": opts.threads,
        "test_set": "promptir" if paper else "photos",
        "test_max_side": None if paper else opts.test_max_side,
        "relearn_steps": opts.relearn_steps,
        "ain_max_steps": opts.ain_max_steps,
        "quiet": True,
    }
    cells: list[Cell] = []
    models: dict[str, str] = {}
    splits: dict[str, SplitSpec] = {}
    notes: list[str] = []
    preset = "paper" if paper else "cpu"
    root_override = [f"data.root={opts.root}"] if paper and opts.root else []

    if opts.retrain:
        train_over = [*root_override, *opts.train_overrides]
        cells.append(
            Cell("train/before", "setup", "BEFORE", "train", preset=preset, overrides=train_over)
        )
        models["before"] = "cell:train/before"
        for t in FORGET_TYPES:
            cells.append(
                Cell(
                    f"train/ut-{t}",
                    "setup",
                    f"UT (no {t})",
                    "train",
                    preset=preset,
                    overrides=train_over,
                    exclude=[t],
                )
            )
            models[_family_ut(t)] = f"cell:train/ut-{t}"
    else:
        models["before"] = opts.checkpoint or ("" if paper else "shipped:before")
        for t in FORGET_TYPES:
            models[_family_ut(t)] = opts.ut.get(t) or ("" if paper else f"shipped:ut-{t}")

    def unlearn(name: str, table: str, label: str, t: str | None, **kw: Any) -> Cell:
        options = {**base, "method": MAIN_METHOD, "target": "collapse", "hparams": {}}
        options.update(kw.pop("options", {}))
        ut = kw.pop("ut", _family_ut(t) if t else None)
        parent = kw.pop("parent", "before")
        cell = Cell(name, table, label, parent=parent, ut=ut, options=options, forget_type=t, **kw)
        if t is not None:
            if paper:
                cell.split = f"forget-{t}"
                splits.setdefault(cell.split, SplitSpec(cell.split, "degradation", [t], "before"))
            else:
                cell.forget = [t]
        cell.epochs = epochs
        refs = [models.get(r, r) for r in (parent, ut) if r]
        cell.needs = sorted(r[5:] for r in refs if r.startswith("cell:"))
        cells.append(cell)
        return cell

    for t in FORGET_TYPES:
        for target in ("collapse", "retrain-like"):
            unlearn(
                f"main/{t}-{target}",
                "main",
                f"accurate-forgetting ({target}): forget {t}",
                t,
                options={"target": target, "verify": True, "grids": True},
            )
    for t in FORGET_TYPES:
        unlearn(
            f"control/{t}-finetune",
            "main",
            f"finetune (control, same steps): {t}",
            t,
            options={"method": CONTROL_METHOD, "verify": False, "grids": False},
        )
    for t in FORGET_TYPES:
        for key, (text, hp) in ABLATIONS.items():
            unlearn(
                f"ablation/{t}-{key}",
                "ablation",
                f"{t}: {text}",
                t,
                options={"hparams": dict(hp), "verify": False, "grids": False},
            )
    for t in FORGET_TYPES:
        for lr in SWEEP_LRS:
            if lr == 2e-4:
                continue  # the method's published rate: the main cell is this point
            unlearn(
                f"sweep/{t}-lr-{lr:g}",
                "sweep-lr",
                f"{t}: lr {lr:g}",
                t,
                sweep=("lr", lr),
                options={"lr": lr, "verify": False, "grids": False},
            )
        for b in SWEEP_BATCHES:
            # Same samples seen as the main cell (the paper trains 2 epochs whatever the batch).
            b_steps = max(1, round(steps * batch / b))
            unlearn(
                f"sweep/{t}-batch-{b}",
                "sweep-batch",
                f"{t}: batch {b}" + ("" if epochs else f" x {b_steps} steps"),
                t,
                sweep=("batch_size", b),
                options={"batch_size": b, "steps": b_steps, "verify": False, "grids": False},
            )
        for w in SWEEP_W_ADV:
            if w == 1.0:
                continue  # 1:1 is the published default: the main cell
            unlearn(
                f"sweep/{t}-wadv-{w:g}",
                "sweep-ratio",
                f"{t}: w_adv:w_ul {w:g}:1",
                t,
                sweep=("w_adv (w_ul = 1)", w),
                options={"hparams": {"w_adv": w}, "verify": False, "grids": False},
            )

    from forgetir.methods import list_methods

    for m in list_methods():
        if m in (MAIN_METHOD, CONTROL_METHOD):
            continue  # main/dehaze-collapse and control/dehaze-finetune are those rows
        unlearn(
            f"methods/{m}",
            "methods",
            f"{m} (collapse, published defaults)",
            "dehaze",
            options={"method": m, "verify": False, "grids": False},
        )

    splits["instances"] = SplitSpec("instances", "instances", [], "before")
    if opts.retrain:
        cells.append(
            Cell(
                "train/ut-instances",
                "setup",
                f"UT (without the {N_INSTANCES} images)",
                "train",
                preset=preset,
                overrides=[*root_override, *opts.train_overrides],
                train_split="instances",
            )
        )
        models["ut-instances"] = "cell:train/ut-instances"
    elif opts.ut.get("instances") or not paper:
        models["ut-instances"] = opts.ut.get("instances") or "shipped:ut-instances"
        if not opts.ut.get("instances"):
            from forgetir.shipped import shipped_split

            # The shipped UT left out exactly these images: forget the same ones.
            splits["instances"].manifest = str(shipped_split("ut-instances"))
    else:
        notes.append(
            "the instance cell has no UT at paper scale unless --retrain or --ut instances=PATH "
            "(a model retrained without the split's forget images)"
        )
    unlearn(
        f"instances/{MAIN_METHOD}-{N_INSTANCES}",
        "instances",
        f"{MAIN_METHOD}: forget {N_INSTANCES} training images",
        None,
        split="instances",
        ut="ut-instances" if "ut-instances" in models else None,
        options={"verify": True, "grids": True},
    )

    if paper:
        notes.append(
            "class cells are cpu-scale only: PromptIR's data has no content classes and the "
            "published model is not trained on inpainting"
        )
    else:
        inpaint = [*INPAINT_OVERRIDES, f"data.test_max_side={opts.test_max_side}"]
        inpaint += list(opts.train_overrides)
        split = f"class-{FORGET_CLASS}"
        splits[split] = SplitSpec(split, "class", [FORGET_CLASS], "inpaint")
        cells.append(
            Cell(
                "class/before-inpaint",
                "class",
                f"BEFORE ({INPAINT_TASK})",
                "train",
                overrides=inpaint,
            )
        )
        cells.append(
            Cell(
                f"class/ut-inpaint-no-{FORGET_CLASS}",
                "class",
                f"UT (no {FORGET_CLASS})",
                "train",
                overrides=inpaint,
                train_split=split,
            )
        )
        unlearn(
            f"class/encoder-noise-{FORGET_CLASS}",
            "class",
            f"encoder-noise: forget class {FORGET_CLASS}",
            None,
            split=split,
            parent="cell:class/before-inpaint",
            ut=f"cell:class/ut-inpaint-no-{FORGET_CLASS}",
            options={"method": "encoder-noise", "verify": True, "grids": True},
        )
    return Plan(opts.scale, out, cells, models, splits, opts, notes)


def select_cells(plan: Plan, patterns: Sequence[str] | None) -> list[Cell]:
    """The cells matching any glob pattern (all if none), plus the cells they need, in grid
    order; a pattern matching nothing is an error listing the cells."""
    if not patterns:
        return list(plan.cells)
    chosen: set[str] = set()
    for pat in patterns:
        hits = [c.name for c in plan.cells if fnmatch.fnmatchcase(c.name, pat)]
        if not hits:
            raise ReproduceError(
                f"--only {pat!r} matches no cell; cells: {', '.join(c.name for c in plan.cells)}"
            )
        chosen.update(hits)
    todo = list(chosen)
    while todo:
        for dep in plan.cell(todo.pop()).needs:
            if dep not in chosen:
                chosen.add(dep)
                todo.append(dep)
    return [c for c in plan.cells if c.name in chosen]


def format_grid(plan: Plan, cells: Sequence[Cell] | None = None) -> str:
    """The ``--list`` text: one line per cell (done or not, what it runs)."""
    cells = plan.cells if cells is None else cells
    width = max(len(c.name) for c in cells)
    lines = [f"forgetir reproduce --scale {plan.scale}: {len(cells)} cells under {plan.out}"]
    for c in cells:
        mark = "done" if is_done(plan, c) else "    "
        lines.append(f"  {mark} {c.name:<{width}}  {c.describe()}")
    lines += [f"  note: {n}" for n in plan.notes]
    return "\n".join(lines)


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
        from forgetir.data.promptir_layout import PromptIRLayout

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
        flag = "--checkpoint" if ref == "before" else f"--ut {ref[3:]}=PATH"
        if not spec:
            problems.append(f"{flag} (the {_model_words(ref)}; or --retrain to train it)")
            continue
        try:
            from forgetir.shipped import resolve_checkpoint

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
    if ref == "before":
        return "BEFORE model"
    what = "the instance split's images" if ref == "ut-instances" else ref[3:]
    return f"UT model retrained without {what}"


# ------------------------------------------------------------------------------ running


def is_done(plan: Plan, cell: Cell) -> bool:
    return (plan.cell_dir(cell) / "run.json").is_file()


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
        run = _read(plan.cell_dir(c) / "run.json") if is_done(plan, c) else None
        if run is not None and run.get("reproduce_cell") != cell_spec(plan, c):
            stale.append(c.name)
    return stale


def _split_data(plan: Plan, spec: SplitSpec) -> Any:
    from forgetir.config import load_config

    if spec.data == "inpaint":
        return load_config("cpu", plan.cell("class/before-inpaint").overrides).data
    if plan.scale == "paper" and not plan.options.retrain:
        return load_config("paper", [f"data.root={plan.options.root}"]).data
    from forgetir.checkpoint import load_model
    from forgetir.unlearn import parent_data_config

    model = load_model(_resolved(plan, "before"), arch=plan.options.arch)
    return parent_data_config(model)


def _resolved(plan: Plan, ref: str) -> Path:
    from forgetir.shipped import resolve_checkpoint

    return resolve_checkpoint(plan.model_path(ref) or "")


def _spread_ids(data: Any, n: int) -> list[str]:
    """``n`` image ids spread evenly over the training data's clean images."""
    from forgetir.data.pipeline import build_sources, train_tasks

    clean, _ = build_sources(data, train_tasks(data))
    if clean is None:
        raise ReproduceError("the instance cell needs a clean-image source in the training data")
    n = min(n, max(1, len(clean) // 2))  # always leave most of the data to retain
    step = len(clean) / n
    return [clean.name(int(i * step)) for i in range(n)]


def ensure_split(plan: Plan, name: str) -> Path:
    """The manifest of split ``name``, made (atomically) the first time it is needed."""
    from forgetir.data.splits import make_split, save_manifest

    path = plan.out / "splits" / f"{name}.json"
    if path.is_file():
        return path
    spec = plan.splits[name]
    if spec.manifest:
        from forgetir.data.splits import load_manifest

        load_manifest(spec.manifest, verify=True)  # every file's hash re-checked
        path.parent.mkdir(parents=True, exist_ok=True)
        return save_manifest(json.loads(Path(spec.manifest).read_text()), path)
    data = _split_data(plan, spec)
    forget = _spread_ids(data, N_INSTANCES) if spec.by == "instances" else spec.forget
    manifest = make_split(data, spec.by, forget, seed=plan.options.seed)
    return save_manifest(manifest, path)


def _run_train_cell(plan: Plan, cell: Cell) -> dict[str, Any]:
    from forgetir.config import load_config
    from forgetir.data.pipeline import resolve_tasks
    from forgetir.train import run_train

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
    from forgetir.checkpoint import read_sidecar

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
    from forgetir.data.splits import load_manifest

    if split_path is None:
        raise ReproduceError(f"cell {cell.name}: epochs need a split manifest")
    count = int(load_manifest(split_path)["forget"]["count"])
    return max(1, math.ceil(cell.epochs * count / int(cell.options["batch_size"])))


def _run_unlearn_cell(plan: Plan, cell: Cell) -> dict[str, Any]:
    from forgetir.unlearn import UnlearnOptions, run_unlearn

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
    from forgetir.checkpoint import TORCH_SUFFIXES

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


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


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
    q = _quality(plan, cell)
    if q is None or not run.get("forget_tasks"):
        return ""
    rows = q["rows"]
    f = run["forget_tasks"]
    parts = [
        f"{r} {_mean_psnr(rows.get(k), f):.2f}"
        for k, r in (("unlearned", "forget PSNR"), ("BEFORE", "BEFORE"), ("UT", "UT"))
        if k in rows
    ]
    drop = _worst_retain_change(rows, run.get("retain_tasks") or [])
    if drop is not None:
        parts.append(f"worst retained change {drop:+.2f} dB")
    return ": " + ", ".join(parts)


# ------------------------------------------------------------------------------ results


def _numbers(value: Any) -> Any:
    """JSON as written by forgetir ("inf"/"nan" strings for non-finite floats) back to floats."""
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    if value in ("inf", "-inf", "nan"):
        return float(value)
    return value


def _read(path: Path) -> Any:
    try:
        return _numbers(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def _quality(plan: Plan, cell: Cell) -> dict[str, Any] | None:
    return _read(plan.cell_dir(cell) / "quality.json")


def _mean_psnr(metrics: dict[str, Any] | None, tasks: Sequence[str]) -> float:
    vals = [float(metrics[t]["psnr"]) for t in tasks if metrics and t in metrics]
    return sum(vals) / len(vals) if vals else float("nan")


def _worst_retain_change(rows: dict[str, Any], retain: Sequence[str]) -> float | None:
    before, after = rows.get("BEFORE"), rows.get("unlearned")
    changes = [
        float(after[t]["psnr"]) - float(before[t]["psnr"])
        for t in retain
        if before and after and t in before and t in after
    ]
    return min(changes) if changes else None


def before_training_cost(plan: Plan) -> dict[str, Any]:
    """BEFORE's training steps and wall time (its sidecar), for the cost fractions."""
    from forgetir.checkpoint import read_sidecar

    try:
        path = _resolved(plan, "before")
        meta = read_sidecar(path)
    except Exception as e:  # a published .ckpt has no sidecar: the cost stays unknown
        return {"note": f"BEFORE's training cost is unknown ({type(e).__name__}: {e})"}
    train = ((meta.get("config") or {}).get("train") or {}).get("batch_size")
    return {
        "path": str(path),
        "steps": meta.get("step"),
        "wall_time_s": meta.get("wall_time"),
        "batch_size": train,
        "command": meta.get("command"),
    }


def _frac(a: Any, b: Any) -> float | None:
    try:
        return float(a) / float(b) if a is not None and b else None
    except (TypeError, ValueError):
        return None


def _cell_record(plan: Plan, cell: Cell, before: dict[str, Any]) -> dict[str, Any]:
    run = _read(plan.cell_dir(cell) / "run.json")
    rec: dict[str, Any] = {
        "name": cell.name,
        "table": cell.table,
        "label": cell.label,
        "what": cell.describe(),
        "folder": str(plan.cell_dir(cell)),
        "done": run is not None,
    }
    if run is None:
        return rec
    rec.update(
        steps=run.get("steps"),
        wall_time_s=run.get("wall_time_s"),
        cell_seconds=run.get("cell_seconds"),
        stopped_early=run.get("stopped_early"),
    )
    if cell.kind == "unlearn":
        batch = (run.get("options") or {}).get("batch_size")
        rec.update(
            batch_size=batch,
            step_fraction=_frac(run.get("steps"), before.get("steps")),
            time_fraction=_frac(run.get("wall_time_s"), before.get("wall_time_s")),
            sample_fraction=_frac(
                (run.get("steps") or 0) * (batch or 0),
                (before.get("steps") or 0) * (before.get("batch_size") or 0),
            ),
            forget_tasks=run.get("forget_tasks"),
            retain_tasks=run.get("retain_tasks"),
        )
        q = _quality(plan, cell)
        if q is not None:
            rec.update(quality=q["rows"], protocol=q.get("protocol"), test_set=q.get("test_set"))
        v = _read(plan.cell_dir(cell) / "verify.json")
        if v is not None:
            rec["verify"] = _verify_figures(v)
    return rec


def _verify_figures(v: dict[str, Any]) -> dict[str, Any]:
    """The key verification numbers of a cell (the full record stays in its verify.json)."""
    out: dict[str, Any] = {}
    og = v.get("output_gap") or {}
    out["output_gap"], out["output_gap_before"] = og.get("value"), og.get("before_value")
    rel = v.get("relearn") or {}
    for label, r in (rel.get("runs") or {}).items():
        out[f"relearn_recovered_db_{label}"] = r.get("recovered_db")
    ain = v.get("anamnesis") or {}
    out["ain"], out["ain_verdict"] = ain.get("ain"), ain.get("verdict")
    mia = (v.get("membership") or {}).get("models") or {}
    for label, m in mia.items():
        keys = ("forgotten_member_rate", "nonmember_member_rate", "forgotten_vs_nonmembers_auc")
        out[f"mia_{label}"] = {k: m.get(k) for k in ("attack_auc", *keys)}
    return out


def _fmt(x: Any, digits: int = 2, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if isinstance(x, str):
        return x
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def _pct(x: Any) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


TABLES: dict[str, tuple[str, str]] = {
    "main": (
        "Forgetting each degradation type (paper Tables 2/3)",
        "accurate-forgetting with its published defaults (1:1:1, Adam, lr 2e-4), with the "
        "paper's collapse target and with the retrain-like target; finetune on the retain data "
        "for the same steps is the continue-training control.",
    ),
    "ablation": ("Ablation (paper Table 4)", "accurate-forgetting without its terms."),
    "sweep-lr": ("Learning rate (paper Fig. 3a / Table 3c)", "lr 2e-4 is the main cell."),
    "sweep-batch": (
        "Batch size (paper Fig. 3b / Table 3d)",
        "steps scaled so that every run sees the same number of samples as the main cell "
        "(the paper trains a fixed 2 epochs); the batch-8 row is the main cell.",
    ),
    "sweep-ratio": (
        "Weight ratio w_adv : w_ul (paper Table 5, W_adv : W_ins)",
        "w_ul = 1; 1:1 is the main cell.",
    ),
    "methods": (
        "Every registered method on the dehaze split",
        "published defaults, collapse target, same steps and batch; accurate-forgetting is "
        "main/dehaze-collapse and finetune (the continue-training control) "
        "control/dehaze-finetune; retrain is training from scratch on the retain data cut to "
        "the same steps (what this budget buys without the BEFORE weights).",
    ),
    "instances": (
        "Deletion request: forget 16 training images",
        "columns: fixed patches of the forgotten images (forget) and of retained training "
        "images (retain); membership inference in the verification notes.",
    ),
    "class": (
        "Content-class forgetting (second seed's setting)",
        f"{INPAINT_TASK} on dead leaves of classes {', '.join(INPAINT_CLASSES)}; forget "
        f"{FORGET_CLASS}; columns: patches of forget-class / retained-class training images.",
    ),
}


# Tables in which the main collapse cell of each forget type is a row (the default point),
# and its label there.
_MAIN_POINT: dict[str, Callable[[Cell], str]] = {
    "ablation": lambda c: f"{c.forget_type}: full method (adv + instance-wise)",
    "sweep-lr": lambda c: f"{c.forget_type}: lr 2e-4",
    "sweep-batch": lambda c: (
        f"{c.forget_type}: batch {c.options['batch_size']}"
        + ("" if c.epochs else f" x {c.options['steps']} steps")
        + " (main cell)"
    ),
    "sweep-ratio": lambda c: f"{c.forget_type}: w_adv:w_ul 1:1",
}


def _type_order(c: Cell) -> int:
    return FORGET_TYPES.index(c.forget_type) if c.forget_type in FORGET_TYPES else -1


def _table_rows(plan: Plan, table: str, recs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``{row label: {task: metrics}}`` of one summary table, and the cells it used."""
    members = [c for c in plan.cells if c.table == table]
    label = {c.name: c.label for c in members}
    if table in _MAIN_POINT:
        mains = [
            c for c in plan.cells if c.name.startswith("main/") and c.name.endswith("-collapse")
        ]
        label.update({c.name: _MAIN_POINT[table](c) for c in mains})
        members = mains + members
    if table == "methods":
        first = [plan.cell("main/dehaze-collapse"), plan.cell("control/dehaze-finetune")]
        label.update(
            {c.name: f"{c.options['method']} (collapse, published defaults)" for c in first}
        )
        label[first[1].name] = "finetune (continue-training control)"
        members = first + members
    members = [c for c in members if recs[c.name].get("quality")]
    if table != "methods":
        members.sort(key=lambda c: (_type_order(c), plan.cells.index(c)))
    rows: dict[str, Any] = {}
    if members:
        q = recs[members[0].name]["quality"]
        rows["degraded input"], rows["BEFORE"] = q.get("input"), q.get("BEFORE")
    for c in members:
        ut = recs[c.name]["quality"].get("UT")
        what = c.forget_type or {"class": FORGET_CLASS, "instances": "forget images"}.get(table)
        if ut and what and f"UT (no {what})" not in rows:
            rows[f"UT (no {what})"] = ut
    for c in members:
        rows[label[c.name]] = recs[c.name]["quality"].get("unlearned")
    return {"rows": {k: v for k, v in rows.items() if v}, "cells": [c.name for c in members]}


def _headline_rows(recs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per forget type: forget PSNR of input / BEFORE / UT / each main and control cell, and
    the worst retained-task change of each."""
    out = []
    for t in FORGET_TYPES:
        names = [f"main/{t}-collapse", f"main/{t}-retrain-like", f"control/{t}-finetune"]
        done = [recs[n] for n in names if n in recs and recs[n].get("quality")]
        if not done:
            continue
        rows, forget = done[0]["quality"], done[0]["forget_tasks"]
        entry: dict[str, Any] = {"forget": t, "tasks": forget}
        for key in ("input", "BEFORE", "UT"):
            if rows.get(key):
                entry[key] = _mean_psnr(rows[key], forget)
        for r in done:
            entry[r["name"]] = {
                "forget_psnr": _mean_psnr(r["quality"]["unlearned"], forget),
                "worst_retain_change_db": _worst_retain_change(
                    r["quality"], r.get("retain_tasks") or []
                ),
            }
        out.append(entry)
    return out


def build_summary(plan: Plan) -> dict[str, Any]:
    """Every finished cell's numbers gathered into the seed paper's tables (a JSON dict)."""
    before = before_training_cost(plan)
    recs = {c.name: _cell_record(plan, c, before) for c in plan.cells}
    tables: dict[str, Any] = {}
    for key, (title, text) in TABLES.items():
        t = _table_rows(plan, key, recs)
        if not t["rows"]:
            continue
        q = recs[t["cells"][0]] if t["cells"] else {}
        sources = {recs[n].get("test_set") for n in t["cells"]}
        tables[key] = {
            "title": title,
            "text": text,
            "protocol": q.get("protocol"),
            "test_set": q.get("test_set"),
            "mixed_test_sets": len(sources) > 1,
            "rows": t["rows"],
            "cells": t["cells"],
        }
    return {
        "format": "forgetir-reproduce",
        "version": 1,
        "scale": plan.scale,
        "out": str(plan.out),
        "before_training": before,
        "notes": plan.notes,
        "tables": tables,
        "cells": recs,
        "sweeps": sweep_entries(plan, recs),
        "headline": _headline_rows(recs),
        "relearn_steps": plan.options.relearn_steps,
        "done": sum(1 for r in recs.values() if r["done"]),
        "total_cells": len(recs),
        "cell_seconds_total": round(
            sum(float(r.get("cell_seconds") or 0) for r in recs.values()), 1
        ),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def sweep_entries(plan: Plan, recs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """sweeps.json entries ``{param, value, forget, psnr: {task: dB}, ssim, cell}`` of every
    finished sweep cell, with the main cell as the default point of each parameter."""
    out: list[dict[str, Any]] = []
    for c in plan.cells:
        q = recs[c.name].get("quality")
        if not q or not q.get("unlearned"):
            continue
        points: list[tuple[str, float]] = []
        if c.sweep:
            points.append(c.sweep)
        elif c.name.startswith("main/") and c.name.endswith("-collapse"):
            o = c.options
            points += [("lr", 2e-4), ("batch_size", o["batch_size"]), ("w_adv (w_ul = 1)", 1.0)]
        for param, value in points:
            u = q["unlearned"]
            out.append(
                {
                    "param": param,
                    "value": value,
                    "forget": c.forget_type,
                    "psnr": {t: m["psnr"] for t, m in u.items()},
                    "ssim": {t: m["ssim"] for t, m in u.items()},
                    "cell": c.name,
                }
            )
    return out


def _write_sweeps(plan: Plan, entries: list[dict[str, Any]]) -> None:
    atomic_json(plan.out / "sweeps.json", entries)
    for t in FORGET_TYPES:
        main = plan.cell_dir(f"main/{t}-collapse")
        mine = [e for e in entries if e["forget"] == t]
        if (main / "run.json").is_file() and len(mine) > 3:
            atomic_json(main / "sweeps.json", mine)


def format_summary(summary: dict[str, Any]) -> str:
    """``summary.md``: the tables (format_table, with their captions) and per-table notes."""
    from forgetir.evaluate import format_table

    b = summary["before_training"]
    lines = [
        f"# forgetir reproduce --scale {summary['scale']}",
        "",
        f"{summary['done']} of {summary['total_cells']} cells done; cell time in total "
        f"{_hms(summary['cell_seconds_total'])} (sum of each cell's wall time, evaluation and "
        "verification included). Every cell is a run folder under "
        f"`{summary['out']}/<cell>/`; `forgetir report <folder>` writes its full report.",
        "",
    ]
    if b.get("steps"):
        lines.append(
            f"Cost fractions are relative to BEFORE's training: {b['steps']} steps at batch "
            f"{b.get('batch_size')}, {_fmt(b.get('wall_time_s'), 0)} s wall time "
            f"(`{b.get('command')}`). Wall times depend on the machine and its load."
        )
    else:
        lines.append(b.get("note", "BEFORE's training cost is unknown."))
    lines += [f"Note: {n}" for n in summary["notes"]]
    if summary["headline"]:
        lines += ["", "## Headline", ""]
        lines.append(
            "Forget-task PSNR (dB; denoise: mean of σ15/25/50) and the worst change of a "
            "retained task against BEFORE, from the tables below:"
        )
        lines.append("")
    for h in summary["headline"]:
        cells = [
            f"{n.split('/')[1].removeprefix(h['forget'] + '-')} "
            f"{_fmt(v['forget_psnr'])} (retained {_fmt(v['worst_retain_change_db'], 2, True)})"
            for n, v in h.items()
            if isinstance(v, dict)
        ]
        lines.append(
            f"- forget {h['forget']}: BEFORE {_fmt(h.get('BEFORE'))}, UT {_fmt(h.get('UT'))}, "
            f"degraded input {_fmt(h.get('input'))}; " + "; ".join(cells)
        )
    for key, t in summary["tables"].items():
        lines += ["", f"## {t['title']}", "", t["text"], ""]
        lines.append(format_table(t["rows"], t["protocol"] or "promptir", t["test_set"] or ""))
        if t["mixed_test_sets"]:
            lines.append(
                "\nWarning: the cells of this table were evaluated on different test sets."
            )
        lines += ["", _notes_table(summary, t["cells"])]
        if key in ("main", "instances", "class"):
            v = _verify_table(summary, t["cells"], summary["relearn_steps"])
            if v:
                lines += ["", v]
    lines += ["", "## Cells", "", "| cell | what | status |", "|---|---|---|"]
    for r in summary["cells"].values():
        lines.append(f"| {r['name']} | {r['what']} | {'done' if r['done'] else 'not run'} |")
    return "\n".join(lines) + "\n"


def _notes_table(summary: dict[str, Any], names: Sequence[str]) -> str:
    lines = [
        "| cell | steps x batch | unlearning wall (s) | cell total (s) | steps / BEFORE's | "
        "samples / BEFORE's (per data stream) | wall / BEFORE's | stopped early |",
        "|---|---|---|---|---|---|---|---|",
    ]
    total = 0.0
    for n in names:
        r = summary["cells"][n]
        total += float(r.get("cell_seconds") or 0)
        lines.append(
            f"| {n} | {r.get('steps')} x {r.get('batch_size')} | {_fmt(r.get('wall_time_s'), 1)} "
            f"| {_fmt(r.get('cell_seconds'), 0)} | {_pct(r.get('step_fraction'))} | "
            f"{_pct(r.get('sample_fraction'))} | {_pct(r.get('time_fraction'))} | "
            f"{r.get('stopped_early') or ''} |"
        )
    return "\n".join(lines) + f"\n\nWall time of this table's cells: {_hms(total)}."


def _verify_table(summary: dict[str, Any], names: Sequence[str], relearn_steps: int) -> str:
    recs = [summary["cells"][n] for n in names if summary["cells"][n].get("verify")]
    if not recs:
        return ""
    lines = [
        f"Verification (full records in each cell's verify.json): output gap = mean per-image "
        f"L1 between the model's and UT's outputs on forget-test; relearning = forget PSNR "
        f"gained by {relearn_steps} fine-tuning steps on 4 forget patches; AIN = anamnesis "
        "index (about 1 is ideal, much below 1 means the knowledge comes straight back).",
        "",
        "| cell | output gap to UT (BEFORE's) | relearned dB unlearned / UT | AIN |",
        "|---|---|---|---|",
    ]
    for r in recs:
        v = r["verify"]
        gap = f"{_fmt(v.get('output_gap'), 4)} ({_fmt(v.get('output_gap_before'), 4)})"
        rel = (
            f"{_fmt(v.get('relearn_recovered_db_unlearned'), 2, True)} / "
            f"{_fmt(v.get('relearn_recovered_db_UT'), 2, True)}"
        )
        ain = f"{_fmt(v.get('ain'), 2)} ({v.get('ain_verdict') or '–'})"
        lines.append(f"| {r['name']} | {gap} | {rel} | {ain} |")
    mia = [(r["name"], r["verify"]) for r in recs if r["verify"].get("mia_unlearned")]
    if mia:
        lines += [
            "",
            "Membership inference (loss-based attack fitted on members = retained training "
            "images vs non-members = held-out images): the share of forgotten images the attack "
            "calls members (non-members' share for reference), and the AUC separating forgotten "
            "images from non-members (0.5 = indistinguishable, the goal).",
            "",
            "| cell | model | forgotten called members | non-members called members | "
            "AUC forgotten vs non-members |",
            "|---|---|---|---|---|",
        ]
        for name, v in mia:
            for label in ("unlearned", "UT", "BEFORE"):
                m = v.get(f"mia_{label}")
                if m:
                    lines.append(
                        f"| {name} | {label} | {_pct(m.get('forgotten_member_rate'))} | "
                        f"{_pct(m.get('nonmember_member_rate'))} | "
                        f"{_fmt(m.get('forgotten_vs_nonmembers_auc'), 3)} |"
                    )
    return "\n".join(lines)


def write_summary(plan: Plan, docs: str | Path | None = None) -> dict[str, Any]:
    """Write ``summary.json``, ``summary.md`` and ``sweeps.json`` (and copy the Markdown to
    ``docs``); return the summary."""
    summary = build_summary(plan)
    _write_sweeps(plan, summary["sweeps"])
    atomic_json(plan.out / SUMMARY_JSON, summary, default=str)
    text = format_summary(summary)
    atomic_write(plan.out / SUMMARY_MD, text)
    if docs:
        atomic_write(Path(docs), text)
    return summary


# ------------------------------------------------------------------------------ command line


def add_reproduce_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``forgetir reproduce``."""
    parser.add_argument("--scale", default="cpu", choices=SCALES)
    parser.add_argument("--out", help="output folder (default: runs/reproduce-<scale>)")
    parser.add_argument("--list", action="store_true", help="print the cells and exit")
    parser.add_argument(
        "--only",
        action="append",
        metavar="PATTERN",
        help="run the cells matching this glob "
        "(e.g. 'main/*'; repeatable; the cells they need are added)",
    )
    parser.add_argument(
        "--retrain",
        action="store_true",
        help="train BEFORE and the UT models instead of "
        "using the shipped (cpu) or given (paper) ones",
    )
    parser.add_argument("--checkpoint", help="BEFORE model (cpu default: shipped:before)")
    parser.add_argument("--arch", help="architecture of a published .ckpt (e.g. promptir)")
    parser.add_argument(
        "--ut",
        action="append",
        default=[],
        metavar="TYPE=PATH",
        help="UT model retrained without KIND (dehaze, derain, denoise, or instances: without "
        "the instance cell's images); repeatable",
    )
    parser.add_argument("--root", help="PromptIR data folder (paper scale)")
    parser.add_argument("--steps", type=int, help="unlearning steps (cpu 60; paper: 2 epochs)")
    parser.add_argument("--batch-size", type=int, help="unlearning batch (cpu 8, paper 16)")
    parser.add_argument("--patch-size", type=int, help="patch side (cpu 64, paper 128)")
    parser.add_argument(
        "--test-max-side", type=int, default=128, help="longest side of the test photos (cpu)"
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--docs",
        nargs="?",
        const="docs/reproduce.md",
        default=None,
        metavar="PATH",
        help="also copy summary.md here (default docs/reproduce.md)",
    )


def parse_ut(items: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, path = item.partition("=")
        if not sep or key not in UT_KINDS or not path:
            raise ReproduceError(
                f"--ut {item!r}: expected KIND=PATH with KIND one of {', '.join(UT_KINDS)}"
            )
        out[key] = path
    return out


def options_from_args(args: argparse.Namespace) -> ReproduceOptions:
    return ReproduceOptions(
        scale=args.scale,
        out=args.out,
        retrain=args.retrain,
        checkpoint=args.checkpoint,
        arch=args.arch or ("promptir" if args.scale == "paper" and args.checkpoint else None),
        ut=parse_ut(args.ut),
        root=args.root,
        steps=args.steps,
        batch_size=args.batch_size,
        patch_size=args.patch_size,
        test_max_side=args.test_max_side,
        threads=args.threads,
        seed=args.seed,
    )


def reproduce_command(args: argparse.Namespace) -> int:
    """``forgetir reproduce``: list, or run the (selected) cells and write the summary."""
    plan = build_plan(options_from_args(args))
    if args.list:
        print(format_grid(plan, select_cells(plan, args.only)))
        return 0
    t0 = time.time()
    run_plan(plan, args.only)
    if args.docs:
        write_summary(plan, docs=args.docs)
        print(f"copied the summary to {args.docs}")
    print(f"forgetir reproduce finished in {_hms(time.time() - t0)}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    p = argparse.ArgumentParser(prog="forgetir reproduce")
    add_reproduce_arguments(p)
    sys.exit(reproduce_command(p.parse_args()))
