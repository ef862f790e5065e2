"""Image folders, class folders and paired folders: listings, matching and bad input."""

from __future__ import annotations

import pytest
import torch

from forgetir.data.folders import (
    PairSizeError,
    check_min_size,
    class_folders,
    image_folder,
    list_images,
    paired_folders,
)
from forgetir.data.io import ImageReadError, sha256_file, write_image


def _img(path, h=8, w=8, value=None):
    x = torch.rand(3, h, w) if value is None else torch.full((3, h, w), value)
    write_image(path, x)
    return path


def test_image_folder_lists_sorted_images_only(tmp_path):
    _img(tmp_path / "b.png")
    _img(tmp_path / "a.jpg")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden.png").write_bytes(b"")
    src = image_folder(tmp_path)
    assert [src.name(i) for i in range(len(src))] == ["a.jpg", "b.png"]
    assert src.get(1).shape == (3, 8, 8)
    assert src.sha256(1) == sha256_file(tmp_path / "b.png")
    assert src.entry(1) == {"id": "b.png", "path": "b.png", "sha256": src.sha256(1)}
    assert src.content_class(0) is None


def test_empty_and_missing_folders(tmp_path):
    with pytest.raises(ValueError, match=f"no image files in {tmp_path}"):
        list_images(tmp_path)
    with pytest.raises(FileNotFoundError, match="nope"):
        image_folder(tmp_path / "nope")


def test_class_folders(tmp_path):
    for c, n in (("cats", 2), ("dogs", 1)):
        for k in range(n):
            _img(tmp_path / c / f"{k}.png")
    src = class_folders(tmp_path)
    assert src.class_names == ["cats", "dogs"]
    assert [src.name(i) for i in range(3)] == ["cats/0.png", "cats/1.png", "dogs/0.png"]
    assert [src.content_class(i) for i in range(3)] == ["cats", "cats", "dogs"]
    assert src.entry(2)["class"] == "dogs"
    only = class_folders(tmp_path, classes=["dogs"])
    assert len(only) == 1
    with pytest.raises(ValueError, match="unknown class.*'birds'.*cats, dogs"):
        class_folders(tmp_path, classes=["birds"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files in .*empty"):
        class_folders(tmp_path)


def test_class_folders_reject_stray_images_and_empty_root(tmp_path):
    (tmp_path / "root").mkdir()
    with pytest.raises(ValueError, match="no class sub-folders"):
        class_folders(tmp_path / "root")
    _img(tmp_path / "root" / "cats" / "1.png")
    _img(tmp_path / "root" / "stray.png")
    with pytest.raises(ValueError, match="directly in the root: stray.png"):
        class_folders(tmp_path / "root")


def test_paired_folders_match_by_name(tmp_path):
    for name in ("1.png", "2.png"):
        _img(tmp_path / "input" / name, value=0.2)
        _img(tmp_path / "target" / name, value=0.8)
    pairs = paired_folders(tmp_path / "input", tmp_path / "target", task="derain")
    assert len(pairs) == 2
    assert pairs.name(0) == "input/1.png"
    degraded, clean = pairs.get_pair(1)
    assert abs(float(degraded.mean()) - 0.2) < 0.01 and abs(float(clean.mean()) - 0.8) < 0.01
    e = pairs.entry(0)
    assert e["target"] == "target/1.png" and e["task"] == "derain"
    assert e["target_sha256"] == sha256_file(tmp_path / "target" / "1.png")


def test_unmatched_names_are_reported(tmp_path):
    for name in ("1.png", "2.png", "3.png"):
        _img(tmp_path / "input" / name)
    _img(tmp_path / "target" / "1.png")
    _img(tmp_path / "target" / "9.png")
    with pytest.raises(ValueError, match=r"2 only in .*input: 2.png, 3.png; 1 only in .*: 9.png"):
        paired_folders(tmp_path / "input", tmp_path / "target")
    loose = paired_folders(tmp_path / "input", tmp_path / "target", strict=False)
    assert len(loose) == 1
    assert loose.unmatched == {"input_only": ["2.png", "3.png"], "target_only": ["9.png"]}


def test_pair_of_different_sizes_names_both_files(tmp_path):
    _img(tmp_path / "input" / "x.png", 8, 8)
    _img(tmp_path / "target" / "x.png", 8, 10)
    pairs = paired_folders(tmp_path / "input", tmp_path / "target")
    with pytest.raises(PairSizeError, match=r"input/x.png is 8x8 but .*target/x.png is 8x10"):
        pairs.get_pair(0)


def test_unreadable_file_in_a_folder_is_named_when_read(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"")
    src = image_folder(tmp_path)
    with pytest.raises(ImageReadError, match="bad.png"):
        src.get(0)


def test_check_min_size_names_file_and_sizes():
    check_min_size(torch.zeros(3, 16, 16), 16, "ok.png")
    with pytest.raises(ImageReadError, match=r"small.png is 12x20.*16x16 patch"):
        check_min_size(torch.zeros(3, 12, 20), 16, "small.png")
