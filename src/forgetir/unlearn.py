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
import copy
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from forgetir.atomic import atomic_json
from forgetir.config import (
    ALL_TASKS,
    DataConfig,
    OptimConfig,
    TrainConfig,
    from_dict,
    load_config,
    parse_override,
)
from forgetir.shipped import resolve_checkpoint, ut_name_for

INPUT_ROW = "input"


@dataclass
class UnlearnOptions:
    """Everything ``forgetir unlearn`` takes besides the checkpoint and the split."""

    method: str = "accurate-forgetting"
    target: str = "collapse"  # collapse | retrain-like
    hparams: dict[str, Any] = field(default_factory=dict)  # method hyperparameters
    steps: int = 60
    batch_size: int = 8
    patch_size: int = 64
    lr: float | None = None  # None: the method's published learning rate
    seed: int = 0
    threads: int | None = None
    retain_budget: float | None = None  # dB a retained task may lose (held-out guard set)
    forget_floor: float | None = None  # stop once forget PSNR (guard set) is at or below this
    guard_every: int = 10
    protocol: str = "promptir"
    test_set: str = "photos"
    test_max_side: int | None = 256
    verify: bool = True
    relearn_steps: int = 20
    ain_max_steps: int = 100
    verify_eval_every: int = 5
    grids: bool = True
    quiet: bool = False
    # None: BEFORE's training data. "deadleaves" or a folder of images: data-free mode, every
    # task synthesised on these clean images (see clean_source_images).
    clean_source: str | None = None


def load_eval_model(spec: str | Path, arch: str | None = None) -> nn.Module:
    """A checkpoint (``shipped:NAME``, forgetir ``.safetensors`` or published ``.ckpt``) in
    eval mode."""
    from forgetir.checkpoint import load_model

    model = load_model(resolve_checkpoint(spec), arch=arch)
    model.eval()
    return model


def parent_data_config(model: nn.Module) -> DataConfig:
    """The data a checkpoint was trained on (its sidecar), else the ``cpu`` preset's."""
    meta = getattr(model, "forgetir_meta", {}) or {}
    data = (meta.get("config") or {}).get("data")
    if data:
        return from_dict(DataConfig, data, "data.")
    return load_config("cpu").data


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
        raise ValueError(f"--clean-source {source!r}: not 'deadleaves' and not a folder of images")
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
    elif forget:
        manifest = make_split(parent_data, "degradation", forget)
    else:
        raise ValueError("give --forget TASK (a degradation type) or --split MANIFEST.json")
    return manifest, save_manifest(manifest, out / "split.json")


def _tasks_of(manifest: dict[str, Any]) -> tuple[list[str], list[str]]:
    if manifest["kind"] == "degradation":
        return list(manifest["forget"]["tasks"]), list(manifest["retain"]["tasks"])
    return [], []


def evaluation_sets(
    manifest: dict[str, Any], datasets: dict[str, Any], opts: UnlearnOptions
) -> dict[str, Any]:
    """The test sets a run is scored on: every task's test set for a degradation split, else
    fixed patches of the forgotten and of retained training images."""
    if manifest["kind"] != "degradation":
        return _split_test_sets(datasets)
    from forgetir.data.testsets import build_test_sets

    # root: the promptir test set lives under the split's data root (paper scale).
    root = manifest["data"].get("root")
    return build_test_sets(opts.test_set, ALL_TASKS, opts.test_max_side, root)


