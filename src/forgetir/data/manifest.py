"""Split manifests: their format, validation, reading and writing, and re-verification of
every image they list (see :mod:`forgetir.data.splits` for how a split is made)."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Any

from forgetir.atomic import atomic_write
from forgetir.config import ConfigError, DataConfig, from_dict
from forgetir.data.folders import _listing
from forgetir.data.io import sha256_file
from forgetir.data.pipeline import train_tasks
from forgetir.data.pool import DeadLeavesPool
from forgetir.data.testsets import manifest_test_entries
from forgetir.errors import InvalidInputError

FORMAT = "forgetir-split"
VERSION = 1
SPLIT_KINDS = ("degradation", "class", "instances")
PARTS = ("forget", "retain", "test")


class ManifestError(InvalidInputError):
    """A split manifest is malformed, or a file it lists is missing or altered."""


def validate_manifest(manifest: Any, where: str) -> dict[str, Any]:
    if not isinstance(manifest, dict):
        raise ManifestError(f"{where}: a split manifest must be a JSON object")
    if manifest.get("format") != FORMAT:
        raise ManifestError(f"{where}: not a forgetir split manifest (format != {FORMAT!r})")
    if manifest.get("version") != VERSION:
        raise ManifestError(
            f"{where}: manifest version {manifest.get('version')!r}; this forgetir reads {VERSION}"
        )
    if manifest.get("kind") not in SPLIT_KINDS:
        raise ManifestError(
            f"{where}: kind {manifest.get('kind')!r}; valid choices: {', '.join(SPLIT_KINDS)}"
        )
    missing = [k for k in ("seed", "data", "source", *PARTS) if k not in manifest]
    if missing:
        raise ManifestError(f"{where}: missing key(s) {', '.join(missing)}")
    try:
        from_dict(DataConfig, manifest["data"], "data.")
    except ConfigError as e:
        raise ManifestError(f"{where}: invalid data section: {e}") from e
    for part in PARTS:
        p = manifest[part]
        entries = p.get("entries") if isinstance(p, dict) else None
        if not isinstance(entries, list):
            raise ManifestError(f"{where}: {part} must be an object with an 'entries' list")
        if p.get("count") != len(entries):
            raise ManifestError(
                f"{where}: {part}.count is {p.get('count')!r} but it lists {len(entries)} entries"
            )
        for n, e in enumerate(entries):
            ok = isinstance(e, dict) and isinstance(e.get("id"), str)
            ok = ok and isinstance(e.get("sha256"), str) and len(e["sha256"]) == 64
            if not ok:
                raise ManifestError(
                    f"{where}: {part}.entries[{n}] needs an 'id' and a 64-hex 'sha256': {e!r}"
                )
            _check_entry_paths(e, f"{where}: {part}.entries[{n}]")
        counts = Counter((e.get("task"), e["id"]) for e in entries)
        twice = [name for (_, name), n in counts.items() if n > 1]
        if twice:  # an image listed twice would be trained on twice as often
            raise ManifestError(f"{where}: {part} lists image(s) twice: {_listing(twice)}")
    if manifest["kind"] != "degradation" and not manifest["forget"]["entries"]:
        raise ManifestError(f"{where}: the forget part lists no images")
    _check_consistent(manifest, where)
    return manifest


def _check_entry_paths(e: dict[str, Any], where: str) -> None:
    """An entry's files stay inside the data root, and the file hashed is the file trained on:
    training finds an image by its ``id`` (its path under the root), verification hashes
    ``path``, so the two must be one name."""
    for key in ("path", "target"):
        if key not in e:
            continue
        value = e[key]
        if not isinstance(value, str) or not value:
            raise ManifestError(f"{where}: {key} must be a path under the data root: {value!r}")
        pure = PurePosixPath(value)
        if pure.is_absolute() or ".." in pure.parts:
            raise ManifestError(
                f"{where}: {key} {value!r} leaves the data root (absolute, or with '..'); "
                "a split names files by their path under data.root"
            )
    if "path" in e and e["path"] != e["id"]:
        raise ManifestError(
            f"{where}: path {e['path']!r} is not its id {e['id']!r}: the file hashed must be "
            "the file trained on"
        )


def _check_no_copies(manifest: dict[str, Any], where: str) -> None:
    """A byte-identical copy of a forgotten image left in the retain set would be trained on
    again: refused, naming both."""
    forgotten = {e["sha256"]: e["id"] for e in manifest["forget"]["entries"]}
    copies = [
        f"{e['id']} (= {forgotten[e['sha256']]})"
        for e in manifest["retain"]["entries"]
        if e["sha256"] in forgotten
    ]
    if copies:
        raise ManifestError(
            f"{where}: {len(copies)} retained image(s) are byte-identical copies of forgotten "
            f"ones: {_listing(copies)}; forget them too (add them to --forget)"
        )


def _check_consistent(manifest: dict[str, Any], where: str) -> None:
    """A manifest that contradicts itself is refused: forget and retain share no task (a
    degradation split) and no image (class, instance splits; nor does either share one with
    the held-out test part), and every task they name is one the data section trains."""
    try:
        trained = train_tasks(from_dict(DataConfig, manifest["data"], "data."))
    except ConfigError as e:
        raise ManifestError(f"{where}: invalid data section: {e}") from e
    tasks = {}
    for part in ("forget", "retain"):
        names = manifest[part].get("tasks")
        if not isinstance(names, list) or not all(isinstance(t, str) for t in names):
            raise ManifestError(f"{where}: {part}.tasks must be a list of task names")
        outside = [t for t in names if t not in trained]
        if outside:
            raise ManifestError(
                f"{where}: {part}.tasks names {', '.join(outside)}, which the manifest's data "
                f"does not train (trained tasks: {', '.join(trained)})"
            )
        tasks[part] = names
    if manifest["kind"] == "degradation":
        if not tasks["forget"] or not tasks["retain"]:
            empty = "forget" if not tasks["forget"] else "retain"
            raise ManifestError(f"{where}: {empty}.tasks is empty")
        both = [t for t in tasks["forget"] if t in tasks["retain"]]
        if both:
            raise ManifestError(
                f"{where}: task(s) {', '.join(both)} are in both forget.tasks and retain.tasks"
            )
        return
    if manifest["kind"] == "class":
        classes = {p: manifest[p].get("classes") or [] for p in ("forget", "retain")}
        both = [c for c in classes["forget"] if c in classes["retain"]]
        if both:
            raise ManifestError(
                f"{where}: class(es) {', '.join(map(str, both))} are in both forget.classes "
                "and retain.classes"
            )

    def keys(part: str) -> dict[tuple[Any, str], str]:
        return {(e.get("task"), e["id"]): e["id"] for e in manifest[part]["entries"]}

    parts = {p: keys(p) for p in PARTS}
    for a, b in (("forget", "retain"), ("forget", "test"), ("retain", "test")):
        both = [name for k, name in parts[a].items() if k in parts[b]]
        if both:
            raise ManifestError(
                f"{where}: {len(both)} image(s) are in both {a} and {b}: {_listing(both)}"
            )
    _check_no_copies(manifest, where)  # the same image under another name


def save_manifest(manifest: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Validate and write ``manifest`` as JSON, atomically (temp file + rename).

    Example:
        >>> import tempfile, os
        >>> from forgetir.config import DataConfig
        >>> from forgetir.data.splits import make_split
        >>> m = make_split(DataConfig(pool_size=2, image_size=16), "instances", ["dl-000001"],
        ...                held_out=1)
        >>> p = save_manifest(m, os.path.join(tempfile.mkdtemp(), "split.json"))
        >>> load_manifest(p)["forget"]["entries"][0]["id"]
        'dl-000001'
    """
    path = Path(path)
    validate_manifest(manifest, "manifest to save")
    text = json.dumps(manifest, indent=1, sort_keys=False) + "\n"
    atomic_write(path, text)
    return path


