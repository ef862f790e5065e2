"""The report of one unlearning run: ``report.html``, ``report.md`` and ``report.json``.

:func:`write_report` reads a run directory and writes

- ``report.html``: ONE self-contained page that opens offline (inline CSS, every image embedded
  as a base64 PNG ``data:`` URI, no script, no external CSS or fonts); all text is escaped;
- ``report.md`` with its figures as PNG files in ``report_files/`` (grids linked in place);
- ``report.json``: the audit manifest and every figure, machine-readable.

Run-directory layout (written by ``forgetir unlearn`` / ``forgetir demo``)::

    RUN_DIR/
      run.json            required. A JSON object:
                            "method": str (registry name)                            required
                            "parent": {"path": str, "sha256": str} (the BEFORE checkpoint) required
                            "hyperparameters": {...}, "target": str | null,
                            "split": {"kind": "degradation" | "class" | "instances",
                                      "forget": [...], "retain": [...],
                                      "manifest": {"path": str, "sha256": str} | null},
                            "forget_tasks": [...], "retain_tasks": [...],
                            "ut": {"path": str, "sha256": str} | null,
                            "steps": int, "wall_time_s": float, "command": str | [str],
                            "software": {"python", "torch", "forgetir", "numpy", ...},
                            "seed": int, "created": str                           optional
      model.safetensors   required, with model.json (forgetir.checkpoint.save_model)
      log.csv             required (forgetir.engine: step, loss, lr, other logs, time)
      quality.json        required (forgetir.scoring.evaluate.write_results): "rows" label ->
                          task -> {"psnr", "ssim", "n"}; "protocol"; "test_set"
      verify.json         required (forgetir.checks.verify.write_verification of verify_run)
      sweeps.json         optional: [{"param": "lr", "value": 1e-4, "psnr": {task: dB}}, ...]
                          (task keys may also sit beside "param"/"value" directly)
      grids/*.png         optional image grids (:func:`forgetir.render.figures.write_image_grid`)

Relative ``path`` entries in run.json are looked up in RUN_DIR first, then in the current
directory. Hashes are recomputed where the file can be found, and the report says whether they
match.

Example:
    $ forgetir report runs/demo
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from forgetir.atomic import atomic_write, check_replaceable, kind_of
from forgetir.checkpoint import sha256_file
from forgetir.checks import all_figures
from forgetir.errors import InputFileError, IntegrityError, MissingInputError, OutputPathError
from forgetir.models.external import describe_condition
from forgetir.provenance import software_versions
from forgetir.records import RunRecord, json_safe
from forgetir.render.document import CSS, Doc, esc
from forgetir.render.figures import (
    num,
)
from forgetir.report.sections import (
    audit_section,
    expert_usage_section,
    quality_section,
    run_sections,
    verdict_section,
    verification_section,
)
from forgetir.runs.folder import (
    CHECKPOINT_ROLES,
    RUN_JSON,
    RunFolder,
    hash_check,
    read_json,
    resolve,
)
from forgetir.runtime.progress import Progress, is_quiet

__all__ = [
    "FILES_DIR",
    "REQUIRED_FILES",
    "software_versions",
    "write_report",
]

FORMAT = "forgetir-report"
VERSION = 1
FILES_DIR = "report_files"
REQUIRED_FILES = ("run.json", "model.safetensors", "model.json", "log.csv", "quality.json")
REQUIRED_FILES += ("verify.json",)


# ------------------------------------------------------------------------------ small helpers


# ------------------------------------------------------------------------------ reading


def _read_log(path: Path) -> dict[str, list[float]]:
    """log.csv as numeric columns (step first); empty cells are skipped per column."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or "step" not in reader.fieldnames:
            raise InputFileError(f"{path} has no 'step' column (columns: {reader.fieldnames})")
        cols: dict[str, list[tuple[float, float]]] = {c: [] for c in reader.fieldnames}
        for row in reader:
            step = num(row.get("step"))
            if step is None:
                continue
            for c, v in row.items():
                x = num(v)
                if c is not None and x is not None:
                    cols[c].append((step, x))
    return {c: v for c, v in cols.items() if v}  # type: ignore[misc]


