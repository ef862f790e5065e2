"""Proof of forgetting: every figure measured against UT, the model retrained without the data.

The seed paper calls "lower PSNR than UT" more forgetting. The unlearning literature's gold
standard is the retrained model itself, so here each figure is read relative to UT (design
notes, section 8). Each figure is one check of :data:`forgetir.checks.CHECKS` (gaps, output
gap, relearning, anamnesis index, membership, cost); :func:`verify_run` runs those that apply
and decides the verdict (:mod:`forgetir.checks.verdict`), :func:`summarize` prints them, verdict
first. ``forgetir verify RUN_DIR`` (:func:`verify_folder`) re-checks a run folder's recorded
SHA-256s and recomputes its ``verify.json``.

The functions of the checks are re-exported here (``relearn``, ``anamnesis_index``,
``membership_inference``, ``output_gap``, ``gaps``, ``cost``).

Example:
    >>> import torch
    >>> from forgetir.data.testsets import build_test_sets
    >>> sets = build_test_sets("deadleaves", tasks=("denoise_25",), n=2, size=32)
    >>> output_gap(torch.nn.Identity(), torch.nn.Identity(), sets["denoise_25"])
    0.0
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from torch import nn

from forgetir.atomic import atomic_json
from forgetir.checkpoint import sha256_file, weights_file
from forgetir.checkpoint.shipped import resolve_checkpoint
from forgetir.checks import Context, all_figures, run_checks, summary_lines
from forgetir.checks.anamnesis import AIN_HIDDEN_BELOW, anamnesis_index
from forgetir.checks.base import BEFORE, L1_METRIC, UNLEARNED, UT
from forgetir.checks.cost import cost
from forgetir.checks.gaps import gaps
from forgetir.checks.membership import membership_inference
from forgetir.checks.output_gap import output_gap
from forgetir.checks.reference import ReferenceStore
from forgetir.checks.relearning import relearn
from forgetir.checks.verdict import verdict_for
from forgetir.data.splits import build_split_datasets, load_manifest
from forgetir.errors import InputFileError, InvalidInputError
from forgetir.membership.scenarios import split_candidates
from forgetir.metrics import describe_protocol
from forgetir.options import options_from_dict
from forgetir.provenance import utc_now
from forgetir.records import FileRecord, ModelMeta, RunRecord, VerificationRecord, json_safe
from forgetir.runs.folder import MODEL, RUN_JSON, VERIFY_JSON, RunFolder
from forgetir.runs.testbed import evaluation_sets, load_eval_model, model_meta
from forgetir.runtime.process import resolve_device
from forgetir.scoring.evaluate import INPUT_ROW, evaluate_degraded_input, evaluate_model
from forgetir.scoring.inference import (
    autocast_dtype,
    precision_scope,
    tiling_options,
    tiling_scope,
)

NO_UT = "none"  # `--ut none`: the UT-free verdict

__all__ = [
    "AIN_HIDDEN_BELOW",
    "BEFORE",
    "L1_METRIC",
    "UNLEARNED",
    "UT",
    "anamnesis_index",
    "cost",
    "gaps",
    "key_figures",
    "membership_inference",
    "output_gap",
    "pairs_from_dataset",
    "quality_table",
    "relearn",
    "summarize",
    "verify_folder",
    "verify_model",
    "verify_run",
    "write_verification",
]


def pairs_from_dataset(dataset: Any, indices: Sequence[int]) -> list[tuple[Any, Any]]:
    """(degraded, clean) pairs of items ``indices`` of a dataset whose items are dicts with
    ``degraded`` and ``clean`` (3,P,P) tensors, such as
    :class:`~forgetir.data.pipeline.TaskPatchDataset`.

    Example:
        >>> import torch
        >>> data = [{"degraded": torch.zeros(3, 8, 8), "clean": torch.ones(3, 8, 8)}]
        >>> pairs_from_dataset(data, [0])[0][0].shape
        torch.Size([1, 3, 8, 8])
    """
    return [
        (dataset[i]["degraded"].unsqueeze(0), dataset[i]["clean"].unsqueeze(0)) for i in indices
    ]


def quality_table(
    models: Mapping[str, nn.Module],
    test_sets: Mapping[str, Any],
    protocol: str = "promptir",
    include_input: bool = True,
    device: Any = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """``{label: {task: {"psnr", "ssim", "n", "images"}}}``; the degraded-input row first.

    Example:
        >>> import torch
        >>> from forgetir.data.testsets import build_test_sets
        >>> sets = build_test_sets("deadleaves", tasks=("dehaze",), n=2, size=32)
        >>> list(quality_table({"BEFORE": torch.nn.Identity()}, sets))
        ['input', 'BEFORE']
    """
    rows: dict[str, dict[str, dict[str, Any]]] = {}
    if include_input:
        rows[INPUT_ROW] = evaluate_degraded_input(test_sets, protocol, per_image=True)
    for label, model in models.items():
        rows[label] = evaluate_model(model, test_sets, protocol, device, per_image=True)
    return rows


def verify_run(
    unlearned: nn.Module,
    before: nn.Module,
    ut: nn.Module | None,
    forget_tasks: Sequence[str],
    retain_tasks: Sequence[str],
    test_sets: Mapping[str, Any],
    protocol: str = "promptir",
    relearn_samples: Any = None,
    *,
    rows: Mapping[str, Any] | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """The verdict and every verification figure for one unlearned model, as JSON-ready dict.

    ``rows``: the quality table of these models on ``test_sets`` if the caller already has it
    (labels ``BEFORE``, ``unlearned``, ``UT``), so that it is not computed twice.
    ``forget_tasks``/``retain_tasks`` name the test sets that are forget-test/retain-test.
    ``relearn_samples``: a few forget-train pairs for relearning and the anamnesis index
    (skipped when None; AIN also needs ``ut`` and ``ain_max_steps > 0``). ``settings``: the
    other fields of :class:`~forgetir.checks.base.Context` (``relearn_steps``,
    ``relearn_lr``, ``ain_max_steps``, ``ain_tol``, ``eval_every``, ``membership``,
    ``cost_info``, ``relearn_description``, ``membership_description``, ``seed``, ``quiet``,
    ``reference``).

    Example:
        >>> import torch
        >>> from forgetir.data.testsets import build_test_sets
        >>> sets = build_test_sets("deadleaves", tasks=("dehaze", "denoise_25"), n=2, size=32)
        >>> ident = torch.nn.Identity()
        >>> r = verify_run(ident, ident, ident, ["dehaze"], ["denoise_25"], sets)
        >>> r["output_gap"]["value"], r["gaps"]["tasks"]["dehaze"]["role"], r["verdict"]["verdict"]
        (0.0, 'forget', 'forgotten')
    """
    missing = [t for t in [*forget_tasks, *retain_tasks] if t not in test_sets]
    if missing:
        raise ValueError(
            f"verify_run: no test set for task(s) {', '.join(missing)}; test sets: "
            f"{', '.join(test_sets)}"
        )
    if not forget_tasks:
        raise ValueError("verify_run: forget_tasks is empty: name the forget-test task(s)")
    models = {BEFORE: before, UNLEARNED: unlearned, **({UT: ut} if ut is not None else {})}
    rows = dict(rows) if rows is not None else quality_table(models, test_sets, protocol)
    ctx = Context(
        unlearned, before, ut, forget_tasks, retain_tasks, test_sets, rows, protocol,
        relearn_samples, **settings,
    )  # fmt: skip
    checks = run_checks(ctx)
    record = VerificationRecord(
        protocol=protocol,
        protocol_description=describe_protocol(protocol),
        test_set=ctx.source,
        forget_tasks=tuple(forget_tasks),
        retain_tasks=tuple(retain_tasks),
        reference="UT (retrained without the forget data)" if ut is not None else None,
        verdict=verdict_for(ctx),
        quality={
            "metric": "PSNR (dB) / SSIM, averaged per image",
            "protocol": protocol,
            "data": ctx.source,
            "rows": rows,
        },
        checks=checks,
    )
    return record.to_json()


def key_figures(verify: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every figure of a :func:`verify_run` result as ``{figure, value, metric, data}``.

    Example:
        >>> figs = key_figures({"cost": cost(10, 1.0, 100, 50.0)})
        >>> {f["figure"]: f["value"] for f in figs}["cost step_fraction"]
        0.1
    """
    return all_figures(verify)