def load_manifest(path: str | os.PathLike[str], verify: bool = False) -> dict[str, Any]:
    """Read and validate a split manifest; with ``verify`` re-check every SHA-256."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"split manifest not found: {path}")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ManifestError(f"{path}: not valid JSON ({e})") from e
    validate_manifest(manifest, str(path))
    if verify:
        verify_manifest(manifest, where=str(path))
    return manifest


def manifest_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a manifest file, to cite it in reports."""
    return sha256_file(path)


def _generated_hashes(desc: dict[str, Any]) -> dict[str, str] | None:
    """id -> sha256 of a generated source, rebuilt from its description (None: not generated)."""
    kind = desc.get("kind")
    if kind == "deadleaves":
        pool = DeadLeavesPool(
            desc["size"],
            desc["image_size"],
            desc["seed"],
            desc.get("content_classes"),
            namespace=desc.get("namespace", "train"),
        )
        return {pool.name(i): pool.sha256(i) for i in range(len(pool))}
    if kind in ("photos-test", "deadleaves-test"):
        src = kind.removesuffix("-test")
        _, entries = manifest_test_entries(
            src, desc.get("max_side"), None, desc.get("n", 16), desc.get("size", 128)
        )
        return {e["id"]: e["sha256"] for e in entries}
    return None


def verify_manifest(manifest: dict[str, Any], where: str = "manifest") -> None:
    """Re-hash every listed file (and regenerate generated images); error naming the altered.

    Example:
        >>> from forgetir.config import DataConfig
        >>> from forgetir.data.splits import make_split
        >>> m = make_split(DataConfig(pool_size=2, image_size=16), "instances", ["dl-000000"],
        ...                held_out=1)
        >>> verify_manifest(m)
    """
    root = manifest["data"].get("root")
    base = Path(root) if root else Path.cwd()
    bad: list[str] = []
    descs = {
        "forget": manifest["source"].get("clean") or {},
        "retain": manifest["source"].get("clean") or {},
        "test": manifest["test"].get("source") or {},
    }
    generated_cache: dict[str, dict[str, str] | None] = {}
    for part in PARTS:
        for e in manifest[part]["entries"]:
            if "path" in e:
                for key, hkey in (("path", "sha256"), ("target", "target_sha256")):
                    if key not in e:
                        continue
                    f = base / e[key]
                    if not f.is_file():
                        bad.append(f"{f} (missing)")
                    elif sha256_file(f) != e[hkey]:
                        bad.append(f"{f} (altered: SHA-256 differs)")
                continue
            key = json.dumps(descs[part], sort_keys=True)
            if key not in generated_cache:
                generated_cache[key] = _generated_hashes(descs[part])
            hashes = generated_cache[key]
            if hashes is None:
                bad.append(f"{e['id']} (cannot regenerate: source {descs[part].get('kind')!r})")
            elif hashes.get(e["id"]) != e["sha256"]:
                bad.append(f"{e['id']} (regenerated image differs)")
    if bad:
        raise ManifestError(f"{where}: {len(bad)} listed images fail verification: {_listing(bad)}")
