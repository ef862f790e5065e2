"""Images on disk: a folder of clean images, one folder per class, and paired folders.

- ``image_folder(root)``: every image file in ``root`` (sorted), a clean source.
- ``class_folders(root)``: one sub-folder per content class (``root/cats/*.png``, ...).
- ``paired_folders(input_dir, target_dir)``: degraded/clean pairs with the same file names.
  Names present on one side only are an error listing them (``strict=False`` keeps the common
  names and records the others in ``unmatched``); a pair whose two images differ in size is an
  error naming both files when the pair is read.

File sources implement the clean-source protocol of :mod:`forgetir.data.pool`; ids are paths
relative to the source root (POSIX slashes), and the SHA-256 is the file's.

Example:
    >>> import tempfile, os, torch
    >>> from forgetir.data.io import write_image
    >>> d = tempfile.mkdtemp()
    >>> write_image(os.path.join(d, "a.png"), torch.rand(3, 8, 8))
    >>> src = image_folder(d)
    >>> src.name(0), src.get(0).shape
    ('a.png', torch.Size([3, 8, 8]))
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from forgetir.data.io import IMAGE_EXTENSIONS, ImageReadError, read_image, sha256_file
from forgetir.errors import InputFileError, MissingInputError

__all__ = [
    "FileImages",
    "PairSizeError",
    "PairedImages",
    "check_min_size",
    "class_folders",
    "image_folder",
    "list_images",
    "paired_folders",
]


class PairSizeError(InputFileError):
    """The degraded and clean images of a pair have different sizes."""


def _listing(names: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return f"{shown}{more}"


def _named_like_image(p: Path) -> bool:
    return not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS


def _is_image(p: Path) -> bool:
    return _named_like_image(p) and p.is_file()


def _what_is(p: Path) -> str:
    if p.is_symlink() and not p.exists():
        return "a broken or looping symlink"
    if p.is_dir():
        return "a folder"
    return "not a regular file"


def list_images(folder: str | os.PathLike[str], recursive: bool = False) -> list[Path]:
    """Image files in ``folder`` sorted by name (hidden files skipped); error when none, and
    when an entry named like an image is not a readable file (a folder called ``x.png``, a
    broken or looping symlink): nothing is dropped without a word.

    Example:
        >>> import tempfile
        >>> try:
        ...     list_images(tempfile.mkdtemp())
        ... except InputFileError as e:
        ...     print(str(e).split(" (")[0].startswith("no image files in"))
        True
    """
    folder = Path(folder)
    if not folder.exists():
        raise MissingInputError(f"image folder not found: {folder}")
    if not folder.is_dir():
        raise InputFileError(f"not a folder: {folder} (a file where a folder of images is needed)")
    found = folder.rglob("*") if recursive else folder.iterdir()
    named = sorted((p for p in found if _named_like_image(p)), key=lambda p: p.as_posix())
    odd = [p for p in named if not p.is_file()]
    if odd:
        raise InputFileError(
            f"{folder}: {len(odd)} entries named like images are not image files: "
            + _listing([f"{p} ({_what_is(p)})" for p in odd])
            + "; remove or rename them"
        )
    if not named:
        raise InputFileError(
            f"no image files in {folder} (looked for {', '.join(IMAGE_EXTENSIONS)})"
        )
    return named


def _rel(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` (both resolved), or the absolute path if outside it."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()


class FileImages:
    """A clean source over a list of image files; ids are paths relative to ``root``.

    Example:
        >>> import tempfile, os, torch
        >>> from forgetir.data.io import write_image
        >>> d = tempfile.mkdtemp(); write_image(os.path.join(d, "x.png"), torch.rand(3, 4, 4))
        >>> FileImages([os.path.join(d, "x.png")], root=d, label="demo").name(0)
        'x.png'
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        root: str | os.PathLike[str],
        label: str,
        classes: Sequence[str | None] | None = None,
        kind: str = "files",
    ) -> None:
        self.paths = [Path(p) for p in paths]
        self.root = Path(root)
        self.label = label
        self.kind = kind
        if not self.paths:
            raise ValueError(f"{label}: no images")
        if classes is not None and len(classes) != len(self.paths):
            raise ValueError(f"{label}: {len(classes)} class labels for {len(self.paths)} images")
        self._classes = list(classes) if classes is not None else [None] * len(self.paths)
        self._names = [_rel(p, self.root) for p in self.paths]
        self._hashes: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self.paths)

    def path(self, i: int) -> Path:
        return self.paths[i]

    def get(self, i: int) -> torch.Tensor:
        return read_image(self.paths[i])

    def name(self, i: int) -> str:
        return self._names[i]

    def content_class(self, i: int) -> str | None:
        return self._classes[i]

    @property
    def class_names(self) -> list[str]:
        return sorted({c for c in self._classes if c is not None})

    def sha256(self, i: int) -> str:
        if i not in self._hashes:
            self._hashes[i] = sha256_file(self.paths[i])
        return self._hashes[i]

    def entry(self, i: int) -> dict[str, Any]:
        rec: dict[str, Any] = {"id": self.name(i), "path": self.name(i), "sha256": self.sha256(i)}
        if self._classes[i] is not None:
            rec["class"] = self._classes[i]
        return rec

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "root": str(self.root), "count": len(self)}
        if self.class_names:
            out["classes"] = self.class_names
        return out


