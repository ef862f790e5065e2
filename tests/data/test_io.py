"""read_image / write_image: conversions and clear errors on bad files."""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from forgetir.data.io import (
    ImageReadError,
    image_size,
    read_image,
    sha256_file,
    tensor_sha256,
    write_image,
)


def _png16_rgb(a: np.ndarray) -> bytes:
    """A minimal 16-bit-per-channel RGB PNG (Pillow cannot write these)."""
    h, w, _ = a.shape
    raw = b"".join(b"\x00" + a[y].astype(">u2").tobytes() for y in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def test_round_trip_png_is_exact_on_8bit_values(tmp_path):
    x = torch.randint(0, 256, (3, 7, 9)).float() / 255
    p = tmp_path / "a.png"
    write_image(p, x)
    y = read_image(p)
    assert y.dtype == torch.float32 and y.shape == (3, 7, 9)
    assert torch.equal(y, x)
    assert image_size(p) == (7, 9)


def test_write_accepts_batch_of_one_and_rejects_batches(tmp_path):
    write_image(tmp_path / "one.png", torch.rand(1, 3, 4, 4))
    assert read_image(tmp_path / "one.png").shape == (3, 4, 4)
    with pytest.raises(ValueError, match="batch"):
        write_image(tmp_path / "two.png", torch.rand(2, 3, 4, 4))
    with pytest.raises(ValueError, match="extension"):
        write_image(tmp_path / "x.unknown", torch.rand(3, 4, 4))


def test_write_is_atomic_and_leaves_no_temp(tmp_path, monkeypatch):
    p = tmp_path / "keep.png"
    write_image(p, torch.zeros(3, 4, 4))
    before = p.read_bytes()

    def boom(self, fp, format=None, **kw):  # noqa: A002 - Pillow's signature
        Path(fp).write_bytes(b"partial")  # written to the temporary file, never to p
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        write_image(p, torch.ones(3, 4, 4))
    assert p.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["keep.png"]


def test_missing_empty_directory_and_garbage_files_name_the_file(tmp_path):
    with pytest.raises(ImageReadError, match="not found.*nope.png"):
        read_image(tmp_path / "nope.png")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageReadError, match=r"empty \(0 bytes\).*empty.png"):
        read_image(empty)
    with pytest.raises(ImageReadError, match="directory"):
        read_image(tmp_path)
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(os.urandom(300))
    with pytest.raises(ImageReadError, match="junk.jpg"):
        read_image(junk)
    with pytest.raises(ImageReadError, match="junk.jpg"):
        image_size(junk)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_files_are_errors(tmp_path, fmt):
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    full = tmp_path / f"full.{fmt.lower()}"
    Image.fromarray(arr).save(full, format=fmt)
    data = full.read_bytes()
    cut = tmp_path / f"cut.{fmt.lower()}"
    cut.write_bytes(data[: len(data) // 2])
    read_image(full)  # the intact file reads
    with pytest.raises(ImageReadError, match=f"cut.{fmt.lower()}"):
        read_image(cut)


def test_warns_when_someone_enabled_truncated_loading(tmp_path, monkeypatch):
    write_image(tmp_path / "ok.png", torch.zeros(3, 2, 2))
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.warns(RuntimeWarning, match="LOAD_TRUNCATED_IMAGES is True"):
        read_image(tmp_path / "ok.png")


def test_grayscale_is_replicated(tmp_path):
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(arr, mode="L").save(tmp_path / "g.png")
    x = read_image(tmp_path / "g.png")
    assert x.shape == (3, 3, 4)
    for c in range(3):
        assert torch.equal(x[c], torch.from_numpy(arr).float() / 255)


def test_rgba_drops_alpha_keeping_colour(tmp_path):
    arr = np.zeros((2, 2, 4), dtype=np.uint8)
    arr[..., 0] = 200
    arr[..., 3] = 0  # fully transparent: colour still kept (official loaders do the same)
    Image.fromarray(arr, mode="RGBA").save(tmp_path / "a.png")
    x = read_image(tmp_path / "a.png")
    assert x.shape == (3, 2, 2)
    assert torch.allclose(x[0], torch.full((2, 2), 200 / 255))
    assert float(x[1:].abs().max()) == 0.0


def test_palette_is_expanded(tmp_path):
    img = Image.new("P", (3, 2))
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.putpixel((1, 0), 1)
    img.save(tmp_path / "p.png")
    x = read_image(tmp_path / "p.png")
    assert x[:, 0, 0].tolist() == [1.0, 0.0, 0.0]
    assert x[:, 0, 1].tolist() == [0.0, 0.0, 1.0]


def test_16bit_gray_is_scaled_by_65535_not_clipped(tmp_path):
    arr = np.array([[0, 1000, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(arr).save(tmp_path / "g16.png")
    x = read_image(tmp_path / "g16.png")
    assert x.shape == (3, 1, 4)
    assert torch.allclose(x[0, 0], torch.tensor(arr[0] / 65535.0, dtype=torch.float32))
    assert 0.49 < float(x[0, 0, 2]) < 0.51  # 255-scaling would have clipped this to 1


def test_16bit_rgb_png_has_the_right_scale(tmp_path):
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 65536, (5, 6, 3), dtype=np.uint16)
    p = tmp_path / "rgb16.png"
    p.write_bytes(_png16_rgb(arr))
    x = read_image(p).permute(1, 2, 0).numpy()
    assert np.abs(x - arr / 65535.0).max() <= 1 / 255 + 1e-6


def test_float_images_outside_unit_range_are_rejected(tmp_path):
    p = tmp_path / "f.tif"
    Image.fromarray(np.full((2, 2), 3.0, dtype=np.float32), mode="F").save(p)
    with pytest.raises(ImageReadError, match="f.tif"):
        read_image(p)


def test_hashes(tmp_path):
    p = tmp_path / "h.bin"
    p.write_bytes(b"hello")
    assert sha256_file(p) == hashlib.sha256(b"hello").hexdigest()
    a = torch.zeros(3, 2, 2)
    assert tensor_sha256(a) != tensor_sha256(torch.zeros(3, 4, 1))  # same bytes, other shape
    assert tensor_sha256(a) != tensor_sha256(a + 1 / 255)