def _split_test_sets(datasets: dict[str, Any], n: int = 16) -> dict[str, Any]:
    """For class/instance splits: forget-test = the forgotten images, retain-test = retained
    images (about ``n`` fixed patches of each, at least 3 per task), one set per part, or per
    part and task (``"forget:denoise_25"``) when the data has several tasks."""
    from forgetir.data.testsets import TestSet

    sets = {}
    for part in ("forget", "retain"):
        ds = datasets[part]
        tasks = list(ds.tasks)
        per_task = max(3, -(-n // len(tasks)))
        for k, task in enumerate(tasks):
            # Item i has task tasks[i % T]: items k, k+T, ... are this task's.
            idx = range(k, min(len(ds), k + per_task * len(tasks)), len(tasks))
            items = [ds[i] for i in idx]
            name = part if len(tasks) == 1 else f"{part}:{task}"
            sets[name] = TestSet(
                task,
                f"{len(items)} {part}-set training patches of the split ({task})",
                [str(it["image"]) for it in items],
                [it["degraded"][None] for it in items],
                [it["clean"][None] for it in items],
            )
    return sets


def split_set_names(test_sets: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The forget-test and retain-test set names of :func:`_split_test_sets`."""
    forget = [k for k in test_sets if k.split(":")[0] == "forget"]
    return forget, [k for k in test_sets if k.split(":")[0] == "retain"]


def run_unlearn(
    checkpoint: str | Path,
    out_dir: str | Path,
    opts: UnlearnOptions,
    *,
    forget: list[str] | None = None,
    split: str | None = None,
    ut: str | Path | None = None,
    arch: str | None = None,
    command: str = "",
) -> dict[str, Any]:
    """Unlearn ``forget`` (tasks) or a split manifest from ``checkpoint``; return run.json."""
    from forgetir.checkpoint import save_model, sha256_file
    from forgetir.data.splits import build_split_datasets, manifest_sha256
    from forgetir.engine import Engine
    from forgetir.evaluate import (
        describe_test_sets,
        evaluate_degraded_input,
        evaluate_model,
        format_table,
        write_results,
    )
    from forgetir.methods import create_method, get_method
    from forgetir.report import software_versions

    get_method(opts.method)  # unknown names fail before any work
    out = Path(out_dir)
    if (out / "run.json").exists():
        raise FileExistsError(f"{out} already holds an unlearning run; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    parent_path = resolve_checkpoint(checkpoint)
    before = load_eval_model(checkpoint, arch)
    model = copy.deepcopy(before)
    parent_data = parent_data_config(before)
    parent_data.patch_size = opts.patch_size
    if forget:
        from forgetir.data.pipeline import resolve_tasks

        forget = resolve_tasks(forget)
    manifest, split_path = _split(parent_data, forget, split, out)
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
        out,
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
    rows = {INPUT_ROW: evaluate_degraded_input(test_sets, opts.protocol)}
    rows["BEFORE"] = evaluate_model(before, test_sets, opts.protocol)
    rows["unlearned"] = evaluate_model(model, test_sets, opts.protocol)
    if ut_model is not None:
        rows["UT"] = evaluate_model(ut_model, test_sets, opts.protocol)
    write_results(out / "quality.json", rows, opts.protocol, source)

    run = {
        "method": opts.method,
        "summary": method.summary,
        "target": opts.target,
        "hyperparameters": method.describe(),
        "optimizer": asdict(optim),
        "options": asdict(opts),
        "parent": {"path": str(parent_path), "sha256": sha256_file(parent_path)},
        "ut": {"path": str(resolve_checkpoint(ut)), "sha256": sha256_file(resolve_checkpoint(ut))}
        if ut is not None
        else None,
        "split": {
            "kind": manifest["kind"],
            "forget": manifest["forget"].get("tasks") or manifest["forget"].get("entries"),
            "retain": manifest["retain"].get("tasks") or manifest["retain"].get("entries"),
            "manifest": {"path": str(split_path), "sha256": manifest_sha256(split_path)},
        },
        "forget_tasks": forget_tasks,
        "retain_tasks": retain_tasks,
        "steps": result.step,
        "wall_time_s": round(wall, 2),
        "stopped_early": stopped,
        "guard": guard.history if guard else None,
        "command": command,
        "seed": opts.seed,
        "software": software_versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    save_model(
        model,
        out / "model.safetensors",
        parent=parent_path,
        command=command,
        metrics={"protocol": opts.protocol, "test_set": source, "rows": rows},
        method=opts.method,
        target=opts.target,
        hyperparameters=method.describe(),
        split_manifest_sha256=run["split"]["manifest"]["sha256"],
        steps=result.step,
        wall_time=round(wall, 2),
    )
    verified = None
    if opts.verify:
        from forgetir.runs import VERIFY_JSON, verify_model

        verified = verify_model(model, before, ut_model, datasets, test_sets, run, opts, rows, out)
        run["verify"] = VERIFY_JSON
    atomic_json(out / "run.json", run, default=str)
    if opts.grids:
        from forgetir.figures import write_model_grid

        models = {"BEFORE": before, "unlearned": model}
        if ut_model is not None:
            models["UT"] = ut_model
        (out / "grids").mkdir(exist_ok=True)
        write_model_grid(out / "grids" / "outputs.png", models, test_sets, run["forget_tasks"])
    if not opts.quiet:
        print(format_table(rows, opts.protocol, source))
        if verified is not None:
            from forgetir.verify import summarize

            print(summarize(verified))
        note = f"; stopped early: {stopped}" if stopped else ""
        print(f"unlearned in {result.step} steps, {wall:.1f} s{note}. Saved {out}")
    return run


def run_unlearn_seeds(
    checkpoint: str | Path, out_dir: str | Path, opts: UnlearnOptions, seeds: int, **kwargs: Any
) -> dict[str, Any]:
    """:func:`run_unlearn` at seeds ``opts.seed, opts.seed + 1, ...`` (``seed-<s>/`` run folders
    under ``out_dir``), then ``seeds.json``/``seeds.md`` there: every figure as mean ± sd."""
    from forgetir.seeds import SEED_DIR, format_summary, write_seed_summary

    if seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {seeds}")
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


def add_unlearn_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``forgetir unlearn``."""
    parser.add_argument(
        "checkpoint",
        nargs="?",
        default="shipped:before",
        help="model to unlearn from: shipped:before (default), a .safetensors with sidecar, "
        "or a published .ckpt with --arch",
    )
    parser.add_argument("--arch", help="architecture of a published .ckpt (e.g. promptir)")
    parser.add_argument(
        "--forget", action="append", metavar="TASK", help="degradation type to forget"
    )
    parser.add_argument("--split", help="a split manifest from `forgetir split`")
    parser.add_argument("--method", default="accurate-forgetting", help="see `forgetir methods`")
    parser.add_argument("--target", default="collapse", choices=("collapse", "retrain-like"))
    parser.add_argument("--ut", help="UT model for the comparison (default: the shipped one)")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--patch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, help="learning rate (default: the method's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--retain-budget", type=float, help="max dB a retained task may lose")
    parser.add_argument("--forget-floor", type=float, help="stop at this forget PSNR (dB)")
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
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument(
        "hparams", nargs="*", metavar="KEY=VALUE", help="method hyperparameters, e.g. w_adv=0.5"
    )


def unlearn_command(args: argparse.Namespace) -> int:
    hparams = dict(parse_override(h) for h in args.hparams)
    opts = UnlearnOptions(
        method=args.method,
        target=args.target,
        hparams=hparams,
        steps=args.steps,
        batch_size=args.batch_size,
        patch_size=args.patch_size,
        lr=args.lr,
        seed=args.seed,
        threads=args.threads,
        retain_budget=args.retain_budget,
        forget_floor=args.forget_floor,
        verify=not args.no_verify,
        quiet=args.quiet,
        clean_source=args.clean_source,
    )
    what = "-".join(args.forget or [Path(args.split or "split").stem])
    out = args.out or f"runs/unlearn-{args.method}-{what}"
    kwargs = {
        "forget": args.forget,
        "split": args.split,
        "ut": args.ut,
        "arch": args.arch,
        "command": " ".join(["forgetir", *sys.argv[1:]]),
    }
    if args.seeds == 1:
        run_unlearn(args.checkpoint, out, opts, **kwargs)
    else:
        run_unlearn_seeds(args.checkpoint, out, opts, args.seeds, **kwargs)
    return 0
