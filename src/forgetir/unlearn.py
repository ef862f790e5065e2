"""``forgetir unlearn``: run an unlearning method on a checkpoint and a split, then evaluate.

The run folder follows the layout :mod:`forgetir.report` reads (``run.json``, ``model.*``,
``log.csv``, ``quality.json``, ``verify.json``, ``split.json``, ``grids/``).

The forget and retain training data come from the parent checkpoint's own training
configuration (its sidecar), so a degradation-type split of ``shipped:before`` forgets haze on
exactly the dead-leaves pool it was trained on. Guards, checked every ``guard_every`` steps on a
small held-out dead-leaves set (never the test photos): a retain budget (stop, and roll back to
the last state within budget, once a retained task drops more than ``retain_budget`` dB below
BEFORE) and a forget floor (stop once the forget PSNR reaches ``forget_floor`` dB, or, for the
``retrain-like`` target, once it is within 0.1 dB of the degraded input's).

Example:
    >>> opts = UnlearnOptions(steps=2, batch_size=2, patch_size=32, verify=False)
    >>> opts.method
    'accurate-forgetting'
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from forgetir.config import (
    DataConfig,
    OptimConfig,
    TrainConfig,
    check_fields,
    from_dict,
    parse_override,
)
from forgetir.errors import InvalidInputError, RunExistsError
from forgetir.options import UnlearnOptions, option_name
from forgetir.provenance import software_versions, utc_now
from forgetir.records import FileRecord, ModelMeta, RunRecord, SplitRecord
from forgetir.runs import GRIDS, MODEL, QUALITY_JSON, RUN_JSON, SPLIT_JSON, VERIFY_JSON, RunFolder
from forgetir.shipped import resolve_checkpoint, ut_name_for
from forgetir.testbed import (
    evaluation_sets,
    load_eval_model,
    model_meta,
    parent_data_config,
    split_set_names,
)
from forgetir.verify import summarize, verify_model

INPUT_ROW = "input"


def check_options(opts: UnlearnOptions) -> UnlearnOptions:
    """Refuse, before any work, options out of range or not finite (the valid range in the
    message), an unknown method, target, protocol or test set, and method hyperparameters the
    method does not take or that are out of its range."""
    from forgetir.data.testsets import TEST_SOURCES
    from forgetir.methods import get_method
    from forgetir.metrics import PROTOCOLS

    check_fields(opts, option_name)
    for name, value, valid in (
        ("--protocol", opts.protocol, PROTOCOLS),
        ("--test-set", opts.test_set, TEST_SOURCES),
    ):
        if value not in valid:
            raise InvalidInputError(f"{name}: invalid value {value!r}; valid: {', '.join(valid)}")
    if opts.clean_source not in (None, "deadleaves") and not Path(opts.clean_source).is_dir():
        raise InvalidInputError(
            f"--clean-source {opts.clean_source!r}: not 'deadleaves' and not a folder of images"
        )
    method = get_method(opts.method)
    method.check_target(opts.target)
    method.parse_config(opts.hparams)
    return opts


def clean_source_images(source: str, data: DataConfig, seed: int = 0) -> Any:
    """Clean images for unlearning without the training data (``--clean-source``).

    ``"deadleaves"``: a fresh dead-leaves pool (``data.pool_size`` images, pool seed
    ``data.pool_seed + 1_000_003 + seed``, so never the pool BEFORE was trained on); anything
    else: a folder of the user's images. Every task is then synthesised on these images.

    Example:
        >>> clean_source_images("deadleaves", DataConfig(pool_size=2, image_size=32)).ids
        ['dl-000000', 'dl-000001']
    """
    from forgetir.data.folders import image_folder
    from forgetir.data.pool import DeadLeavesPool

    if source == "deadleaves":
        pool_seed = data.pool_seed + 1_000_003 + seed
        return DeadLeavesPool(data.pool_size, data.image_size, pool_seed, data.content_classes)
    if not Path(source).is_dir():
        raise InvalidInputError(
            f"--clean-source {source!r}: not 'deadleaves' and not a folder of images"
        )
    return image_folder(source)


def _guard_sets(tasks: list[str], seed: int) -> dict[str, Any]:
    from forgetir.data.testsets import build_test_sets

    # Held-out dead-leaves images (the test namespace): cheap, and not the reported test set.
    return build_test_sets("deadleaves", tasks, None, None, seed=seed + 99, n=6, size=64)


def _psnr_by_task(model: nn.Module, sets: dict[str, Any], protocol: str) -> dict[str, float]:
    from forgetir.evaluate import evaluate_model

    res = evaluate_model(model, sets, protocol, next(model.parameters()).device)
    return {t: float(m["psnr"]) for t, m in res.items()}


class Guard:
    """Retain budget and forget floor, evaluated on a held-out guard set every few steps."""

    def __init__(
        self,
        model: nn.Module,
        before: nn.Module,
        method: Any,
        forget_tasks: list[str],
        retain_tasks: list[str],
        opts: UnlearnOptions,
    ) -> None:
        from forgetir.evaluate import evaluate_degraded_input

        self.model, self.method, self.opts = model, method, opts
        self.forget_tasks, self.retain_tasks = forget_tasks, retain_tasks
        self.sets = _guard_sets(forget_tasks + retain_tasks, opts.seed)
        self.before = _psnr_by_task(before, self.sets, opts.protocol)
        inputs = evaluate_degraded_input(self.sets, opts.protocol)
        self.input_forget = _mean([inputs[t]["psnr"] for t in forget_tasks])
        self.good_state = copy.deepcopy(model.state_dict())
        self.good_step = 0
        self.reason: str | None = None
        self.history: list[dict[str, float]] = []

    def __call__(self, step: int, logs: dict[str, float]) -> bool:
        if step % self.opts.guard_every and step != self.opts.steps:
            return False
        was_training = self.model.training
        self.model.eval()
        psnr = _psnr_by_task(self.model, self.sets, self.opts.protocol)
        self.model.train(was_training)
        forget = _mean([psnr[t] for t in self.forget_tasks])
        drops = {t: self.before[t] - psnr[t] for t in self.retain_tasks}
        worst = max(drops.values(), default=0.0)
        self.history.append({"step": step, "forget_psnr": forget, "worst_retain_drop": worst})
        logs["guard/forget_psnr"], logs["guard/worst_retain_drop_db"] = forget, worst
        budget = self.opts.retain_budget
        if budget is not None and worst > budget:
            self.model.load_state_dict(self.good_state)
            self.reason = (
                f"retain budget: a retained task dropped {worst:.2f} dB > {budget} dB at step "
                f"{step}; rolled back to step {self.good_step}"
            )
            return True
        self.good_state, self.good_step = copy.deepcopy(self.model.state_dict()), step
        floor = self.opts.forget_floor
        if self.opts.target == "retrain-like" and floor is None:
            # Behaving like UT on a forgotten degradation means returning the input unchanged.
            floor = self.input_forget + 0.1
        if floor is not None and forget <= floor:
            self.reason = f"forget floor: forget PSNR {forget:.2f} dB <= {floor:.2f} dB at {step}"
            return True
        stop = self.method.should_stop({"forget_psnr": forget, **logs})
        if stop:
            self.reason = stop
            return True
        return False


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def _loader_pair(datasets: dict[str, Any], method: Any, batch: int, seed: int) -> Any:
    from forgetir.data.pipeline import make_train_loader

    def batches(start: int) -> Any:
        parts = []
        for name, needed in (("forget", method.needs_forget), ("retain", method.needs_retain)):
            if needed:
                parts.append(
                    (name, make_train_loader(datasets[name], batch, start_step=start, seed=seed))
                )
        iters = {name: iter(loader) for name, loader in parts}
        while True:
            try:
                yield {name: next(it) for name, it in iters.items()}
            except StopIteration:
                return

    return batches


def _split(
    parent_data: DataConfig, forget: list[str] | None, manifest_path: str | None, out: Path
) -> tuple[dict[str, Any], Path]:
    from forgetir.data.splits import load_manifest, make_split, save_manifest

    if manifest_path:
        manifest = load_manifest(manifest_path, verify=True)
    else:
        manifest = make_split(parent_data, "degradation", forget or [])
    return manifest, save_manifest(manifest, out / SPLIT_JSON)


def _check_split_fits_parent(
    manifest: dict[str, Any], parent: ModelMeta | None, where: str
) -> None:
    """The tasks a split forgets and retains must be tasks the parent was trained on."""
    from forgetir.data.pipeline import train_tasks
    from forgetir.data.splits import ManifestError

    trained = (parent.raw.get("tasks") if parent else None) or train_tasks(
        parent_data_config(parent)
    )
    for part in ("forget", "retain"):
        outside = [t for t in manifest[part].get("tasks") or [] if t not in trained]
        if outside:
            raise ManifestError(
                f"{where}: {part}.tasks names {', '.join(outside)}, which the parent model was "
                f"not trained on (its tasks: {', '.join(trained)})"
            )


def _tasks_of(manifest: dict[str, Any]) -> tuple[list[str], list[str]]:
    if manifest["kind"] == "degradation":
        return list(manifest["forget"]["tasks"]), list(manifest["retain"]["tasks"])
    return [], []


def _is_live(spec: Any) -> bool:
    """A model that becomes a checkpoint only inside the run: a live module or ``fresh:NAME``."""
    return isinstance(spec, nn.Module) or (isinstance(spec, str) and spec.startswith("fresh:"))


def _final_path(path: Path, work: Path, out: Path) -> str:
    """Where ``path`` will be once the run folder ``work`` has been moved to ``out``."""
    path = Path(path)
    return str(out / path.relative_to(work)) if path.is_relative_to(work) else str(path)


def check_run_folder(out: Path) -> None:
    """A new run needs a new (or empty) folder that can be written: refused before any work."""
    from forgetir.atomic import check_output_dir

    check_output_dir(out)
    if (out / RUN_JSON).exists():
        raise RunExistsError(f"--out {out} already holds an unlearning run; choose another --out")
    if out.is_dir() and any(out.iterdir()):
        raise RunExistsError(
            f"--out {out} is not empty ({', '.join(sorted(p.name for p in out.iterdir())[:5])}); "
            "a run goes into a new or empty folder: choose another --out"
        )


def run_unlearn(
    checkpoint: str | Path | nn.Module,
    out_dir: str | Path,
    opts: UnlearnOptions,
    *,
    forget: list[str] | None = None,
    split: str | None = None,
    ut: str | Path | nn.Module | None = None,
    arch: str | None = None,
    command: str = "",
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Unlearn ``forget`` (tasks) or a split manifest from ``checkpoint``; return run.json.

    ``checkpoint`` (and ``ut``) may also be a live ``nn.Module`` or ``"fresh:MODEL"``: it is
    saved into the run folder first (see :func:`forgetir.fresh.prepare_checkpoint`; ``data``
    names the data such a model is said to know).

    Everything is checked before any work (options, the split's source, checkpoints named,
    the output folder). The run is written into a hidden temporary folder beside ``out_dir``
    and moved into place only once complete: a run that fails leaves nothing behind.
    """
    import shutil
    import tempfile

    from forgetir.checkpoint import weights_file
    from forgetir.data.pipeline import resolve_tasks

    check_options(opts)
    if forget and split:
        raise InvalidInputError(
            f"give --forget TASK or --split MANIFEST, not both (got --forget {' '.join(forget)} "
            f"and --split {split})"
        )
    if not forget and not split:
        raise InvalidInputError("give --forget TASK (a degradation type) or --split MANIFEST.json")
    forget = resolve_tasks(forget, "--forget") if forget else None
    for spec in (checkpoint, ut, opts.mia_reference):
        if spec is not None and not _is_live(spec):
            weights_file(resolve_checkpoint(spec))  # a missing checkpoint fails now
    if split:
        from forgetir.data.splits import load_manifest

        load_manifest(split)  # malformed or contradictory: refused now (hashes come later)
    out = Path(out_dir)
    check_run_folder(out)
    place = out.absolute()  # "--out ." too has a name and a parent to build beside
    made = [p for p in (place, *place.parents) if not p.exists()]
    place.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{place.name}.partial-"
    for stale in place.parent.glob(prefix + "*"):  # left by a run that was killed
        shutil.rmtree(stale, ignore_errors=True)
    work = Path(tempfile.mkdtemp(dir=place.parent, prefix=prefix))
    try:
        run = _unlearn(checkpoint, out, work, opts, forget, split, ut, arch, command, data)
        (work / "resume.pt").unlink(missing_ok=True)  # unlearn has no --resume
        try:
            os.replace(work, place)  # onto a missing or empty folder: the run appears whole
        except OSError as e:
            raise RunExistsError(f"--out {out} was filled while the run went on ({e})") from e
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        for p in made[1:]:  # the parents this call created, deepest first, if left empty
            with contextlib.suppress(OSError):
                p.rmdir()
        raise
    if not opts.quiet:
        print(f"Saved {out}")
    return run