def _forget_entries(run_dir: Path, manifest: Any) -> list[dict[str, Any]] | None:
    path = (
        resolve(run_dir, manifest.get("path"), own=True) if isinstance(manifest, Mapping) else None
    )
    if path is None or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        entries = data["forget"]["entries"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    keep = ("id", "path", "sha256", "task", "class")
    return [{k: e[k] for k in keep if k in e} for e in entries if isinstance(e, Mapping)]


# ------------------------------------------------------------------------------ content model


def _audit(run_dir: Path, run: Mapping[str, Any], model_meta: Mapping[str, Any]) -> dict[str, Any]:
    split = run.get("split") if isinstance(run.get("split"), Mapping) else {}
    manifest = split.get("manifest")
    entries = _forget_entries(run_dir, manifest)
    weights = run_dir / "model.safetensors"
    actual = sha256_file(weights)
    recorded = model_meta.get("sha256")
    return {
        "forgotten": {
            "split_kind": split.get("kind"),
            "forget": split.get("forget", run.get("forget_tasks")),
            "retain": split.get("retain", run.get("retain_tasks")),
            "forget_tasks": run.get("forget_tasks"),
            "retain_tasks": run.get("retain_tasks"),
            "manifest": hash_check(run_dir, manifest, own=True),
            "forget_entries": entries,
            "note": "paths/ids and SHA-256 only; no pixels are stored in this report",
        },
        "parent_checkpoint": hash_check(run_dir, run.get("parent")),
        "ut_checkpoint": hash_check(run_dir, run.get("ut")),
        "run_files": {
            role: hash_check(run_dir, rec, own=role not in CHECKPOINT_ROLES)
            for role, rec in (run.get("files") or {}).items()
        }
        or "not recorded (run made by an older forgetir)",
        "unlearned_checkpoint": {
            "path": str(weights),
            "sha256": recorded,
            "check": "match" if actual == recorded else f"MISMATCH (file: {actual})",
            "arch": model_meta.get("arch"),
            "num_parameters": model_meta.get("num_parameters"),
            "conditioning": describe_condition(model_meta.get("model_condition")),
        },
        "method": {
            "name": run.get("method"),
            "target": run.get("target"),
            "hyperparameters": run.get("hyperparameters"),
        },
        "run": {k: run.get(k) for k in ("steps", "wall_time_s", "command", "seed", "created")},
        "software": {"run": run.get("software"), "report": software_versions()},
    }


def _refuse_changed_files(folder: RunFolder, run: RunRecord) -> None:
    """Refuse a run folder any of whose recorded files changed (a file not present here, such
    as a parent on another machine, is reported as not re-checked in the audit manifest), or
    whose run.json records no files (nothing could be checked)."""
    if not run.files:
        raise IntegrityError(
            f"{folder.file(RUN_JSON)} records no files (no SHA-256 of the unlearned model or "
            "its quality table): the run cannot be checked for tampering; re-run `forgetir unlearn`"
        )
    for role, record in folder.recorded(run).items():
        check = hash_check(folder.path, record, own=role not in CHECKPOINT_ROLES)
        if check is not None and str(check.get("check")).startswith("MISMATCH"):
            raise IntegrityError(
                f"{role} file {record.path} of {folder.path} changed since the run was made "
                f"({check['check']}); the report would describe other files than the run's"
            )


def _load(run_dir: Path) -> dict[str, Any]:
    if not run_dir.is_dir():
        raise MissingInputError(f"run directory {run_dir} does not exist")
    missing = [n for n in REQUIRED_FILES if not (run_dir / n).is_file()]
    if missing:
        raise MissingInputError(
            f"run directory {run_dir} lacks {', '.join(missing)} (a report needs "
            f"{', '.join(REQUIRED_FILES)}; see forgetir.report.write's docstring for the layout)"
        )
    run = read_json(run_dir, RUN_JSON)
    record = RunRecord.from_json(run, str(run_dir / RUN_JSON))  # validates the fields
    _refuse_changed_files(RunFolder(run_dir), record)
    quality = read_json(run_dir, "quality.json")
    if not isinstance(quality, Mapping) or not isinstance(quality.get("rows"), Mapping):
        raise InputFileError(f"{run_dir / 'quality.json'} must hold an object with 'rows'")
    verify = read_json(run_dir, "verify.json")
    if not isinstance(verify, Mapping):
        raise InputFileError(f"{run_dir / 'verify.json'} must hold a JSON object")
    sweeps = read_json(run_dir, "sweeps.json") if (run_dir / "sweeps.json").is_file() else None
    grids = sorted((run_dir / "grids").glob("*.png")) if (run_dir / "grids").is_dir() else []
    return {
        "run": run,
        "model": read_json(run_dir, "model.json"),
        "log": _read_log(run_dir / "log.csv"),
        "quality": quality,
        "verify": verify,
        "sweeps": sweeps,
        "grids": grids,
    }


def write_report(run_dir: str | Path, quiet: bool | None = None) -> dict[str, Path]:
    """Write ``report.html``, ``report.md`` (+ ``report_files/*.png``) and ``report.json`` for
    the run directory ``run_dir`` (layout in the module docstring); return their paths under
    the keys ``html``, ``md``, ``json`` and ``files``. Progress per section (the figures take
    the time) shows after 2 s unless ``quiet`` (None: see :mod:`forgetir.runtime.progress`).

    Example:
        >>> import tempfile
        >>> try:
        ...     write_report(tempfile.mkdtemp())
        ... except FileNotFoundError as e:
        ...     "run.json" in str(e)
        True
    """
    run_dir = Path(run_dir)
    data = _load(run_dir)
    _check_targets(run_dir)
    with Progress(5, 0, not is_quiet(quiet), "report", delay=None, unit="sections") as bar:
        return _write_report(run_dir, data, bar)


def _check_targets(run_dir: Path) -> None:
    """Refuse, before any work, report files or a figure folder that are not ours to replace:
    a symlink (the report would be written through it, outside the run), a device, a FIFO."""
    for name in ("report.html", "report.md", "report.json"):
        check_replaceable(run_dir / name, "report file")
    kind = kind_of(run_dir / FILES_DIR)
    if kind not in (None, "a folder"):
        raise OutputPathError(
            f"report folder {run_dir / FILES_DIR} is {kind}; the report writes its figures only "
            "into a real folder inside the run (remove it and run `forgetir report` again)"
        )


def _write_report(run_dir: Path, data: dict[str, Any], bar: Progress) -> dict[str, Path]:
    """The body of :func:`write_report`; ``bar`` advances once per section."""
    run, quality, verify = data["run"], data["quality"], data["verify"]
    forget_tasks = list(run.get("forget_tasks") or verify.get("forget_tasks") or [])
    forget = set(forget_tasks)
    files_dir = run_dir / FILES_DIR
    doc = Doc(files_dir, run_dir)

    method = str(run.get("method"))
    target = ", ".join(map(str, forget_tasks)) or str((run.get("split") or {}).get("forget"))
    title = f"forgetir report: {method}, forgetting {target}"
    doc.heading(1, title)
    generated = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    doc.para(f"Run directory: {run_dir.resolve()}. Generated {generated}.", "sub")
    sections = [("verdict", "Verdict"), ("quality", "Quality"), ("grids", "Image grids")]
    sections.append(("curves", "Training curves"))
    if data["sweeps"] is not None:
        sections.append(("sweeps", "Sweeps"))
    sections += [("verify", "Verification"), ("audit", "Audit manifest")]
    doc.html.append(
        "<nav>" + "".join(f'<a href="#{a}">{esc(t)}</a>' for a, t in sections) + "</nav>"
    )

    verdict_section(doc, verify)  # the verdict first, before any table
    doc.heading(2, "Quality: degraded input, BEFORE, unlearned, UT", "quality")
    quality_section(doc, quality, forget)
    bar.update(1, "quality")

    run_sections(doc, data, forget)
    bar.update(2, "grids, curves, sweeps")
    if run.get("expert_usage"):
        expert_usage_section(doc, run["expert_usage"], forget)
    verification_section(doc, verify)
    bar.update(3, "verification")
    key = all_figures(verify)
    audit = _audit(run_dir, run, data["model"])
    audit_section(doc, audit, key)
    bar.update(4, "audit manifest")

    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>\n"
        + "\n".join(doc.html)
        + "\n</main></body></html>\n"
    )
    report = {
        "format": FORMAT,
        "version": VERSION,
        "generated": generated,
        "run_dir": str(run_dir.resolve()),
        "title": title,
        "verdict": verify.get("verdict"),
        "audit": {**audit, "key_figures": key},
        "quality": quality,
        "verification": verify,
        "sweeps": data["sweeps"],
        "training_log": {
            "columns": list(data["log"]),
            "last": {c: v[-1][1] for c, v in data["log"].items()},
        },
        "figures": doc.figures,
    }
    paths = {
        "html": atomic_write(run_dir / "report.html", page.encode("utf-8")),
        "md": atomic_write(run_dir / "report.md", "\n".join(doc.md).encode("utf-8")),
        "json": atomic_write(
            run_dir / "report.json",
            (json.dumps(json_safe(report), indent=2, ensure_ascii=False) + "\n").encode(),
        ),
        "files": files_dir,
    }
    bar.update(5, "written")
    return paths
