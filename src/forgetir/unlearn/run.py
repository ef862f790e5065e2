"""``run_unlearn``: one unlearning run into a new folder, moved into place only once complete
(the steps: :mod:`forgetir.unlearn.steps`); ``run_unlearn_seeds``: the same at several seeds."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch.distributed as dist
from torch import nn

from forgetir.atomic import atomic_json
from forgetir.checkpoint import sha256_file, weights_file
from forgetir.checkpoint.shipped import resolve_checkpoint
from forgetir.data.pipeline import resolve_tasks
from forgetir.data.splits import load_manifest
from forgetir.errors import InvalidInputError, RunExistsError
from forgetir.options import UnlearnOptions
from forgetir.runs.folder import RUN_JSON
from forgetir.runs.lock import release, working_folder
from forgetir.runs.seeds import SEED_DIR, format_summary, write_seed_summary
from forgetir.runtime.process import DistInfo, init_distributed
from forgetir.unlearn.inputs import (
    check_options,
    check_run_folder,
    check_ut_is_not_parent,
    is_live,
)
from forgetir.unlearn.steps import unlearn_into

# What every seed of a --seeds run shares (see run_unlearn_seeds).
SEEDS_PLAN = "seeds-plan.json"


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
    saved into the run folder first (see :func:`forgetir.runs.fresh.prepare_checkpoint`; ``data``
    names the data such a model is said to know).

    Everything is checked before any work (options, the split's source, checkpoints named,
    the output folder). The run is written into a hidden temporary folder beside ``out_dir``
    and moved into place only once complete: a run that fails leaves nothing behind.

    Launched by ``torchrun``, the processes unlearn together (DDP: ``opts.batch_size`` is the
    global batch, and N processes give one process's weights) and share the test images of
    the quality tables; rank 0 alone then verifies and writes the folder, and the other ranks
    return ``{}``.
    """
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
        if spec is not None and not is_live(spec):
            weights_file(resolve_checkpoint(spec))  # a missing checkpoint fails now
    check_ut_is_not_parent(checkpoint, ut)
    if split:
        load_manifest(split)  # malformed or contradictory: refused now (hashes come later)
    out = Path(out_dir)
    check_run_folder(out)
    # Under torchrun every rank unlearns (DDP) and scores its share of the test images; only
    # rank 0 writes the run folder, the others work in a throwaway one (see unlearn_into).
    group = init_distributed()
    try:
        if not group.is_main:
            with tempfile.TemporaryDirectory(prefix=".forgetir-rank") as scratch:
                quiet = replace(opts, quiet=True)
                args = (checkpoint, out, Path(scratch), quiet, forget, split, ut, arch, command)
                return unlearn_into(*args, data, group)
        return _unlearn_in_place(
            checkpoint, out, opts, forget, split, ut, arch, command, data, group
        )  # fmt: skip
    finally:
        if group.created_group and dist.is_initialized():  # left early by a failure
            dist.destroy_process_group()


def _unlearn_in_place(
    checkpoint: Any,
    out: Path,
    opts: UnlearnOptions,
    forget: list[str] | None,
    split: str | None,
    ut: Any,
    arch: str | None,
    command: str,
    data: dict[str, Any] | None,
    group: DistInfo,
) -> dict[str, Any]:
    """Rank 0's part of :func:`run_unlearn`: the run built in a locked working folder beside
    ``out`` and moved into place once whole."""
    place = out.absolute()  # "--out ." too has a name and a parent to build beside
    made = [p for p in (place, *place.parents) if not p.exists()]
    try:
        # Locked while the run works in it: a second run into the same --out is refused,
        # and only working folders of runs that died are cleaned (see forgetir.runs.lock).
        with working_folder(place) as work:
            try:
                run = unlearn_into(
                    checkpoint, out, work, opts, forget, split, ut, arch, command, data, group
                )
                (work / "resume.pt").unlink(missing_ok=True)  # unlearn has no --resume
                release(work)
                try:
                    os.replace(work, place)  # onto a missing or empty folder: appears whole
                except OSError as e:
                    raise RunExistsError(
                        f"--out {out} was filled while the run went on ({e})"
                    ) from e
            except BaseException:
                shutil.rmtree(work, ignore_errors=True)
                raise
    except BaseException:
        for p in made[1:]:  # the parents this call created, deepest first, if left empty
            with contextlib.suppress(OSError):
                p.rmdir()
        raise
    if not opts.quiet:
        print(f"Saved {out}")
    return run


