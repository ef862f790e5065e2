"""The experiment grid of ``forgetir reproduce``: its settings, options, cell and plan types,
selection and listing (the cells themselves: :mod:`forgetir.reproduce.table`)."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forgetir.checkpoint.shipped import resolve_checkpoint
from forgetir.degradations import forget_types
from forgetir.errors import InvalidInputError
from forgetir.options import UnlearnOptions

SCALES = ("cpu", "paper")
FORGET_TYPES = forget_types()
MAIN_METHOD = "accurate-forgetting"
CONTROL_METHOD = "finetune"
# The cpu scale runs an unlearning run's own defaults (declared once, in UnlearnOptions).
_RUN = UnlearnOptions()
CPU_STEPS, CPU_BATCH, CPU_PATCH = _RUN.steps, _RUN.batch_size, _RUN.patch_size
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
# --ut-KIND PATH: a forget type, or "instances" (retrained without the instance split's images).
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
    relearn_steps: int = _RUN.relearn_steps
    # The grid's own preset, not a run default: every cell's AIN search stops at 40 steps
    # (a single run's, UnlearnOptions.ain_max_steps, at 100).
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


# ------------------------------------------------------------------------------ selection


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
    return resolve_checkpoint(plan.model_path(ref) or "")


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"