def image_folder(
    folder: str | os.PathLike[str],
    recursive: bool = False,
    root: str | os.PathLike[str] | None = None,
) -> FileImages:
    """Every image file in ``folder`` (sorted) as a clean source; error if there are none.

    Ids are paths relative to ``root`` (default: ``folder`` itself).
    """
    folder = Path(folder)
    files = list_images(folder, recursive)
    return FileImages(files, root if root is not None else folder, label=str(folder), kind="folder")


def class_folders(root: str | os.PathLike[str], classes: Sequence[str] | None = None) -> FileImages:
    """Images in ``root/<class>/``, one sub-folder per content class, as a clean source.

    ``classes`` keeps only those classes (for instance to train a model without one); a class
    not present is an error listing those that are.

    Example:
        >>> import tempfile, os, torch
        >>> from forgetir.data.io import write_image
        >>> d = tempfile.mkdtemp()
        >>> for c in ("cats", "dogs"): write_image(os.path.join(d, c, "1.png"), torch.rand(3, 4, 4))
        >>> class_folders(d).class_names
        ['cats', 'dogs']
    """
    root = Path(root)
    if not root.is_dir():
        raise MissingInputError(f"class folder root not found or not a folder: {root}")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    stray = sorted(p.name for p in root.iterdir() if _is_image(p))
    if stray:
        raise InputFileError(
            f"{root}: class folders expect one sub-folder per class, but image files sit "
            f"directly in the root: {_listing(stray)}"
        )
    if not subdirs:
        raise InputFileError(f"{root}: no class sub-folders (expected {root}/<class>/<images>)")
    present = [p.name for p in subdirs]
    if classes is not None:
        unknown = [c for c in classes if c not in present]
        if unknown:
            raise InputFileError(
                f"unknown class(es) {', '.join(map(repr, unknown))} in {root}; "
                f"valid choices: {', '.join(present)}"
            )
        subdirs = [p for p in subdirs if p.name in set(classes)]
    paths: list[Path] = []
    labels: list[str | None] = []
    for sub in subdirs:
        files = list_images(sub)  # an empty class folder is an error naming it
        paths += files
        labels += [sub.name] * len(files)
    return FileImages(paths, root, label=str(root), classes=labels, kind="classes")


