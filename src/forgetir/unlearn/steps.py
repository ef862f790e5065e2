"""The steps of an unlearning run, in order: train the method in the engine, score the models
on the test sets, save the weights and record the run, then verify, draw and print."""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from forgetir.checkpoint import save_model, sha256_file, weights_file
from forgetir.checkpoint.shipped import resolve_checkpoint
from forgetir.checks.reference import state_hash
from forgetir.checks.verify import summarize, verify_model
from forgetir.config import OptimConfig, TrainConfig, from_dict
from forgetir.data.splits import manifest_sha256
from forgetir.engine import Engine, FitResult
from forgetir.methods import create_method
from forgetir.methods.base import batch_shard
from forgetir.models.moceir import expert_usage
from forgetir.options import UnlearnOptions
from forgetir.provenance import software_versions, utc_now
from forgetir.records import FileRecord, RunRecord, SplitRecord
from forgetir.render.figures import write_model_grid
from forgetir.runs.folder import GRIDS, MODEL, QUALITY_JSON, VERIFY_JSON, RunFolder
from forgetir.runs.testbed import evaluation_sets, load_eval_model, split_set_names
from forgetir.runtime.process import DistInfo, leave_distributed
from forgetir.scoring.evaluate import (
    INPUT_ROW,
    describe_test_sets,
    evaluate_degraded_input,
    evaluate_model,
    format_table,
    write_results,
)
from forgetir.scoring.inference import (
    current_precision,
    current_tiling,
    precision_scope,
    reuse_outputs,
    shard_scope,
    tensors_digest,
    tiling_options,
    tiling_scope,
)
from forgetir.unlearn.guard import Guard, needs_guard
from forgetir.unlearn.inputs import Inputs, final_path, load_inputs, loader_pair


@dataclass
class Trained:
    """What the unlearning itself did."""

    method: Any
    optim: OptimConfig
    result: FitResult
    wall: float  # seconds
    guard: Guard | None
    stopped: str | None  # why it stopped early (a guard, the engine), if it did


@dataclass
class Scored:
    """The quality of the models on the test sets, per image."""

    test_sets: dict[str, Any]
    source: str  # the test sets, described
    rows: dict[str, Any]  # input / BEFORE / unlearned / UT
    forget_tasks: list[str]
    retain_tasks: list[str]
    first_outputs: dict[str, dict[str, Any]]  # model row -> task -> output of image 0


def train_method(inp: Inputs, opts: UnlearnOptions, work: Path) -> Trained:
    """Create the method on BEFORE's copy and run it in the :class:`Engine` (with the guards)."""
    g = torch.Generator().manual_seed(opts.seed)
    ut_model = inp.ut_model
    reference = ut_model if opts.target == "retrain-like" and ut_model is not None else None
    method = create_method(
        opts.method, inp.model, inp.before, opts.hparams, opts.target, generator=g,
        reference=reference,
    )  # fmt: skip
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
        precision=opts.precision,  # autocast; the weights and the optimiser stay fp32
    )
    config = {"options": asdict(opts), "optim": asdict(optim), "method": method.describe()}
    engine = Engine(
        inp.model,
        optim,
        train,
        work,
        params=method.trainable_parameters(),
        config=config,
        quiet=opts.quiet,
        label=f"unlearn ({opts.method})",
    )
    guard = None
    if needs_guard(opts, inp.forget_tasks):
        guard = Guard(inp.model, inp.before, method, inp.forget_tasks, inp.retain_tasks, opts)
    rank, world = engine.rank, engine.world_size
    batches = loader_pair(
        inp.datasets, method, engine.local_batch_size(), opts.seed, rank, world
    )  # fmt: skip
    # The method prepares (a saliency mask, say) on the first GLOBAL batch on every rank, as
    # one process does: the ranks then hold one mask, and N processes one process's weights.
    first = next(iter(loader_pair(inp.datasets, method, opts.batch_size, opts.seed)(0)))
    method.prepare(first.get("forget"), first.get("retain"))

    def loss_fn(batch: dict[str, Any], step: int, model: nn.Module) -> dict[str, Any]:
        return method.loss(batch.get("forget"), batch.get("retain"), model=model)

    # Under torchrun each rank's method draws its rows of the global batch's noise.
    with batch_shard(rank, world):
        t0 = time.time()
        result = engine.fit(loss_fn, batches, on_step_end=guard)
        wall = time.time() - t0
    engine.close()
    inp.model.eval()
    stopped = guard.reason if guard and guard.reason else result.stopped_early
    return Trained(method, optim, result, wall, guard, stopped)


def _evaluate(
    model: nn.Module,
    test_sets: dict[str, Any],
    protocol: str,
    first: dict[str, Any],
    quiet: bool | None = None,
) -> dict[str, Any]:
    return evaluate_model(
        model, test_sets, protocol, per_image=True, first_outputs=first, quiet=quiet
    )