def _unlearn(
    checkpoint: str | Path | nn.Module,
    out: Path,
    work: Path,
    opts: UnlearnOptions,
    forget: list[str] | None,
    split: str | None,
    ut: str | Path | nn.Module | None,
    arch: str | None,
    command: str,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The run of :func:`run_unlearn`, written into ``work``; paths recorded name ``out``."""
    from forgetir.checkpoint import save_model, sha256_file, weights_file
    from forgetir.data.splits import build_split_datasets, manifest_sha256
    from forgetir.engine import Engine
    from forgetir.evaluate import (
        describe_test_sets,
        evaluate_degraded_input,
        evaluate_model,
        format_table,
        write_results,
    )
    from forgetir.fresh import prepare_checkpoint
    from forgetir.methods import create_method

    # A live nn.Module (forgetir.unlearn_model) or "fresh:MODEL" becomes a checkpoint in the run.
    checkpoint = prepare_checkpoint(checkpoint, work, opts.seed, data=data)
    ut = prepare_checkpoint(ut, work, opts.seed, "ut")
    parent_path = resolve_checkpoint(checkpoint)
    before = load_eval_model(checkpoint, arch)
    model = copy.deepcopy(before)
    parent_meta = model_meta(parent_path)
    parent_data = parent_data_config(parent_meta)
    parent_data.patch_size = opts.patch_size
    manifest, split_path = _split(parent_data, forget, split, work)
    _check_split_fits_parent(manifest, parent_meta, split or "the split")
    forget_tasks, retain_tasks = _tasks_of(manifest)
    sources = None
    if opts.clean_source is not None:
        sources = (clean_source_images(opts.clean_source, parent_data, opts.seed), {})
    datasets = build_split_datasets(manifest, opts.patch_size, seed=opts.seed, sources=sources)

    if ut is None and forget_tasks:
        ut = ut_name_for(forget_tasks) if str(checkpoint) == "shipped:before" else None
    # A published UT .ckpt needs --arch.
    ut_model = load_eval_model(ut, arch) if ut is not None else None

    g = torch.Generator().manual_seed(opts.seed)
    reference = ut_model if opts.target == "retrain-like" and ut_model is not None else None
    method = create_method(
        opts.method, model, before, opts.hparams, opts.target, generator=g, reference=reference
    )
    optim = from_dict(OptimConfig, {**method.default_optim, "schedule": "constant"}, "optim.")
    if opts.lr is not None:
        optim.lr = opts.lr
    train = TrainConfig(
        steps=opts.steps,
        batch_size=opts.batch_size,
        seed=opts.seed,
        ckpt_every=max(opts.steps, 1),
        log_every=max(1, min(10, opts.steps)),
        threads=opts.threads,
        tensorboard=False,
    )
    config = {"options": asdict(opts), "optim": asdict(optim), "method": method.describe()}
    engine = Engine(
        model,
        optim,
        train,
        work,
        params=method.trainable_parameters(),
        config=config,
        quiet=opts.quiet,
        label=f"unlearn ({opts.method})",
    )
    guard = None
    if forget_tasks and (
        opts.retain_budget is not None
        or opts.forget_floor is not None
        or opts.target == "retrain-like"
    ):
        guard = Guard(model, before, method, forget_tasks, retain_tasks, opts)
    batches = _loader_pair(datasets, method, engine.local_batch_size(), opts.seed)
    first = next(iter(batches(0)))
    method.prepare(first.get("forget"), first.get("retain"))

    def loss_fn(batch: dict[str, Any], step: int, model: nn.Module) -> dict[str, Any]:
        return method.loss(batch.get("forget"), batch.get("retain"), model=model)

    t0 = time.time()
    result = engine.fit(loss_fn, batches, on_step_end=guard)
    wall = time.time() - t0
    engine.close()
    model.eval()
    stopped = guard.reason if guard and guard.reason else result.stopped_early

    # Quality: BEFORE / unlearned / UT with the degraded input as first row.
    test_sets = evaluation_sets(manifest, datasets, opts)
    if not forget_tasks:  # class/instance split: its forget-test and retain-test sets
        forget_tasks, retain_tasks = split_set_names(test_sets)
    source = describe_test_sets(test_sets)
    # Per image, so that the verdict's intervals need no second pass over the test sets.
    rows = {INPUT_ROW: evaluate_degraded_input(test_sets, opts.protocol, per_image=True)}
    rows["BEFORE"] = evaluate_model(before, test_sets, opts.protocol, per_image=True)
    rows["unlearned"] = evaluate_model(model, test_sets, opts.protocol, per_image=True)
    if ut_model is not None:
        rows["UT"] = evaluate_model(ut_model, test_sets, opts.protocol, per_image=True)
    write_results(work / QUALITY_JSON, rows, opts.protocol, source)

    folder = RunFolder(work)
    ut_path = resolve_checkpoint(ut) if ut is not None else None
    save_model(
        model,
        work / MODEL,
        parent=parent_path,
        command=command,
        metrics={"protocol": opts.protocol, "test_set": source, "rows": rows},
        method=opts.method,
        target=opts.target,
        hyperparameters=method.describe(),
        split_manifest_sha256=manifest_sha256(split_path),
        steps=result.step,
        wall_time=round(wall, 2),
    )
    # Every file the verdict rests on, hashed now: verify and report refuse any that changes.
    # Paths are recorded where they will be once the run is moved into place.
    files = {**folder.own_files(), "test_set": folder.write_testset_manifest(test_sets)}
    mia_path = weights_file(resolve_checkpoint(opts.mia_reference)) if opts.mia_reference else None
    if mia_path is not None:
        files["mia_reference"] = FileRecord(_final_path(mia_path, work, out), sha256_file(mia_path))
    usage = _expert_usage(before, model, ut_model, test_sets)
    run = RunRecord(
        method=opts.method,
        summary=method.summary,
        target=opts.target,
        hyperparameters=method.describe(),
        optimizer=asdict(optim),
        options=asdict(opts),
        parent=FileRecord(_final_path(parent_path, work, out), sha256_file(parent_path)),
        ut=FileRecord(_final_path(ut_path, work, out), sha256_file(ut_path))
        if ut_path is not None
        else None,
        split=SplitRecord(
            kind=manifest["kind"],
            forget=manifest["forget"].get("tasks") or manifest["forget"].get("entries"),
            retain=manifest["retain"].get("tasks") or manifest["retain"].get("entries"),
            manifest=FileRecord(_final_path(split_path, work, out), manifest_sha256(split_path)),
        ),
        files=files,
        forget_tasks=tuple(forget_tasks),
        retain_tasks=tuple(retain_tasks),
        steps=result.step,
        wall_time_s=round(wall, 2),
        stopped_early=stopped,
        guard=guard.history if guard else None,
        command=command,
        seed=opts.seed,
        software=software_versions(),
        created=utc_now(),
        extra={"expert_usage": usage} if usage else {},
    )
    verified = None
    if opts.verify:
        mia = load_eval_model(mia_path, arch) if mia_path is not None else None
        verified = verify_model(
            model, before, ut_model, datasets, test_sets, run, rows, folder, parent_meta,
            manifest=manifest, mia_reference=mia,
        )  # fmt: skip
        run = replace(run, verify=VERIFY_JSON)
    folder.write_run(run)
    if opts.grids:
        from forgetir.figures import write_model_grid

        models = {"BEFORE": before, "unlearned": model}
        if ut_model is not None:
            models["UT"] = ut_model
        (work / GRIDS).mkdir(exist_ok=True)
        write_model_grid(work / GRIDS / "outputs.png", models, test_sets, list(run.forget_tasks))
    if not opts.quiet:
        print(format_table(rows, opts.protocol, source))
        if verified is not None:
            print(summarize(verified))
        note = f"; stopped early: {stopped}" if stopped else ""
        print(f"unlearned in {result.step} steps, {wall:.1f} s{note}.")
    return run.to_json()


def _expert_usage(
    before: nn.Module, model: nn.Module, ut: nn.Module | None, test_sets: dict[str, Any]
) -> dict[str, Any] | None:
    """Per model row and test set, the share of images each expert gets (mixture-of-experts
    models such as MoCE-IR; None for others): where forgetting moved the routing."""
    from forgetir.models.moceir import expert_usage

    rows = {"BEFORE": before, "unlearned": model, "UT": ut}
    usage = {k: expert_usage(m, test_sets) for k, m in rows.items() if m is not None}
    return {k: v for k, v in usage.items() if v is not None} or None


def run_unlearn_seeds(
    checkpoint: str | Path, out_dir: str | Path, opts: UnlearnOptions, seeds: int, **kwargs: Any
) -> dict[str, Any]:
    """:func:`run_unlearn` at seeds ``opts.seed, opts.seed + 1, ...`` (``seed-<s>/`` run folders
    under ``out_dir``), then ``seeds.json``/``seeds.md`` there: every figure as mean ± sd."""
    from forgetir.seeds import SEED_DIR, format_summary, write_seed_summary

    if seeds < 1:
        raise InvalidInputError(f"--seeds={seeds} is out of range; valid: >= 1")
    out = Path(out_dir)
    folders = []
    for s in range(opts.seed, opts.seed + seeds):
        folder = out / SEED_DIR.format(seed=s)
        run_unlearn(checkpoint, folder, replace(opts, seed=s), **kwargs)
        folders.append(folder)
    summary = write_seed_summary(out, folders)
    if not opts.quiet:
        print(format_summary(summary))
    return summary


# ------------------------------------------------------------------------------ command line


# Each command-line option of UnlearnOptions, declared once: its argparse settings (the default
# comes from the dataclass). unlearn, demo and reproduce take the ones they offer from here
# with add_options, and options_from_args reads them back.
_CLI_OPTIONS: dict[str, dict[str, Any]] = {
    "method": {"help": "unlearning method, see `forgetir methods`"},
    "target": {"help": "what forgetting aims at: the paper's collapse, or behave like UT"},
    "steps": {"type": int, "help": "unlearning steps"},
    "batch_size": {"type": int, "help": "patches per step"},
    "patch_size": {"type": int, "help": "side of the training patches"},
    "lr": {"type": float, "help": "learning rate (default: the method's)"},
    "seed": {"type": int, "help": "seed of every random draw"},
    "threads": {"type": int, "help": "torch CPU threads (default: the cores free right now)"},
    "retain_budget": {"type": float, "help": "max dB a retained task may lose"},
    "forget_floor": {"type": float, "help": "stop at this forget PSNR (dB)"},
    "test_max_side": {"type": int, "help": "longest side of the test photos"},
    "relearn_steps": {"type": int, "help": "fine-tuning steps of the relearning test"},
    "ain_max_steps": {"type": int, "help": "most fine-tuning steps of the anamnesis index"},
    "quiet": {"action": "store_true", "help": "no progress bar or tables"},
    "mia_reference": {
        "metavar": "CHECKPOINT",
        "help": "a model that never saw the split's images (e.g. the parent of a memorising "
        "BEFORE): calibrates the per-example membership attack of an instance split "
        "(default: none, uncalibrated)",
    },
}


def add_options(
    parser: argparse.ArgumentParser, names: Sequence[str], **changes: dict[str, Any]
) -> None:
    """Add the options ``names`` (fields of :class:`UnlearnOptions`) to ``parser`` as declared
    in one place; ``changes`` adjusts a command's copy (``steps={"default": None}``)."""
    from forgetir.methods import TARGETS

    defaults = {f.name: f.default for f in dataclasses.fields(UnlearnOptions)}
    for name in names:
        kwargs = {**_CLI_OPTIONS[name], **changes.get(name, {})}
        if kwargs.get("action") != "store_true":
            kwargs.setdefault("default", defaults[name])
        if name == "target":
            kwargs.setdefault("choices", TARGETS)
        if kwargs.get("default") is not None and "action" not in kwargs:
            kwargs["help"] += f" (default: {kwargs['default']})"
        parser.add_argument(option_name(name), dest=name, **kwargs)


def options_from_args(args: argparse.Namespace, **fixed: Any) -> UnlearnOptions:
    """The :class:`UnlearnOptions` of a parsed command line: the options :func:`add_options`
    added, then ``fixed`` (fields the command sets itself)."""
    given = {name: getattr(args, name) for name in _CLI_OPTIONS if hasattr(args, name)}
    return UnlearnOptions(**{**given, **fixed})


def add_unlearn_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``forgetir unlearn``."""
    parser.add_argument(
        "checkpoint",
        nargs="?",
        help="model to unlearn from: shipped:before (default), a .safetensors with sidecar, "
        "a published .ckpt with --arch, or fresh:MODEL (a newly initialised registered model; "
        "the default with --model-module)",
    )
    parser.add_argument("--arch", help="architecture of a published .ckpt (e.g. promptir)")
    parser.add_argument(
        "--data",
        action="append",
        metavar="KEY=VALUE",
        help="data settings of a fresh model (fresh:MODEL, --model-module), e.g. pool_size=64",
    )
    parser.add_argument(
        "--model-module",
        metavar="FILE.py:FACTORY",
        help="register your own model: FACTORY() in FILE.py returns the nn.Module "
        "(name FILE.FACTORY; a .pth checkpoint of it then needs no --arch)",
    )
    parser.add_argument(
        "--forget", action="append", metavar="TASK", help="degradation type to forget"
    )
    parser.add_argument(
        "--split", help="a split manifest from `forgetir split` (not with --forget)"
    )
    parser.add_argument("--ut", help="UT model for the comparison (default: the shipped one)")
    add_options(
        parser,
        ("method", "target", "steps", "batch_size", "patch_size", "lr", "seed", "threads"),
    )
    add_options(parser, ("retain_budget", "forget_floor", "mia_reference"))
    parser.add_argument("--no-verify", action="store_true", help="skip relearning/AIN/MIA")
    parser.add_argument(
        "--seeds", type=int, default=1, help="run N seeds (seed-<s>/ folders) and report mean ± sd"
    )
    parser.add_argument(
        "--clean-source",
        metavar="deadleaves|FOLDER",
        help="data-free mode: synthesise forget/retain data on these clean images instead of "
        "the checkpoint's training data",
    )
    parser.add_argument("--out", help="run folder (default: runs/unlearn-<method>-<tasks>)")
    add_options(parser, ("quiet",))
    parser.add_argument(
        "hparams", nargs="*", metavar="KEY=VALUE", help="method hyperparameters, e.g. w_adv=0.5"
    )


def unlearn_command(args: argparse.Namespace) -> int:
    hparams = dict(parse_override(h) for h in args.hparams)
    opts = options_from_args(
        args, hparams=hparams, verify=not args.no_verify, clean_source=args.clean_source
    )
    what = "-".join(args.forget or [Path(args.split or "split").stem])
    out = args.out or f"runs/unlearn-{args.method}-{what}"
    checkpoint, arch = args.checkpoint or "shipped:before", args.arch
    if args.model_module:
        from forgetir.models.external import register_module_factory

        name = register_module_factory(args.model_module)
        checkpoint, arch = args.checkpoint or f"fresh:{name}", arch or name
    kwargs = {
        "forget": args.forget,
        "split": args.split,
        "ut": args.ut,
        "arch": arch,
        "command": " ".join(["forgetir", *sys.argv[1:]]),
        "data": dict(parse_override(d) for d in args.data) if args.data else None,
    }
    if args.seeds == 1:
        run_unlearn(checkpoint, out, opts, **kwargs)
    else:
        run_unlearn_seeds(checkpoint, out, opts, args.seeds, **kwargs)
    return 0
