"""PromptIR's dataset layout and file lists, read strictly.

The official PromptIR/AdaIR code expects (``root`` is their ``data/`` folder)::

    root/Train/Denoise/<WED + BSD400 images>          list: data_dir/noisy/denoise.txt
    root/Train/Derain/rainy/rain-12.png                list: data_dir/rainy/rainTrain.txt
    root/Train/Derain/gt/norain-12.png                 (clean image of rainy/rain-12.png)
    root/Train/Dehaze/synthetic/part1/0025_0.8_0.04.jpg  list: data_dir/hazy/hazy_outside.txt
    root/Train/Dehaze/original/0025.jpg                (clean: name up to the first "_")
    root/test/denoise/bsd68/<images>
    root/test/derain/Rain100L/{input,target}/<same names>
    root/test/dehaze/{input,target}/                   (target: name up to the first "_" + ".png")

List entries are relative to the task folder: ``denoise.txt`` holds bare file names,
``rainTrain.txt`` holds ``rainy/rain-N.png``, ``hazy_outside.txt`` holds
``synthetic/partK/NNNN_A_beta.jpg``. The list folder ``data_dir`` is looked for in ``root`` and
beside it (the official repository keeps ``data/`` and ``data_dir/`` side by side); AirNet's name
``denoise_airnet.txt`` is accepted as well. Without a list file the task folder is listed
(sorted) and the description says so.

Traps of the official loaders that we fix: any subset of the denoising tasks works (theirs
crashes unless ``denoise_15`` and all three sigmas are requested); list entries that match no
file are an error listing the first few and their count (theirs skips denoising names silently
and crashes mid-epoch on rain/haze ones); directory listings are sorted (theirs follow
``os.listdir`` order, which differs between machines).

Example:
    >>> layout = PromptIRLayout("/data/promptir")  # doctest: +SKIP
    >>> clean, pairs = layout.train_sources(["derain", "denoise_25"])  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from forgetir.data.folders import (
    FileImages,
    PairedImages,
    _listing,
    list_images,
    paired_folders,
)
from forgetir.errors import InputFileError, MissingInputError

__all__ = ["LIST_FILES", "PromptIRLayout", "dehaze_clean_name", "derain_clean_name"]

# Task group -> (task folder under Train/, candidate list files under data_dir/).
LIST_FILES: dict[str, tuple[str, tuple[str, ...]]] = {
    "denoise": ("Denoise", ("noisy/denoise.txt", "noisy/denoise_airnet.txt")),
    "derain": ("Derain", ("rainy/rainTrain.txt",)),
    "dehaze": ("Dehaze", ("hazy/hazy_outside.txt",)),
}
_PAIRED_TASKS = ("derain", "dehaze")  # real pairs; the other tasks are synthesised


def derain_clean_name(entry: str) -> str:
    """Clean image of a rain-list entry: ``"rainy/rain-12.png" -> "gt/norain-12.png"``."""
    p = PurePosixPath(entry)
    if not p.name.startswith("rain-"):
        raise InputFileError(
            f"rain list entry {entry!r} does not follow the Rain100L naming 'rain-N.png'; "
            "cannot derive its clean image 'norain-N.png'"
        )
    # As the official loader: keep what comes before the "rainy" folder, then "gt/".
    parts = list(p.parent.parts)
    before = parts[: parts.index("rainy")] if "rainy" in parts else []
    return str(PurePosixPath(*before, "gt", "norain-" + p.name[len("rain-") :]))


def dehaze_clean_name(entry: str, suffix: str | None = None) -> str:
    """Clean image of a haze entry: ``"synthetic/part1/0025_0.8_0.04.jpg" -> "original/0025.jpg"``.

    ``suffix`` replaces the extension (the SOTS test targets are ``.png``).
    """
    p = PurePosixPath(entry)
    stem = p.name.split("_")[0]
    if not stem or stem == p.name:
        raise InputFileError(
            f"haze entry {entry!r} does not follow the RESIDE naming 'ID_A_beta.ext'; "
            "cannot derive its clean image"
        )
    if "." in stem:  # "0025.jpg" had no "_": keep only the id
        stem = stem.split(".")[0]
    return str(PurePosixPath("original") / (stem + (suffix if suffix is not None else p.suffix)))


def _missing_error(what: str, missing: list[str], total: int, where: Path) -> InputFileError:
    return InputFileError(
        f"{what}: {len(missing)} of {total} listed files are missing under {where}: "
        f"{_listing(missing)}"
    )


class PromptIRLayout:
    """Reader of PromptIR's directory layout under ``root`` (their ``data/`` folder).

    Example:
        >>> import tempfile
        >>> PromptIRLayout(tempfile.mkdtemp())
        Traceback (most recent call last):
        ...
        forgetir.errors.MissingInputError: ...
    """

    def __init__(
        self, root: str | os.PathLike[str], list_dir: str | os.PathLike[str] | None = None
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise MissingInputError(f"PromptIR data root not found: {self.root}")
        if not (self.root / "Train").is_dir() and not (self.root / "test").is_dir():
            raise MissingInputError(
                f"{self.root} does not look like PromptIR's data folder: "
                "expected a Train/ and/or test/ sub-folder"
            )
        if list_dir is not None:
            self.list_dir: Path | None = Path(list_dir)
            if not self.list_dir.is_dir():
                raise MissingInputError(f"PromptIR list folder not found: {self.list_dir}")
        else:
            candidates = [self.root / "data_dir", self.root.parent / "data_dir"]
            self.list_dir = next((c for c in candidates if c.is_dir()), None)

    # ----------------------------------------------------------------------------- lists

    def list_file(self, group: str) -> Path | None:
        """The list file of ``group`` ("denoise", "derain", "dehaze"), or None if absent."""
        if self.list_dir is None:
            return None
        for rel in LIST_FILES[group][1]:
            p = self.list_dir / rel
            if p.is_file():
                return p
        return None

    def _task_dir(self, group: str) -> Path:
        d = self.root / "Train" / LIST_FILES[group][0]
        if not d.is_dir():
            raise MissingInputError(f"PromptIR training folder for {group} not found: {d}")
        return d

    def _entries(self, group: str, fallback: Sequence[str]) -> tuple[list[str], str]:
        """List entries (unique, in list order) and a note saying where they came from."""
        lst = self.list_file(group)
        if lst is None:
            return list(fallback), "no list file: folder listing, sorted"
        seen: dict[str, None] = {}
        try:
            lines = lst.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise InputFileError(f"cannot read the PromptIR list file {lst} as text: {e}") from e
        for line in lines:
            name = line.strip()
            if name and not name.startswith("#"):
                seen.setdefault(name, None)
        if not seen:
            raise InputFileError(f"PromptIR list file {lst} is empty")
        return list(seen), f"list {lst}"

    # ------------------------------------------------------------------------ train sets

    def denoise_images(self) -> FileImages:
        """Clean denoising images (WED + BSD400) named in ``noisy/denoise.txt``."""
        d = self._task_dir("denoise")
        entries, note = self._entries("denoise", [p.name for p in list_images(d)])
        missing = [e for e in entries if not (d / e).is_file()]
        if missing:
            raise _missing_error(f"denoise list ({note})", missing, len(entries), d)
        return FileImages(
            [d / e for e in entries],
            self.root,
            label=f"PromptIR Train/Denoise ({note})",
            kind="promptir-denoise",
        )

    def derain_pairs(self) -> PairedImages:
        """Rainy/clean pairs named in ``rainy/rainTrain.txt`` (``gt/norain-N`` for ``rain-N``)."""
        d = self._task_dir("derain")
        rainy = d / "rainy"
        fallback = [f"rainy/{p.name}" for p in list_images(rainy)] if rainy.is_dir() else []
        entries, note = self._entries("derain", fallback)
        if not entries:
            raise MissingInputError(f"no rain list file and no folder {d / 'rainy'}")
        return self._pairs("derain", d, entries, [derain_clean_name(e) for e in entries], note)

    def dehaze_pairs(self) -> PairedImages:
        """Hazy/clear pairs named in ``hazy/hazy_outside.txt`` (``original/ID.ext``)."""
        d = self._task_dir("dehaze")
        syn = d / "synthetic"
        fallback = (
            [p.relative_to(d).as_posix() for p in list_images(syn, recursive=True)]
            if syn.is_dir()
            else []
        )
        entries, note = self._entries("dehaze", fallback)
        if not entries:
            raise MissingInputError(f"no haze list file and no folder {syn}")
        return self._pairs("dehaze", d, entries, [dehaze_clean_name(e) for e in entries], note)

    def _pairs(
        self, task: str, d: Path, inputs: list[str], targets: list[str], note: str
    ) -> PairedImages:
        missing = [e for e in inputs if not (d / e).is_file()]
        if missing:
            raise _missing_error(f"{task} list ({note})", missing, len(inputs), d)
        missing = sorted({t for t in targets if not (d / t).is_file()})
        if missing:
            raise InputFileError(
                f"{task}: {len(missing)} clean images derived from the list ({note}) are "
                f"missing under {d}: {_listing(missing)}"
            )
        pairs = [(d / a, d / b) for a, b in zip(inputs, targets, strict=True)]
        return PairedImages(
            pairs,
            self.root,
            label=f"PromptIR Train/{d.name} ({note})",
            kind=f"promptir-{task}",
            task=task,
        )

    def train_sources(
        self, tasks: Sequence[str]
    ) -> tuple[FileImages | None, dict[str, PairedImages]]:
        """Sources for ``tasks``: real rain/haze pairs, and the clean denoising images on which
        every other task (the noise levels, inpainting) is synthesised.

        Only the lists of the requested tasks are read, so any subset works.
        """
        synthetic = [t for t in tasks if t not in _PAIRED_TASKS]
        clean = self.denoise_images() if synthetic else None
        pairs: dict[str, PairedImages] = {}
        if "derain" in tasks:
            pairs["derain"] = self.derain_pairs()
        if "dehaze" in tasks:
            pairs["dehaze"] = self.dehaze_pairs()
        return clean, pairs

    # ------------------------------------------------------------------------- test sets

    def test_denoise(self) -> FileImages:
        """BSD68 clean test images in ``test/denoise/bsd68`` (noise is added by the caller)."""
        d = self.root / "test" / "denoise" / "bsd68"
        return FileImages(list_images(d), self.root, label=str(d), kind="promptir-test-denoise")

    def test_derain(self) -> PairedImages:
        """Rain100L pairs ``test/derain/Rain100L/{input,target}`` with the same file names."""
        d = self.root / "test" / "derain" / "Rain100L"
        pairs = paired_folders(d / "input", d / "target", task="derain", root=self.root)
        pairs.kind = "promptir-test-derain"
        return pairs

    def test_dehaze(self) -> PairedImages:
        """SOTS-outdoor pairs: ``test/dehaze/input/ID_*.ext`` -> ``test/dehaze/target/ID.png``."""
        d = self.root / "test" / "dehaze"
        inputs = list_images(d / "input")
        targets = [
            d / "target" / PurePosixPath(dehaze_clean_name(p.name, suffix=".png")).name
            for p in inputs
        ]
        missing = sorted({t.name for t in targets if not t.is_file()})
        if missing:
            raise InputFileError(
                f"dehaze test: {len(missing)} target images missing in {d / 'target'} "
                f"(expected ID.png for each input ID_*.ext): {_listing(missing)}"
            )
        return PairedImages(
            list(zip(inputs, targets, strict=True)),
            self.root,
            label=str(d),
            kind="promptir-test-dehaze",
            task="dehaze",
        )

    def describe(self) -> dict[str, str | None]:
        return {
            "kind": "promptir",
            "root": str(self.root),
            "list_dir": str(self.list_dir) if self.list_dir else None,
        }