def summarize(result: Mapping[str, Any]) -> str:
    """A :func:`verify_run` result as text: the verdict first, then one line per figure.

    Example:
        >>> summarize({"cost": cost(10, 1.0, 100, 50.0)})[-38:]
        'optimizer steps, 2.0% of the wall time'
    """
    verdict = result.get("verdict") or {}
    head = [verdict["line"]] if verdict.get("line") else []
    return "\n".join(head + summary_lines(result))


def write_verification(path: str | Path, result: Mapping[str, Any]) -> Path:
    """Write a :func:`verify_run` result as JSON, atomically; return the path.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     write_verification(f"{d}/verify.json", {"ain": float("inf")}).read_text()[:18]
        '{\\n  "ain": "inf"\\n}'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_json(path, json_safe(result), allow_nan=False)


def verify_model(
    model: nn.Module,
    before: nn.Module,
    ut_model: nn.Module | None,
    datasets: Mapping[str, Any],
    test_sets: Mapping[str, Any],
    run: RunRecord,
    rows: Mapping[str, Any],
    folder: Any,
    parent_meta: ModelMeta | None,
    *,
    quiet: bool | None = None,
    reference: ReferenceStore | None = None,
    manifest: Mapping[str, Any] | None = None,
    mia_reference: nn.Module | None = None,
) -> dict[str, Any]:
    """Every verification figure of one run's unlearned model; written to its ``verify.json``.

    ``datasets``: the split's ``forget``/``retain``(/``test``) training datasets (relearning
    samples; the membership attack of an instance split). ``folder``: its
    :class:`~forgetir.runs.folder.RunFolder`. ``reference``: where UT's curves are cached (default:
    beside the run's UT file, else the user cache). ``manifest``: the split manifest (the
    per-example attack's candidate images); ``mia_reference``: the model that calibrates it
    (recorded as the ``mia_reference`` option), or None for the uncalibrated attack.
    """
    opts = run.options
    candidates, described = split_candidates(manifest) if manifest else (None, None)
    membership = None
    if "test" in datasets and run.split.kind == "instances":
        n = 16
        membership = {
            "members": pairs_from_dataset(datasets["retain"], range(n)),
            "nonmembers": pairs_from_dataset(datasets["test"], range(n)),
            "forgotten": pairs_from_dataset(
                datasets["forget"], range(min(n, len(datasets["forget"].source)))
            ),
        }
    meta = parent_meta
    cost_info = {
        "unlearn_steps": run.steps,
        "unlearn_seconds": run.wall_time_s,
        "train_steps": meta.steps if meta else None,
        "train_seconds": meta.wall_time if meta else None,
        "unlearn_batch": opts.get("batch_size"),
        "train_batch": meta.train_batch_size if meta else None,
    }
    if reference is None and ut_model is not None and run.ut is not None:
        reference = ReferenceStore.for_ut(run.ut.path, run.ut.sha256)
    patch = opts.get("patch_size")
    result = verify_run(
        model,
        before,
        ut_model,
        list(run.forget_tasks),
        list(run.retain_tasks),
        test_sets,
        opts.get("protocol", "promptir"),
        pairs_from_dataset(datasets["forget"], range(4)),
        rows=rows,
        relearn_steps=opts.get("relearn_steps", 20),
        ain_max_steps=opts.get("ain_max_steps", 100) if ut_model is not None else 0,
        eval_every=opts.get("verify_eval_every", 1),
        membership=membership,
        cost_info=cost_info,
        relearn_description=f"4 forget-set training patches ({patch}x{patch})",
        seed=opts.get("seed", 0),
        quiet=bool(opts.get("quiet")) if quiet is None else quiet,
        reference=reference,
        instance_candidates=candidates,
        instance_description=described,
        mia_reference=mia_reference,
        mia_reference_name=opts.get("mia_reference") if mia_reference is not None else None,
    )
    folder.write_verification(result)
    return result


# ------------------------------------------------------------------------------ command


def _load_models(
    folder: RunFolder, run: RunRecord, paths: Mapping[str, Path], ut: str | None, arch: str | None
) -> tuple[nn.Module, nn.Module, nn.Module | None, RunRecord]:
    """The unlearned model, BEFORE and UT of a checked run (``ut``: another UT, recorded)."""
    if ut is not None and ut != NO_UT:
        path = resolve_checkpoint(ut)
        run = replace(run, ut=FileRecord(str(path), sha256_file(weights_file(path))))
    if ut != NO_UT and run.ut is not None and run.ut.sha256 == run.parent.sha256:
        raise InvalidInputError(
            f"UT {ut or run.ut.path} is the parent (BEFORE) itself (same SHA-256 "
            f"{run.parent.sha256[:16]}…): UT is the model retrained without the forget data; "
            "give --ut a model retrained without it"
        )
    model = load_eval_model(paths.get("model", folder.file(MODEL)))
    before = load_eval_model(paths["parent"], arch)
    ut_model = None
    if ut == NO_UT:
        return model, before, None, run
    if ut is not None:
        ut_model = load_eval_model(resolve_checkpoint(ut), arch)
    elif run.ut is not None:
        ut_model = load_eval_model(paths["ut"], arch)
    return model, before, ut_model, run


def verify_folder(
    run_dir: str | Path,
    *,
    ut: str | None = None,
    arch: str | None = None,
    relearn_steps: int | None = None,
    ain_max_steps: int | None = None,
    log: Callable[[str], None] = lambda message: None,
    quiet: bool = True,
    recompute_ut: bool = False,
    tile: int | None = None,
    tile_overlap: int | None = None,
    precision: str | None = None,
) -> dict[str, Any]:
    """(Re)compute ``verify.json`` of an unlearning run folder; return the verification.

    Every file ``run.json`` records (parent, UT, split manifest, unlearned model and sidecar,
    test-set manifest) is re-hashed first and a changed one refused
    (:class:`~forgetir.errors.IntegrityError`, naming it). ``ut``: another UT checkpoint to
    compare against (a run made without one, or a better retrained model); its quality row is
    added to ``quality.json`` and ``run.json`` records it. ``ut="none"``: set the run's UT
    aside and give the UT-free verdict (paired against the degraded input). ``log`` receives
    a line as each stage starts; ``quiet=False`` shows progress bars. ``recompute_ut``: ignore
    UT reference logs and fine-tune UT's copy again. ``tile``/``tile_overlap``: restore the
    test images in tiles (:mod:`forgetir.models.tiling`; recorded in ``run.json``); None: as
    the run did. ``precision``: autocast of those restorations (``auto``, ``fp32``, ``bf16``,
    ``fp16``; recorded in ``run.json``); None: as the run did.
    """
    for option, value in (("--relearn-steps", relearn_steps), ("--ain-max-steps", ain_max_steps)):
        if value is not None and value < 0:  # refused before any work
            raise InvalidInputError(f"{option}={value} is out of range; valid: >= 0")
    folder = RunFolder(run_dir)
    folder.require()
    run = folder.read_run()
    options_from_dict(run.options, str(folder.file(RUN_JSON)))  # unknown or bad keys refused
    # A run.json without these records is refused, never read as an older version's.
    require = ("split", "model", "model_sidecar", "test_set", "quality")
    log(f"{folder.path}: re-hashing every recorded file (SHA-256 checked)")
    paths = folder.check_integrity(run, skip=("ut",) if ut else (), require=require)
    opts = dict(run.options)
    opts.update({k: v for k, v in (("relearn_steps", relearn_steps),
                                   ("ain_max_steps", ain_max_steps)) if v is not None})  # fmt: skip
    # This verification's tiling, recorded in run.json: --tile alone takes its default overlap,
    # --tile-overlap alone changes the run's overlap.
    if tile is not None:
        opts.update(tile=tile, tile_overlap=tile_overlap)
    elif tile_overlap is not None:
        opts.update(tile_overlap=tile_overlap)
    if precision is not None:
        opts.update(precision=precision)
    tiling_options(opts.get("tile"), opts.get("tile_overlap"))  # refused before models load
    # A run from before --precision existed restored in fp32.
    precision = opts.get("precision", "fp32")
    autocast_dtype(precision, resolve_device("auto"))  # fp16 on a CPU: refused now
    run = replace(run, options=opts)
    model, before, ut_model, run = _load_models(folder, run, paths, ut, arch)
    tiling = tiling_options(opts.get("tile"), opts.get("tile_overlap"), [before])
    with tiling_scope(*tiling), precision_scope(precision):
        return _verify_loaded(
            folder, run, paths, (model, before, ut_model), ut is not None, arch, log, quiet,
            recompute_ut,
        )  # fmt: skip


def _verify_loaded(
    folder: RunFolder,
    run: RunRecord,
    paths: Mapping[str, Path],
    models: tuple[nn.Module, nn.Module, nn.Module | None],
    new_ut: bool,
    arch: str | None,
    log: Callable[[str], None],
    quiet: bool,
    recompute_ut: bool,
) -> dict[str, Any]:
    """The body of :func:`verify_folder` once its inputs are checked and its models (the
    unlearned one, BEFORE, UT) loaded; ``new_ut``: UT was given for this verification."""
    model, before, ut_model = models
    opts = run.options
    if run.split.manifest is None:
        raise InputFileError(f"{folder.file(RUN_JSON)} records no split manifest")
    manifest_path = paths.get("split") or folder.locate("split", run.split.manifest)
    log(f"re-hashing the split's data ({manifest_path})")
    manifest = load_manifest(manifest_path, verify=True)
    datasets = build_split_datasets(manifest, opts["patch_size"], seed=opts.get("seed", 0))
    test_sets = evaluation_sets(manifest, datasets, SimpleNamespace(**opts))
    if "test_set" in paths:
        folder.check_test_sets(test_sets, paths["test_set"])
    quality = folder.read_quality()
    rows = dict(quality.rows)
    if ut_model is None:  # `--ut none`: the UT-free verdict, whatever quality.json holds
        rows.pop(UT, None)
    new_ut_row = ut_model is not None and (new_ut or UT not in rows)
    if new_ut_row:
        rows[UT] = evaluate_model(ut_model, test_sets, quality.protocol, per_image=True)
    log(
        f"relearning ({opts.get('relearn_steps')} steps), anamnesis index (up to "
        f"{opts.get('ain_max_steps')} steps per model), output gap"
        + (", membership attacks" if "test" in datasets else "")
    )
    store = None
    if ut_model is not None and not recompute_ut:
        store = ReferenceStore.for_ut(*((run.ut.path, run.ut.sha256) if run.ut else (None,)))
    meta = model_meta(paths["parent"])
    mia = paths.get("mia_reference")
    result = verify_model(
        model, before, ut_model, datasets, test_sets, run, rows, folder, meta,
        quiet=quiet, reference=store if store is not None else ReferenceStore(None, None),
        manifest=manifest, mia_reference=load_eval_model(mia, arch) if mia else None,
    )  # fmt: skip
    if store is not None and store.hits:
        log(f"UT's {' and '.join(store.hits)} curves read from its reference log")
    for why in store.refused if store is not None else []:
        log(f"UT reference log not used: {why}")
    # Only now, with verify.json written, do quality.json and run.json take the new UT: a
    # failure above leaves the folder as it was.
    files = dict(run.files)
    if new_ut_row:
        written = folder.write_quality(replace(quality, rows=rows))
        files["quality"] = FileRecord(written.name, sha256_file(written))  # hashed anew
    folder.write_run(replace(run, options=dict(run.options), verify=VERIFY_JSON,
                             verified=utc_now(), files=files))  # fmt: skip
    return result
