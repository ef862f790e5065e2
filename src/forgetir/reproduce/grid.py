"""The experiment grid of ``forgetir reproduce``: options, cells, models, splits."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from forgetir.errors import InvalidInputError

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
CLASS_TASKS = ("inpaint_4", "denoise_25")
CONTENT_CLASSES = ("disks", "squares", "stripes")
# The BEFORE of the class cells (shipped as inpaint-before; its UT without the forget class as
# inpaint-ut-stripes): the cpu recipe on a 192-image pool of three classes. Inpainting alone
# taught no class-specific skill (measured: UT without stripes inpainted stripes 0.15 dB better
# than BEFORE), since a centre hole is filled with a smooth guess whatever the class; denoising
# the gratings of the stripes class is a skill a model trained only on flat leaves lacks.
CLASS_OVERRIDES = (
    f"data.tasks=[{','.join(CLASS_TASKS)}]",
    f"data.content_classes=[{','.join(CONTENT_CLASSES)}]",
    "data.pool_size=192",
    "train.steps=1500",
    "optim.warmup_steps=50",
)
SUMMARY_MD, SUMMARY_JSON = "summary.md", "summary.json"
SEED_MARK = "@seed"  # "main/dehaze-collapse@seed1": that cell at seed + 1
# Relative cost of a cell for the ETA: unlearning samples seen, verification, training.
_VERIFY_UNITS, _TRAIN_UNITS_PER_SAMPLE = 2.0, 0.5 / (CPU_STEPS * CPU_BATCH)


class ReproduceError(InvalidInputError):
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
    # The main/* and methods/* cells also run at seeds seed+1 .. seed+seeds-1 (cells named
    # "<cell>@seed<s>"); the summary reports their figures as mean ± sd over the seeds.
    seeds: int = 3
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

    def seeded(cell: Cell) -> None:
        # The same run at further seeds, for the summary's mean ± sd (table "seeds").
        for k in range(1, opts.seeds):
            cells.append(
                replace(
                    cell,
                    name=f"{cell.name}{SEED_MARK}{k}",
                    table="seeds",
                    label=f"{cell.label} (seed {opts.seed + k})",
                    options={**cell.options, "seed": opts.seed + k, "grids": False},
                )
            )

    if opts.seeds < 1:
        raise ReproduceError(f"--seeds must be >= 1, got {opts.seeds}")
    for t in FORGET_TYPES:
        for target in ("collapse", "retrain-like"):
            seeded(
                unlearn(
                    f"main/{t}-{target}",
                    "main",
                    f"accurate-forgetting ({target}): forget {t}",
                    t,
                    options={"target": target, "verify": True, "grids": True},
                )
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
        seeded(
            unlearn(
                f"methods/{m}",
                "methods",
                f"{m} (collapse, published defaults)",
                "dehaze",
                options={"method": m, "verify": False, "grids": False},
            )
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
            manifest = shipped_split("ut-instances")
            splits["instances"].manifest = str(manifest) if manifest else None
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
        split = f"class-{FORGET_CLASS}"
        splits[split] = SplitSpec(split, "class", [FORGET_CLASS], "inpaint")
        if opts.retrain:
            inpaint = [*CLASS_OVERRIDES, f"data.test_max_side={opts.test_max_side}"]
            inpaint += list(opts.train_overrides)
            for name, label, train_split in (
                ("class/before-inpaint", f"BEFORE ({', '.join(CLASS_TASKS)})", None),
                (f"class/ut-inpaint-no-{FORGET_CLASS}", f"UT (no {FORGET_CLASS})", split),
            ):
                cells.append(
                    Cell(name, "class", label, "train", overrides=inpaint, train_split=train_split)
                )
            models["inpaint-before"] = "cell:class/before-inpaint"
            models["inpaint-ut"] = f"cell:class/ut-inpaint-no-{FORGET_CLASS}"
        else:
            from forgetir.shipped import shipped_split

            models["inpaint-before"] = "shipped:inpaint-before"
            models["inpaint-ut"] = f"shipped:inpaint-ut-{FORGET_CLASS}"
            # The shipped UT left out exactly this split's images.
            manifest = shipped_split(f"inpaint-ut-{FORGET_CLASS}")
            splits[split].manifest = str(manifest) if manifest else None
        unlearn(
            f"class/encoder-noise-{FORGET_CLASS}",
            "class",
            f"encoder-noise: forget class {FORGET_CLASS}",
            None,
            split=split,
            parent="inpaint-before",
            ut="inpaint-ut",
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


def is_done(plan: Plan, cell: Cell) -> bool:
    return (plan.cell_dir(cell) / "run.json").is_file()


def _resolved(plan: Plan, ref: str) -> Path:
    from forgetir.shipped import resolve_checkpoint

    return resolve_checkpoint(plan.model_path(ref) or "")


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"
