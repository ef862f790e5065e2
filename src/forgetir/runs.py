"""An unlearning run folder: its layout, the records it points to, and its verification.

``forgetir unlearn`` writes the folder, ``forgetir verify`` (re)computes its proof of
forgetting and ``forgetir report`` renders it. Layout::

    run.json            what was run: method, hyperparameters, and {path, sha256} records of
                        the parent (BEFORE), the UT model and the split manifest
    model.safetensors   the unlearned weights, with their model.json sidecar
    log.csv             the unlearning loss curve
    split.json          the split manifest (ids, paths and SHA-256 of the data; no pixels)
    quality.json        PSNR/SSIM of degraded input / BEFORE / unlearned / UT per task
    verify.json         every verification figure (:mod:`forgetir.verify`)
    grids/*.png         output grids

Paths recorded in ``run.json`` are looked up as written, then inside the run folder, so a
folder that was moved or copied elsewhere still verifies; every model it loads must match the
SHA-256 recorded when the run was made.

Example:
    $ forgetir verify runs/demo --relearn-steps 40
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from torch import nn

from forgetir.atomic import atomic_json
from forgetir.errors import InputFileError, IntegrityError, InvalidInputError, MissingInputError

RUN_JSON, QUALITY_JSON, VERIFY_JSON = "run.json", "quality.json", "verify.json"


def read_json(run_dir: Path, name: str) -> Any:
    """``run_dir/name`` parsed, with an error naming the file when it is not JSON."""
    path = run_dir / name
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputFileError(f"{path} is not valid JSON: {exc}") from None
    except OSError as exc:
        raise InputFileError(f"cannot read {path}: {exc.strerror or exc}") from None


def resolve(run_dir: Path, p: str | None) -> Path | None:
    """A path recorded in ``run.json``: as written, else inside ``run_dir`` (None if absent).

    Example:
        >>> resolve(Path("."), None) is None
        True
    """
    if not p:
        return None
    path = Path(p).expanduser()
    for cand in (path, run_dir / path, run_dir / path.name):
        if cand.exists():
            return cand
    return None


def hash_check(run_dir: Path, record: Any) -> dict[str, Any] | None:
    """``{"path", "sha256", "check"}`` for a ``{"path", "sha256"}`` record, re-hashed."""
    from forgetir.checkpoint import WEIGHTS_NAME, sha256_file

    if not isinstance(record, Mapping):
        return None
    out = {"path": record.get("path"), "sha256": record.get("sha256")}
    found = resolve(run_dir, record.get("path"))
    if found is None:
        out["check"] = "file not found here: hash not re-checked"
        return out
    try:
        actual = sha256_file(found / WEIGHTS_NAME if found.is_dir() else found)
    except (OSError, ValueError) as exc:
        out["check"] = f"could not re-check ({exc})"
        return out
    out["check"] = "match" if actual == record.get("sha256") else f"MISMATCH (file: {actual})"
    return out


def _checked_model(
    run_dir: Path, record: Mapping[str, Any], what: str, arch: str | None
) -> nn.Module:
    """Load the model of a run.json record, refusing one whose SHA-256 differs."""
    from forgetir.shipped import resolve_checkpoint
    from forgetir.unlearn import load_eval_model

    spec = str(record.get("path"))
    path = resolve(run_dir, spec) or resolve_checkpoint(spec)
    check = hash_check(run_dir, {"path": str(path), "sha256": record.get("sha256")})
    if check["check"] != "match":
        fix = (
            "pass --ut PATH to compare with another retrained model"
            if what == "UT"
            else "a run is verified against the very parent it was unlearned from"
        )
        raise IntegrityError(
            f"{what} checkpoint {spec} recorded in {run_dir / RUN_JSON}: {check['check']}; {fix}"
        )
    return load_eval_model(path, arch)


def verify_model(
    model: nn.Module,
    before: nn.Module,
    ut_model: nn.Module | None,
    datasets: dict[str, Any],
    test_sets: dict[str, Any],
    run: Mapping[str, Any],
    opts: Any,
    rows: dict[str, Any],
    out: Path,
) -> dict[str, Any]:
    """Every verification figure of one unlearned model; written to ``out/verify.json``.

    ``datasets``: the split's ``forget``/``retain``(/``test``) training datasets (relearning
    samples; the membership attack of an instance split). ``opts``: the run's
    :class:`~forgetir.unlearn.UnlearnOptions`.
    """
    from forgetir.verify import pairs_from_dataset, verify_run, write_verification

    parent_meta = getattr(before, "forgetir_meta", {}) or {}
    cost = {
        "unlearn_steps": run["steps"],
        "unlearn_seconds": run["wall_time_s"],
        "train_steps": parent_meta.get("step") or parent_meta.get("steps"),
        "train_seconds": parent_meta.get("wall_time"),
        "unlearn_batch": opts.batch_size,
        "train_batch": ((parent_meta.get("config") or {}).get("train") or {}).get("batch_size"),
    }
    membership = None
    if "test" in datasets and run["split"]["kind"] == "instances":
        n = 16
        membership = {
            "members": pairs_from_dataset(datasets["retain"], range(n)),
            "nonmembers": pairs_from_dataset(datasets["test"], range(n)),
            "forgotten": pairs_from_dataset(
                datasets["forget"], range(min(n, len(datasets["forget"].source)))
            ),
        }
    result = verify_run(
        model,
        before,
        ut_model,
        run["forget_tasks"],
        run["retain_tasks"],
        test_sets,
        opts.protocol,
        pairs_from_dataset(datasets["forget"], range(4)),
        relearn_steps=opts.relearn_steps,
        ain_max_steps=opts.ain_max_steps if ut_model is not None else 0,
        eval_every=opts.verify_eval_every,
        membership=membership,
        cost_info=cost,
        relearn_description=f"4 forget-set training patches ({opts.patch_size}x{opts.patch_size})",
        seed=opts.seed,
        rows=rows,
    )
    write_verification(out / VERIFY_JSON, result)
    return result


def verify_folder(
    run_dir: str | Path,
    *,
    ut: str | None = None,
    arch: str | None = None,
    relearn_steps: int | None = None,
    ain_max_steps: int | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> dict[str, Any]:
    """(Re)compute ``verify.json`` of an unlearning run folder; return the verification.

    ``log`` receives a line as each stage starts (the command prints them).

    The unlearned model, BEFORE and UT are loaded from the records in ``run.json`` (each
    SHA-256 re-checked) and the split from its manifest (every file's hash re-checked).
    ``ut``: another UT checkpoint to compare against (a run made without one, or a better
    retrained model); its quality row is added to ``quality.json`` and ``run.json`` records it.
    """
    from forgetir.checkpoint import sha256_file
    from forgetir.data.splits import build_split_datasets, load_manifest
    from forgetir.evaluate import evaluate_model, write_results
    from forgetir.shipped import resolve_checkpoint
    from forgetir.unlearn import evaluation_sets, load_eval_model, options_from_dict

    run_dir = Path(run_dir)
    if not (run_dir / RUN_JSON).is_file():
        raise MissingInputError(
            f"{run_dir} is not an unlearning run folder (no {RUN_JSON}); make one with "
            "`forgetir unlearn` or `forgetir demo`"
        )
    for option, what, value in (
        ("--relearn-steps", "relearn steps", relearn_steps),
        ("--ain-max-steps", "anamnesis steps", ain_max_steps),
    ):
        if value is not None and value < 0:  # refused before any work
            raise InvalidInputError(f"{option}={value}: {what} must be >= 0 (valid: >= 0)")
    run = read_json(run_dir, RUN_JSON)
    opts = options_from_dict(run.get("options"), str(run_dir / RUN_JSON))
    if relearn_steps is not None:
        opts.relearn_steps = relearn_steps
    if ain_max_steps is not None:
        opts.ain_max_steps = ain_max_steps
    log(f"{run_dir}: loading the unlearned model, BEFORE and UT (SHA-256 checked)")
    model = load_eval_model(run_dir / "model.safetensors")  # its own sidecar hash is checked
    before = _checked_model(run_dir, run["parent"], "BEFORE", arch)
    if ut is not None:
        path = resolve_checkpoint(ut)
        ut_model = load_eval_model(path, arch)
        run["ut"] = {"path": str(path), "sha256": sha256_file(path)}
    elif run.get("ut"):
        ut_model = _checked_model(run_dir, run["ut"], "UT", arch)
    else:
        ut_model = None
    manifest_path = resolve(run_dir, run["split"]["manifest"]["path"])
    if manifest_path is None:
        raise MissingInputError(
            f"the split manifest {run['split']['manifest']['path']} of {run_dir} is missing"
        )
    log(f"re-hashing the split's data ({manifest_path})")
    manifest = load_manifest(manifest_path, verify=True)
    datasets = build_split_datasets(manifest, opts.patch_size, seed=opts.seed)
    test_sets = evaluation_sets(manifest, datasets, opts)
    quality = read_json(run_dir, QUALITY_JSON)
    rows = dict(quality["rows"])
    new_ut_row = ut_model is not None and (ut is not None or "UT" not in rows)
    if new_ut_row:
        rows["UT"] = evaluate_model(ut_model, test_sets, opts.protocol)
    log(
        f"relearning ({opts.relearn_steps} steps), anamnesis index (up to {opts.ain_max_steps} "
        "steps per model), output gap" + (", membership attack" if "test" in datasets else "")
    )
    result = verify_model(model, before, ut_model, datasets, test_sets, run, opts, rows, run_dir)
    # Only now, with verify.json written, do quality.json and run.json take the new UT: a
    # failure above leaves the folder as it was.
    if new_ut_row:
        write_results(run_dir / QUALITY_JSON, rows, quality["protocol"], quality["test_set"])
    run["verify"] = VERIFY_JSON
    run["verified"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    atomic_json(run_dir / RUN_JSON, run, default=str)
    return result


# ------------------------------------------------------------------------------ command line


def add_verify_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``forgetir verify``."""
    parser.add_argument("run_dir", help="an unlearning run folder (forgetir unlearn / demo)")
    parser.add_argument(
        "--ut", help="compare against this UT checkpoint instead of the run's own (if any)"
    )
    parser.add_argument("--arch", help="architecture of published .ckpt checkpoints")
    parser.add_argument("--relearn-steps", type=int, help="fine-tuning steps of the relearn test")
    parser.add_argument(
        "--ain-max-steps", type=int, help="most fine-tuning steps the anamnesis index may take"
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: free cores)")


def verify_command(args: argparse.Namespace) -> int:
    from forgetir.verify import summarize

    result = verify_folder(
        args.run_dir,
        ut=args.ut,
        arch=args.arch,
        relearn_steps=args.relearn_steps,
        ain_max_steps=args.ain_max_steps,
        log=lambda message: print(f"forgetir verify: {message}", flush=True),
    )
    print(summarize(result))
    print(f"wrote {Path(args.run_dir) / VERIFY_JSON}; `forgetir report {args.run_dir}` renders it")
    return 0