# BEFORE's and UT's rows on a test set are the same for every run of one process (the demo runs
# two methods, the benchmark many): computed once, keyed by a digest of the weights and of the
# test sets' names and pixels, so that a rebuilt but identical test set shares them.
_ROWS: dict[tuple[Any, ...], tuple[dict[str, Any], dict[str, Any]]] = {}
_ROWS_KEPT = 8


def _test_sets_digest(test_sets: dict[str, Any]) -> str:
    return tensors_digest(
        [t for ts in test_sets.values() for t in (*ts.degraded, *ts.clean)],
        repr([(task, ts.source, list(ts.names)) for task, ts in test_sets.items()]).encode(),
    )


def _evaluate_once(
    model: nn.Module,
    test_sets: dict[str, Any],
    protocol: str,
    first: dict[str, Any],
    quiet: bool | None = None,
) -> dict[str, Any]:
    # The rows depend on how the images were restored: tiles and autocast are in the key.
    how = (current_tiling(), current_precision())
    key = (state_hash(model), _test_sets_digest(test_sets), protocol, how)
    if key not in _ROWS:
        outputs: dict[str, Any] = {}
        rows = _evaluate(model, test_sets, protocol, outputs, quiet)
        if len(_ROWS) >= _ROWS_KEPT:
            _ROWS.pop(next(iter(_ROWS)))
        _ROWS[key] = (rows, outputs)
    rows, outputs = _ROWS[key]
    first.update(outputs)
    return copy.deepcopy(rows)


def score(inp: Inputs, opts: UnlearnOptions, work: Path) -> Scored:
    """BEFORE / unlearned / UT on the test sets, with the degraded input as first row."""
    test_sets = evaluation_sets(inp.manifest, inp.datasets, opts)
    forget_tasks, retain_tasks = inp.forget_tasks, inp.retain_tasks
    if not forget_tasks:  # class/instance split: its forget-test and retain-test sets
        forget_tasks, retain_tasks = split_set_names(test_sets)
    source = describe_test_sets(test_sets)
    # Per image, so that the verdict's intervals need no second pass over the test sets.
    rows = {INPUT_ROW: evaluate_degraded_input(test_sets, opts.protocol, per_image=True)}
    models = {"BEFORE": inp.before, "unlearned": inp.model, "UT": inp.ut_model}
    first: dict[str, dict[str, Any]] = {}
    for row, model in models.items():
        if model is not None:
            first[row] = {}
            evaluate = _evaluate_once if row != "unlearned" else _evaluate
            # The options' quiet silences the progress; else the quiet scope decides.
            rows[row] = evaluate(model, test_sets, opts.protocol, first[row], opts.quiet or None)
    write_results(work / QUALITY_JSON, rows, opts.protocol, source)
    return Scored(test_sets, source, rows, forget_tasks, retain_tasks, first)


def _expert_usage(
    before: nn.Module, model: nn.Module, ut: nn.Module | None, test_sets: dict[str, Any]
) -> dict[str, Any] | None:
    """Per model row and test set, the share of images each expert gets (mixture-of-experts
    models such as MoCE-IR; None for others): where forgetting moved the routing."""
    rows = {"BEFORE": before, "unlearned": model, "UT": ut}
    usage = {k: expert_usage(m, test_sets) for k, m in rows.items() if m is not None}
    return {k: v for k, v in usage.items() if v is not None} or None


def _file(path: Path, work: Path, out: Path, sha256: str) -> FileRecord:
    return FileRecord(final_path(path, work, out), sha256)