class PairedImages:
    """(degraded, clean) image file pairs; ids are degraded-file paths relative to ``root``.

    ``get_pair(i)`` reads both and checks that their sizes agree; ``get(i)`` is the clean one,
    so a pair source is also a clean source.

    Example:
        >>> import tempfile, os, torch
        >>> from forgetir.data.io import write_image
        >>> d = tempfile.mkdtemp()
        >>> write_image(os.path.join(d, "in.png"), torch.rand(3, 4, 4))
        >>> write_image(os.path.join(d, "gt.png"), torch.rand(3, 4, 4))
        >>> pairs = PairedImages([(os.path.join(d, "in.png"), os.path.join(d, "gt.png"))], d, "x")
        >>> [t.shape[-1] for t in pairs.get_pair(0)]
        [4, 4]
    """

    def __init__(
        self,
        pairs: Sequence[tuple[str | os.PathLike[str], str | os.PathLike[str]]],
        root: str | os.PathLike[str],
        label: str,
        kind: str = "pairs",
        task: str | None = None,
    ) -> None:
        if not pairs:
            raise ValueError(f"{label}: no image pairs")
        self.inputs = [Path(a) for a, _ in pairs]
        self.targets = [Path(b) for _, b in pairs]
        self.root = Path(root)
        self.label = label
        self.kind = kind
        self.task = task
        self.unmatched: dict[str, list[str]] = {}
        self._names = [_rel(p, self.root) for p in self.inputs]
        self._hashes: dict[tuple[int, int], str] = {}

    def __len__(self) -> int:
        return len(self.inputs)

    def path(self, i: int) -> Path:
        return self.inputs[i]

    def target_path(self, i: int) -> Path:
        return self.targets[i]

    def get_pair(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        degraded = read_image(self.inputs[i])
        clean = read_image(self.targets[i])
        if degraded.shape != clean.shape:
            raise PairSizeError(
                f"image pair sizes differ: {self.inputs[i]} is "
                f"{degraded.shape[1]}x{degraded.shape[2]} but {self.targets[i]} is "
                f"{clean.shape[1]}x{clean.shape[2]} (height x width)"
            )
        return degraded, clean

    def get(self, i: int) -> torch.Tensor:
        return read_image(self.targets[i])

    def name(self, i: int) -> str:
        return self._names[i]

    def content_class(self, i: int) -> str | None:
        return None

    def _hash(self, i: int, side: int) -> str:
        key = (i, side)
        if key not in self._hashes:
            self._hashes[key] = sha256_file(self.inputs[i] if side == 0 else self.targets[i])
        return self._hashes[key]

    def sha256(self, i: int) -> str:
        return self._hash(i, 0)

    def entry(self, i: int) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "id": self.name(i),
            "path": self.name(i),
            "sha256": self._hash(i, 0),
            "target": _rel(self.targets[i], self.root),
            "target_sha256": self._hash(i, 1),
        }
        if self.task is not None:
            rec["task"] = self.task
        return rec

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "root": str(self.root), "count": len(self)}
        if self.task is not None:
            out["task"] = self.task
        return out


def paired_folders(
    input_dir: str | os.PathLike[str],
    target_dir: str | os.PathLike[str],
    strict: bool = True,
    task: str | None = None,
    root: str | os.PathLike[str] | None = None,
) -> PairedImages:
    """Pairs of same-named files in ``input_dir`` (degraded) and ``target_dir`` (clean).

    With ``strict`` (the default) a name found on one side only is an error listing the first
    few such names and their count; otherwise the common names are kept and the rest recorded
    in ``.unmatched``. Ids are input paths relative to ``root`` (default: the folders'
    common parent).

    Example:
        >>> import tempfile, os, torch
        >>> from forgetir.data.io import write_image
        >>> d = tempfile.mkdtemp()
        >>> for side in ("input", "target"):
        ...     write_image(os.path.join(d, side, "1.png"), torch.rand(3, 4, 4))
        >>> len(paired_folders(os.path.join(d, "input"), os.path.join(d, "target")))
        1
    """
    input_dir, target_dir = Path(input_dir), Path(target_dir)
    inputs = {p.name: p for p in list_images(input_dir)}
    targets = {p.name: p for p in list_images(target_dir)}
    only_in = sorted(set(inputs) - set(targets))
    only_tg = sorted(set(targets) - set(inputs))
    if strict and (only_in or only_tg):
        parts = []
        if only_in:
            parts.append(f"{len(only_in)} only in {input_dir}: {_listing(only_in)}")
        if only_tg:
            parts.append(f"{len(only_tg)} only in {target_dir}: {_listing(only_tg)}")
        raise InputFileError("paired folders do not match: " + "; ".join(parts))
    common = sorted(set(inputs) & set(targets))
    if not common:
        raise InputFileError(f"no file name is shared by {input_dir} and {target_dir}")
    if root is None:
        root = os.path.commonpath([input_dir.resolve(), target_dir.resolve()])
    pairs = [(inputs[n], targets[n]) for n in common]
    out = PairedImages(pairs, root, label=f"{input_dir} -> {target_dir}", kind="paired", task=task)
    out.unmatched = {"input_only": only_in, "target_only": only_tg}
    return out


def check_min_size(image: torch.Tensor, min_side: int, path: str | os.PathLike[str] | None) -> None:
    """Raise ImageReadError naming ``path`` when ``image`` is smaller than ``min_side``."""
    h, w = image.shape[-2:]
    if h < min_side or w < min_side:
        raise ImageReadError(
            f"image {path} is {h}x{w} (height x width), smaller than the "
            f"{min_side}x{min_side} patch size; remove it or lower data.patch_size"
        )
