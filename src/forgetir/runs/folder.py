"""An unlearning run folder: the one home of its file names, reads/writes and hash checks.

``forgetir unlearn`` writes the folder, ``forgetir verify`` (re)computes its proof of
forgetting and ``forgetir report`` renders it. Layout::

    run.json            what was run (:class:`~forgetir.records.RunRecord`): method,
                        hyperparameters, and {path, sha256} of every file the verdict rests on:
                        the parent (BEFORE), the UT model, the split manifest, the unlearned
                        model and its sidecar, the test-set manifest
    model.safetensors   the unlearned weights, with their model.json sidecar
    log.csv             the unlearning loss curve
    split.json          the split manifest (ids, paths and SHA-256 of the data; no pixels)
    testset.json        the test-set manifest (each test image's name and pixel SHA-256)
    quality.json        PSNR/SSIM of degraded input / BEFORE / unlearned / UT per task
    verify.json         the verdict and every verification figure (:mod:`forgetir.checks.verify`)
    grids/*.png         output grids

Paths recorded in ``run.json`` are looked up as written, then inside the run folder (the run's
own files inside it first), so a folder that was moved or copied elsewhere verifies its own.
:meth:`RunFolder.check_integrity` re-hashes every recorded file and refuses one that changed
(:class:`~forgetir.errors.IntegrityError`, naming the file): a run is tamper-evident.

Example:
    >>> import tempfile
    >>> RunFolder(tempfile.mkdtemp()).is_run()
    False
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from forgetir.atomic import atomic_json
from forgetir.checkpoint import WEIGHTS_NAME, sha256_file
from forgetir.errors import InputFileError, IntegrityError
from forgetir.records import FileRecord, QualityTable, RunRecord, VerificationRecord, json_safe

__all__ = ["RunFolder", "hash_check", "read_json", "resolve", "manifest_of_test_sets"]

RUN_JSON, QUALITY_JSON, VERIFY_JSON = "run.json", "quality.json", "verify.json"
SPLIT_JSON, TESTSET_JSON, LOG_CSV = "split.json", "testset.json", "log.csv"
MODEL, SIDECAR, GRIDS = "model.safetensors", "model.json", "grids"
TESTSET_FORMAT = "forgetir-testset"
# Roles of the files a verdict rests on, in the order they are checked and named.
ROLES = (
    "parent", "ut", "split", "model", "model_sidecar", "test_set", "quality", "mia_reference",
)  # fmt: skip
ROLE_NAMES = {
    "parent": "parent (BEFORE)",
    "ut": "UT",
    "model": "unlearned model",
    "quality": "quality table (quality.json)",
    "mia_reference": "membership-attack reference (--mia-reference)",
}
# Roles that name a checkpoint outside the run folder (found as recorded, or by shipped: name).
CHECKPOINT_ROLES = ("parent", "ut", "mia_reference")


def read_json(run_dir: Path, name: str) -> Any:
    """``run_dir/name`` parsed, with an error naming the file when it is not JSON."""
    path = Path(run_dir) / name
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputFileError(f"{path} is not valid JSON: {exc}") from None
    except FileNotFoundError:
        raise InputFileError(f"{path} does not exist") from None
    except OSError as exc:
        raise InputFileError(f"cannot read {path}: {exc.strerror or exc}") from None


def resolve(run_dir: Path, p: str | None, own: bool = False) -> Path | None:
    """A path recorded in ``run.json``: as written, else inside ``run_dir`` (None if absent).
    ``own``: a file of the run folder itself (split, model, test-set manifest), looked up
    inside ``run_dir`` first, so that a copied or moved folder uses its own files and not
    the ones it was copied from.

    Example:
        >>> resolve(Path("."), None) is None
        True
    """
    if not p:
        return None
    path = Path(p).expanduser()
    order = (run_dir / path.name, run_dir / path, path) if own else (path, run_dir / path)
    for cand in (*order, run_dir / path.name):
        if cand.exists():
            return cand
    return None


def _hash_of(path: Path) -> str:
    return sha256_file(path / WEIGHTS_NAME if path.is_dir() else path)


def hash_check(run_dir: Path, record: Any, own: bool = False) -> dict[str, Any] | None:
    """``{"path", "sha256", "check"}`` for a ``{"path", "sha256"}`` record, re-hashed
    (``own``: a file of the run folder itself, see :func:`resolve`)."""
    if isinstance(record, FileRecord):
        record = record.to_json()
    if not isinstance(record, Mapping):
        return None
    out = {"path": record.get("path"), "sha256": record.get("sha256")}
    found = resolve(run_dir, record.get("path"), own)
    if found is None:
        out["check"] = "file not found here: hash not re-checked"
        return out
    try:
        actual = _hash_of(found)
    except (OSError, ValueError) as exc:
        out["check"] = f"could not re-check ({exc})"
        return out
    out["check"] = "match" if actual == record.get("sha256") else f"MISMATCH (file: {actual})"
    return out


def manifest_of_test_sets(test_sets: Mapping[str, Any]) -> dict[str, Any]:
    """Every test image's name, shape and SHA-256 of its float32 pixels (degraded and clean),
    per test set: what ``testset.json`` records so that a changed test set is noticed.

    Example:
        >>> import torch
        >>> from forgetir.data.testsets import TestSet
        >>> x = [torch.zeros(1, 3, 2, 2)]
        >>> ts = TestSet("dehaze", "toy", ["a"], x, x)
        >>> manifest_of_test_sets({"dehaze": ts})["sets"]["dehaze"]["images"][0]["shape"]
        [1, 3, 2, 2]
    """

    def digest(t: Any) -> str:
        return hashlib.sha256(t.detach().float().contiguous().cpu().numpy().tobytes()).hexdigest()

    sets = {}
    for name, ts in test_sets.items():
        images = [
            {"name": n, "shape": list(x.shape), "degraded": digest(x), "clean": digest(y)}
            for n, x, y in zip(ts.names, ts.degraded, ts.clean, strict=True)
        ]
        sets[name] = {"task": ts.task, "source": ts.source, "images": images}
    return {"format": TESTSET_FORMAT, "version": 1, "sets": sets}


class RunFolder:
    """One run folder: its files by name, typed reads and atomic writes, and the resolution and
    hash check of every file its verdict rests on (each resolved once per call).

    Example:
        >>> import tempfile
        >>> folder = RunFolder(tempfile.mkdtemp())
        >>> folder.file(VERIFY_JSON).name
        'verify.json'
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def file(self, name: str) -> Path:
        return self.path / name

    def is_run(self) -> bool:
        return self.file(RUN_JSON).is_file()

    def require(self) -> None:
        """Refuse a folder that holds no run, naming it."""
        if not self.is_run():
            raise InputFileError(
                f"{self.path} is not an unlearning run folder (no {RUN_JSON}); make one with "
                "`forgetir unlearn` or `forgetir demo`"
            )

    # -------------------------------------------------------------------- typed reads/writes

    def read_run(self) -> RunRecord:
        return RunRecord.from_json(read_json(self.path, RUN_JSON), str(self.file(RUN_JSON)))

    def write_run(self, run: RunRecord) -> Path:
        return atomic_json(self.file(RUN_JSON), run.to_json(), allow_nan=False)

    def read_quality(self) -> QualityTable:
        data = read_json(self.path, QUALITY_JSON)
        return QualityTable.from_json(data, str(self.file(QUALITY_JSON)))

    def write_quality(self, table: QualityTable) -> Path:
        return atomic_json(self.file(QUALITY_JSON), table.to_json(), allow_nan=False)

    def read_verification(self) -> VerificationRecord:
        data = read_json(self.path, VERIFY_JSON)
        return VerificationRecord.from_json(data, str(self.file(VERIFY_JSON)))

    def write_verification(self, result: VerificationRecord | Mapping[str, Any]) -> Path:
        data = result.to_json() if isinstance(result, VerificationRecord) else json_safe(result)
        return atomic_json(self.file(VERIFY_JSON), data, allow_nan=False)

    def write_testset_manifest(self, test_sets: Mapping[str, Any]) -> FileRecord:
        path = atomic_json(self.file(TESTSET_JSON), manifest_of_test_sets(test_sets))
        return FileRecord(TESTSET_JSON, sha256_file(path))

    def own_files(self) -> dict[str, FileRecord]:
        """SHA-256 records of the run's own model, sidecar and quality table, as ``run.json``
        keeps them (the verdict reads the quality rows: an edited table is refused)."""
        return {
            role: FileRecord(name, sha256_file(self.file(name)))
            for role, name in (
                ("model", MODEL),
                ("model_sidecar", SIDECAR),
                ("quality", QUALITY_JSON),
            )
        }

    # -------------------------------------------------------------------- integrity

    def recorded(self, run: RunRecord) -> dict[str, FileRecord]:
        """role -> the file record ``run.json`` holds for it (roles in :data:`ROLES`)."""
        out = {"parent": run.parent}
        if run.ut is not None:
            out["ut"] = run.ut
        if run.split.manifest is not None:
            out["split"] = run.split.manifest
        out.update(run.files)
        return {r: out[r] for r in ROLES if r in out}

    def locate(self, role: str, record: FileRecord) -> Path:
        """Where the file of ``record`` is now (shipped models by their ``shipped:`` name)."""
        found = resolve(self.path, record.path, own=role not in CHECKPOINT_ROLES)
        if found is None and role in CHECKPOINT_ROLES:
            from forgetir.checkpoint.shipped import resolve_checkpoint

            found = resolve_checkpoint(record.path)
            found = found if found.exists() else None
        if found is None:
            raise InputFileError(
                f"the {role} file {record.path} recorded in {self.file(RUN_JSON)} is missing"
            )
        return found / WEIGHTS_NAME if found.is_dir() else found

    def check_integrity(
        self, run: RunRecord, skip: tuple[str, ...] = (), require: tuple[str, ...] = ()
    ) -> dict[str, Path]:
        """Re-hash every file ``run.json`` records and return role -> its path now.

        Raises :class:`IntegrityError` naming the first file whose SHA-256 changed, or a
        role in ``require`` that ``run.json`` does not record (a run made by an older
        forgetir, or a record that was removed). ``skip``: roles replaced by the caller.
        """
        records = self.recorded(run)
        if not run.files:
            raise IntegrityError(
                f"{self.file(RUN_JSON)} records no files (no SHA-256 of the unlearned model, "
                "its quality table or its test set): it cannot be checked for tampering, so it "
                "is refused; re-run `forgetir unlearn`"
            )
        lacking = [r for r in require if r not in records]
        if lacking:
            raise IntegrityError(
                f"{self.file(RUN_JSON)} records no SHA-256 for {', '.join(lacking)}: the run "
                "cannot be checked for tampering (made by an older forgetir, or edited); "
                "re-run `forgetir unlearn`"
            )
        paths = {}
        for role, record in records.items():
            if role in skip:
                continue
            path = self.locate(role, record)
            actual = sha256_file(path)
            if actual != record.sha256:
                hint = {
                    "parent": "a run is verified against the very parent it was unlearned from",
                    "ut": "pass --ut PATH to compare with another retrained model",
                }.get(role, "the run folder changed after it was made")
                raise IntegrityError(
                    f"{ROLE_NAMES.get(role, role)} file {path} changed since the run was made: "
                    f"SHA-256 {actual[:16]}… "
                    f"but {self.file(RUN_JSON)} recorded {record.sha256[:16]}… (MISMATCH); {hint}"
                )
            paths[role] = path
        return paths

    def check_test_sets(self, test_sets: Mapping[str, Any], path: Path) -> None:
        """Refuse test sets rebuilt here that differ from the recorded ``testset.json``."""
        recorded = read_json(path.parent, path.name)
        now = manifest_of_test_sets(test_sets)
        for name, entry in (recorded.get("sets") or {}).items():
            if now["sets"].get(name) != entry:
                raise IntegrityError(
                    f"test set {name!r} rebuilt here differs from {path} (images, sizes or "
                    "pixels changed: another data version?); the run's figures do not apply"
                )