def save_and_record(
    inp: Inputs,
    trained: Trained,
    scored: Scored,
    opts: UnlearnOptions,
    work: Path,
    out: Path,
    command: str,
) -> tuple[RunRecord, Path | None]:
    """Save the unlearned weights and hash every file the verdict rests on into a
    :class:`RunRecord` (paths where they will be once the run is moved to ``out``); also the
    MIA reference's weights file, if any."""
    method, result, wall, manifest = trained.method, trained.result, trained.wall, inp.manifest
    folder = RunFolder(work)
    ut_path = resolve_checkpoint(inp.ut) if inp.ut is not None else None
    save_model(
        inp.model,
        work / MODEL,
        parent=inp.parent_path,
        command=command,
        metrics={"protocol": opts.protocol, "test_set": scored.source, "rows": scored.rows},
        method=opts.method,
        target=opts.target,
        hyperparameters=method.describe(),
        split_manifest_sha256=manifest_sha256(inp.split_path),
        steps=result.step,
        wall_time=round(wall, 2),
    )
    # Every file the verdict rests on, hashed now: verify and report refuse any that changes.
    files = {**folder.own_files(), "test_set": folder.write_testset_manifest(scored.test_sets)}
    mia_path = weights_file(resolve_checkpoint(opts.mia_reference)) if opts.mia_reference else None
    if mia_path is not None:
        files["mia_reference"] = _file(mia_path, work, out, sha256_file(mia_path))
    usage = _expert_usage(inp.before, inp.model, inp.ut_model, scored.test_sets)
    run = RunRecord(
        method=opts.method,
        summary=method.summary,
        target=opts.target,
        hyperparameters=method.describe(),
        optimizer=asdict(trained.optim),
        options=asdict(opts),
        parent=_file(inp.parent_path, work, out, sha256_file(inp.parent_path)),
        ut=_file(ut_path, work, out, sha256_file(ut_path)) if ut_path is not None else None,
        split=SplitRecord(
            kind=manifest["kind"],
            forget=manifest["forget"].get("tasks") or manifest["forget"].get("entries"),
            retain=manifest["retain"].get("tasks") or manifest["retain"].get("entries"),
            manifest=_file(inp.split_path, work, out, manifest_sha256(inp.split_path)),
        ),
        files=files,
        forget_tasks=tuple(scored.forget_tasks),
        retain_tasks=tuple(scored.retain_tasks),
        steps=result.step,
        wall_time_s=round(wall, 2),
        stopped_early=trained.stopped,
        guard=trained.guard.history if trained.guard else None,
        command=command,
        seed=opts.seed,
        software=software_versions(),
        created=utc_now(),
        extra={"expert_usage": usage} if usage else {},
    )
    return run, mia_path


def verify_and_finish(
    inp: Inputs,
    trained: Trained,
    scored: Scored,
    run: RunRecord,
    mia_path: Path | None,
    opts: UnlearnOptions,
    work: Path,
    arch: str | None,
) -> RunRecord:
    """Verify (unless ``--no-verify``), write ``run.json``, draw the grids, print the tables."""
    folder = RunFolder(work)
    verified = None
    if opts.verify:
        mia = load_eval_model(mia_path, arch) if mia_path is not None else None
        verified = verify_model(
            inp.model, inp.before, inp.ut_model, inp.datasets, scored.test_sets, run,
            scored.rows, folder, inp.parent_meta, manifest=inp.manifest, mia_reference=mia,
        )  # fmt: skip
        run = replace(run, verify=VERIFY_JSON)
    folder.write_run(run)
    if opts.grids:
        models = {"BEFORE": inp.before, "unlearned": inp.model}
        if inp.ut_model is not None:
            models["UT"] = inp.ut_model
        (work / GRIDS).mkdir(exist_ok=True)
        grid = work / GRIDS / "outputs.png"
        write_model_grid(
            grid, models, scored.test_sets, list(run.forget_tasks), outputs=scored.first_outputs
        )
    if not opts.quiet:
        print(format_table(scored.rows, opts.protocol, scored.source))
        if verified is not None:
            print(summarize(verified))
        note = f"; stopped early: {trained.stopped}" if trained.stopped else ""
        print(f"unlearned in {trained.result.step} steps, {trained.wall:.1f} s{note}.")
    return run


def unlearn_into(
    checkpoint: Any,
    out: Path,
    work: Path,
    opts: UnlearnOptions,
    forget: list[str] | None,
    split: str | None,
    ut: Any,
    arch: str | None,
    command: str,
    data: dict[str, Any] | None = None,
    group: DistInfo | None = None,
) -> dict[str, Any]:
    """The run of :func:`~forgetir.unlearn.run_unlearn`, written into ``work``; paths recorded
    name ``out``. ``group``: torchrun's process group (made by ``run_unlearn``), left once the
    ranks have trained and scored together; a rank other than 0 then returns ``{}``."""
    group = group if group is not None else DistInfo()
    inp = load_inputs(checkpoint, ut, work, opts, forget, split, arch, data)
    models = [m for m in (inp.before, inp.ut_model) if m is not None]
    # --tile and --precision reach every whole-image restoration of the run: guard, scores,
    # checks, grids; each model restores each test image once for all of them.
    tiling = tiling_options(opts.tile, opts.tile_overlap, models)
    with tiling_scope(*tiling), precision_scope(opts.precision), reuse_outputs():
        trained = train_method(inp, opts, work)
        # Under torchrun the ranks share the test images of the scores, then part: the
        # checks, the records and the files are rank 0's alone.
        with shard_scope(group.rank, group.world_size):
            scored = score(inp, opts, work)
        leave_distributed(group)
        if not group.is_main:
            return {}
        run, mia_path = save_and_record(inp, trained, scored, opts, work, out, command)
        run = verify_and_finish(inp, trained, scored, run, mia_path, opts, work, arch)
    return run.to_json()