def run_unlearn_seeds(
    checkpoint: str | Path, out_dir: str | Path, opts: UnlearnOptions, seeds: int, **kwargs: Any
) -> dict[str, Any]:
    """:func:`run_unlearn` at seeds ``opts.seed, opts.seed + 1, ...`` (``seed-<s>/`` run folders
    under ``out_dir``), then ``seeds.json``/``seeds.md`` there: every figure as mean ± sd.

    Resumable: ``seeds-plan.json`` records what the seeds run (options but the seed, the
    parent's and UT's SHA-256, the split); the same command again after an interrupt keeps the
    seeds already finished and runs the rest. Other settings into the same folder are refused,
    so seeds of two different runs are never summarised together."""
    if seeds < 1:
        raise InvalidInputError(f"--seeds={seeds} is out of range; valid: >= 1")
    if seeds > 1 and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise InvalidInputError(
            f"--seeds={seeds} under torchrun is not supported: launch one torchrun per seed "
            "(--seed S --out DIR/seed-S)"
        )
    out = Path(out_dir)
    plan = _seeds_plan(checkpoint, opts, seeds, kwargs)
    planned = _check_plan(out, plan)
    folders = []
    for s in range(opts.seed, opts.seed + seeds):
        folder = out / SEED_DIR.format(seed=s)
        if planned and _finished_seed(folder, s, plan):
            if not opts.quiet:
                print(f"{folder}: finished earlier with these settings, kept")
        else:
            run_unlearn(checkpoint, folder, replace(opts, seed=s), **kwargs)
        if plan is not None:  # from the first finished seed on
            atomic_json(out / SEEDS_PLAN, plan)
            planned = True
        folders.append(folder)
    summary = write_seed_summary(out, folders)
    if not opts.quiet:
        print(format_summary(summary))
    return summary


def _identity(spec: Any) -> str | None:
    """What a model argument is: its weights' SHA-256, or the spec of a model made in the run."""
    if spec is None or isinstance(spec, str) and is_live(spec):
        return spec
    return sha256_file(weights_file(resolve_checkpoint(spec)))


def _seeds_plan(
    checkpoint: Any, opts: UnlearnOptions, seeds: int, kwargs: dict[str, Any]
) -> dict[str, Any] | None:
    """What every seed of a ``--seeds`` run shares; None (not resumable) for live modules."""
    if any(isinstance(m, nn.Module) for m in (checkpoint, kwargs.get("ut"))):
        return None
    split = kwargs.get("split")
    plan = {
        "seeds": list(range(opts.seed, opts.seed + seeds)),
        "options": asdict(replace(opts, seed=0, quiet=False, threads=None)),
        "parent": _identity(checkpoint),
        "ut": _identity(kwargs.get("ut")),
        "forget": kwargs.get("forget"),
        "split": sha256_file(split) if split else None,
        "arch": kwargs.get("arch"),
        "data": kwargs.get("data"),
    }
    return json.loads(json.dumps(plan, sort_keys=True, default=str))


def _check_plan(out: Path, plan: dict[str, Any] | None) -> bool:
    """Whether ``out`` holds an earlier, interrupted run of this very plan; refuses another."""
    path = out / SEEDS_PLAN
    if plan is None or not path.is_file():
        return False
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise RunExistsError(
            f"--out {out}: {path} is unreadable ({e}); choose another --out"
        ) from e
    new, old = _flat(plan), _flat(old if isinstance(old, dict) else {})
    differ = [k for k in sorted({*new, *old}) if k != "seeds" and new.get(k) != old.get(k)]
    if not set(old.get("seeds") or [None]) <= set(new["seeds"]):
        differ.append("seeds")
    if differ:
        raise RunExistsError(
            f"--out {out} holds a --seeds run with other settings ({', '.join(differ)} differ): "
            "its seeds would be summarised with these; choose another --out"
        )
    return True


def _flat(plan: dict[str, Any]) -> dict[str, Any]:
    """A plan's options beside its other keys, so that a difference names the option."""
    return {**(plan.get("options") or {}), **{k: v for k, v in plan.items() if k != "options"}}


def _finished_seed(folder: Path, seed: int, plan: dict[str, Any] | None) -> bool:
    """A seed folder that holds a finished run of ``plan`` at ``seed`` (else refused)."""
    record = folder / RUN_JSON
    if not record.is_file():
        return False
    try:
        run = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        run = {}
    parent = (run.get("parent") or {}).get("sha256")
    hashed = plan is not None and len(plan["parent"] or "") == 64  # not a model made in the run
    if run.get("seed") != seed or (hashed and parent != plan["parent"]):
        raise RunExistsError(
            f"{folder} holds a run that is not seed {seed} of this --seeds run; move it away"
        )
    return True
