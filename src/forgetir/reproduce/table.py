"""The cells of ``forgetir reproduce`` as a table, and :func:`build_plan` that expands it.

Each :class:`CellRow` is one unlearning cell; ``{t}`` in its name and label stands for the
forget type. The rows of :data:`PER_TYPE_BLOCKS` are expanded block by block, each block once
per forget type; :func:`method_rows` adds a row per other registered method (on dehaze), and
the instance and class rows (:data:`INSTANCE_ROW`, :data:`CLASS_ROW`) come last, after the
models and splits they need. Options not given by a row are the grid's base options with the
main method, the collapse target and no hyper-parameter overrides.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from forgetir.checkpoint.shipped import shipped_split
from forgetir.methods import list_methods
from forgetir.reproduce.grid import (
    ABLATIONS,
    CLASS_OVERRIDES,
    CLASS_TASKS,
    CONTROL_METHOD,
    CPU_BATCH,
    CPU_PATCH,
    CPU_STEPS,
    FORGET_CLASS,
    FORGET_TYPES,
    MAIN_METHOD,
    N_INSTANCES,
    PAPER_BATCH,
    PAPER_EPOCHS,
    PAPER_PATCH,
    SCALES,
    SEED_MARK,
    SWEEP_BATCHES,
    SWEEP_LRS,
    SWEEP_W_ADV,
    Cell,
    Plan,
    ReproduceError,
    ReproduceOptions,
    SplitSpec,
)

QUALITY_ONLY = {"verify": False, "grids": False}
VERIFIED = {"verify": True, "grids": True}


@dataclass(frozen=True)
class CellRow:
    """One unlearning cell of the grid (``{t}``: the forget type of its expansion)."""

    name: str
    table: str  # the summary table it belongs to
    label: str  # its row in that table
    options: dict[str, Any] = field(default_factory=dict)  # UnlearnOptions over the base
    seeded: bool = False  # also run at the further seeds (table "seeds")
    sweep: tuple[str, float] | None = None  # (param, value) for sweeps.json
    batch: int | None = None  # batch sweep: this batch, steps scaled to the same samples seen
    split: str | None = None  # a SplitSpec name instead of a forget type
    parent: str = "before"
    ut: str | None = None  # None: the forget type's UT


MAIN_ROWS = tuple(
    CellRow(
        f"main/{{t}}-{target}",
        "main",
        f"accurate-forgetting ({target}): forget {{t}}",
        {"target": target, **VERIFIED},
        seeded=True,
    )
    for target in ("collapse", "retrain-like")
)
CONTROL_ROWS = (
    CellRow(
        "control/{t}-finetune",
        "main",
        "finetune (control, same steps): {t}",
        {"method": CONTROL_METHOD, **QUALITY_ONLY},
    ),
)
ABLATION_ROWS = tuple(
    CellRow(f"ablation/{{t}}-{key}", "ablation", f"{{t}}: {text}", {"hparams": hp, **QUALITY_ONLY})
    for key, (text, hp) in ABLATIONS.items()
)
SWEEP_ROWS = (
    *(
        CellRow(
            f"sweep/{{t}}-lr-{lr:g}",
            "sweep-lr",
            f"{{t}}: lr {lr:g}",
            {"lr": lr, **QUALITY_ONLY},
            sweep=("lr", lr),
        )
        for lr in SWEEP_LRS
        if lr != 2e-4  # the method's published rate: the main cell is this point
    ),
    *(
        CellRow(
            f"sweep/{{t}}-batch-{b}",
            "sweep-batch",
            f"{{t}}: batch {b}",
            QUALITY_ONLY,
            sweep=("batch_size", b),
            batch=b,
        )
        for b in SWEEP_BATCHES
    ),
    *(
        CellRow(
            f"sweep/{{t}}-wadv-{w:g}",
            "sweep-ratio",
            f"{{t}}: w_adv:w_ul {w:g}:1",
            {"hparams": {"w_adv": w}, **QUALITY_ONLY},
            sweep=("w_adv (w_ul = 1)", w),
        )
        for w in SWEEP_W_ADV
        if w != 1.0  # 1:1 is the published default: the main cell
    ),
)
# Expanded in this order: for each block, for each forget type, the block's rows.
PER_TYPE_BLOCKS = (MAIN_ROWS, CONTROL_ROWS, ABLATION_ROWS, SWEEP_ROWS)
INSTANCE_ROW = CellRow(
    f"instances/{MAIN_METHOD}-{N_INSTANCES}",
    "instances",
    f"{MAIN_METHOD}: forget {N_INSTANCES} training images",
    VERIFIED,
    split="instances",
    ut="ut-instances",
)
CLASS_ROW = CellRow(
    f"class/encoder-noise-{FORGET_CLASS}",
    "class",
    f"encoder-noise: forget class {FORGET_CLASS}",
    {"method": "encoder-noise", **VERIFIED},
    split=f"class-{FORGET_CLASS}",
    parent="inpaint-before",
    ut="inpaint-ut",
)


def method_rows() -> tuple[CellRow, ...]:
    """A row per registered method other than the main and control ones (on dehaze)."""
    return tuple(
        CellRow(
            f"methods/{m}",
            "methods",
            f"{m} (collapse, published defaults)",
            {"method": m, **QUALITY_ONLY},
            seeded=True,
        )
        for m in list_methods()
        if m not in (MAIN_METHOD, CONTROL_METHOD)  # main/dehaze-collapse, control/dehaze-finetune
    )


def _family_ut(t: str) -> str:
    return f"ut-{t}"


class _Builder:
    """The plan under construction: scale settings, and the cells, models, splits so far."""

    def __init__(self, opts: ReproduceOptions) -> None:
        self.opts = opts
        self.paper = paper = opts.scale == "paper"
        self.batch = opts.batch_size or (PAPER_BATCH if paper else CPU_BATCH)
        self.steps = opts.steps or CPU_STEPS
        self.epochs = PAPER_EPOCHS if paper and opts.steps is None else None
        self.preset = "paper" if paper else "cpu"
        self.root_override = [f"data.root={opts.root}"] if paper and opts.root else []
        self.base = {
            "batch_size": self.batch,
            "patch_size": opts.patch_size or (PAPER_PATCH if paper else CPU_PATCH),
            "steps": self.steps,
            "seed": opts.seed,
            "threads": opts.threads,
            "test_set": "promptir" if paper else "photos",
            "test_max_side": None if paper else opts.test_max_side,
            "relearn_steps": opts.relearn_steps,
            "ain_max_steps": opts.ain_max_steps,
            "quiet": True,
        }
        self.cells: list[Cell] = []
        self.models: dict[str, str] = {}
        self.splits: dict[str, SplitSpec] = {}
        self.notes: list[str] = []

    def train(self, name: str, label: str, **kw: Any) -> None:
        overrides = kw.pop("overrides", [*self.root_override, *self.opts.train_overrides])
        self.cells.append(
            Cell(name, kw.pop("table", "setup"), label, "train", overrides=overrides, **kw)
        )

    def add(self, row: CellRow, t: str | None) -> None:
        """The cell of ``row`` for forget type ``t`` (None: the row's split), and its seeds."""
        fill = {"t": t or ""}
        options = {**self.base, "method": MAIN_METHOD, "target": "collapse", "hparams": {}}
        options.update({k: dict(v) if k == "hparams" else v for k, v in row.options.items()})
        label = row.label.format(**fill)
        if row.batch is not None:
            # Same samples seen as the main cell (the paper trains 2 epochs whatever the batch).
            b_steps = max(1, round(self.steps * self.batch / row.batch))
            options.update(batch_size=row.batch, steps=b_steps)
            label += "" if self.epochs else f" x {b_steps} steps"
        ut = row.ut if t is None else _family_ut(t)
        if t is None and ut is not None and ut not in self.models:
            ut = None  # the instance cell without a UT (paper scale)
        cell = Cell(
            row.name.format(**fill),
            row.table,
            label,
            parent=row.parent,
            ut=ut,
            options=options,
            forget_type=t,
            split=row.split,
            sweep=row.sweep,
        )
        if t is not None:
            if self.paper:
                cell.split = f"forget-{t}"
                self.splits.setdefault(
                    cell.split, SplitSpec(cell.split, "degradation", [t], "before")
                )
            else:
                cell.forget = [t]
        cell.epochs = self.epochs
        refs = [self.models.get(r, r) for r in (row.parent, ut) if r]
        cell.needs = sorted(r[5:] for r in refs if r.startswith("cell:"))
        self.cells.append(cell)
        if row.seeded:
            self._seeded(cell)

    def _seeded(self, cell: Cell) -> None:
        # The same run at further seeds, for the summary's mean ± sd (table "seeds").
        seed = self.opts.seed
        for k in range(1, self.opts.seeds):
            self.cells.append(
                replace(
                    cell,
                    name=f"{cell.name}{SEED_MARK}{k}",
                    table="seeds",
                    label=f"{cell.label} (seed {seed + k})",
                    options={**cell.options, "seed": seed + k, "grids": False},
                )
            )


def _setup_models(b: _Builder) -> None:
    """BEFORE and the forget types' UTs: trained by ``train/*`` cells, shipped, or given."""
    opts = b.opts
    if opts.retrain:
        b.train("train/before", "BEFORE", preset=b.preset)
        b.models["before"] = "cell:train/before"
        for t in FORGET_TYPES:
            b.train(f"train/ut-{t}", f"UT (no {t})", preset=b.preset, exclude=[t])
            b.models[_family_ut(t)] = f"cell:train/ut-{t}"
    else:
        b.models["before"] = opts.checkpoint or ("" if b.paper else "shipped:before")
        for t in FORGET_TYPES:
            b.models[_family_ut(t)] = opts.ut.get(t) or ("" if b.paper else f"shipped:ut-{t}")


def _setup_instances(b: _Builder) -> None:
    """The instance split and its UT (trained, shipped with its split, given, or none)."""
    opts = b.opts
    b.splits["instances"] = SplitSpec("instances", "instances", [], "before")
    if opts.retrain:
        label = f"UT (without the {N_INSTANCES} images)"
        b.train("train/ut-instances", label, preset=b.preset, train_split="instances")
        b.models["ut-instances"] = "cell:train/ut-instances"
    elif opts.ut.get("instances") or not b.paper:
        b.models["ut-instances"] = opts.ut.get("instances") or "shipped:ut-instances"
        if not opts.ut.get("instances"):
            # The shipped UT left out exactly these images: forget the same ones.
            manifest = shipped_split("ut-instances")
            b.splits["instances"].manifest = str(manifest) if manifest else None
    else:
        b.notes.append(
            "the instance cell has no UT at paper scale unless --retrain or --ut-instances PATH "
            "(a model retrained without the split's forget images)"
        )


def _setup_class(b: _Builder) -> None:
    """The class split, the inpainting BEFORE and its UT without the class (cpu scale)."""
    opts, split = b.opts, f"class-{FORGET_CLASS}"
    b.splits[split] = SplitSpec(split, "class", [FORGET_CLASS], "inpaint")
    if opts.retrain:
        side = "null" if opts.test_max_side is None else opts.test_max_side  # None: full size
        inpaint = [*CLASS_OVERRIDES, f"data.test_max_side={side}"]
        inpaint += list(opts.train_overrides)
        for name, label, train_split in (
            ("class/before-inpaint", f"BEFORE ({', '.join(CLASS_TASKS)})", None),
            (f"class/ut-inpaint-no-{FORGET_CLASS}", f"UT (no {FORGET_CLASS})", split),
        ):
            b.train(name, label, table="class", overrides=inpaint, train_split=train_split)
        b.models["inpaint-before"] = "cell:class/before-inpaint"
        b.models["inpaint-ut"] = f"cell:class/ut-inpaint-no-{FORGET_CLASS}"
    else:
        b.models["inpaint-before"] = "shipped:inpaint-before"
        b.models["inpaint-ut"] = f"shipped:inpaint-ut-{FORGET_CLASS}"
        # The shipped UT left out exactly this split's images.
        manifest = shipped_split(f"inpaint-ut-{FORGET_CLASS}")
        b.splits[split].manifest = str(manifest) if manifest else None


def build_plan(opts: ReproduceOptions) -> Plan:
    """The experiment grid of ``opts.scale`` (nothing is checked or run yet).

    Example:
        >>> plan = build_plan(ReproduceOptions(scale="paper", out="/tmp/p"))
        >>> plan.cell("main/dehaze-collapse").epochs
        2.0
    """
    if opts.scale not in SCALES:
        raise ReproduceError(f"unknown --scale {opts.scale!r}; valid choices: {', '.join(SCALES)}")
    b = _Builder(opts)
    _setup_models(b)
    if opts.seeds < 1:
        raise ReproduceError(f"--seeds must be >= 1, got {opts.seeds}")
    for block in PER_TYPE_BLOCKS:
        for t in FORGET_TYPES:
            for row in block:
                b.add(row, t)
    for row in method_rows():
        b.add(row, "dehaze")
    _setup_instances(b)
    b.add(INSTANCE_ROW, None)
    if b.paper:
        b.notes.append(
            "class cells are cpu-scale only: PromptIR's data has no content classes and the "
            "published model is not trained on inpainting"
        )
    else:
        _setup_class(b)
        b.add(CLASS_ROW, None)
    out = Path(opts.out or f"runs/reproduce-{opts.scale}")
    return Plan(opts.scale, out, b.cells, b.models, b.splits, opts, b.notes)
