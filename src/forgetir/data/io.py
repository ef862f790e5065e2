"""Image files in and out: ``read_image`` / ``write_image``, with clear errors for bad files.

``read_image`` returns a (3, H, W) float32 tensor in [0, 1]. Conversions (all documented, all
tested):

- 8-bit RGB: divided by 255.
- grayscale (``L``, ``1``): replicated to three channels.
- palette (``P``): expanded to RGB through its palette.
- alpha (``RGBA``, ``LA``, ``PA``): the alpha channel is dropped and the colour kept as stored,
  exactly what the official PromptIR/AdaIR loaders do (``Image.open(p).convert("RGB")``), so our
  numbers match theirs on the same files.
- 16-bit grayscale (``I;16*`` and the 32-bit ``I`` mode Pillow uses for some 16-bit PNGs):
  divided by 65535 (not 255, which would clip most of the range).
- 16-bit-per-channel RGB PNG: Pillow decodes these to 8 bits per channel (the high byte), so the
  result equals value / 65535 to within 1/255: right scale, 8-bit precision.
- other modes (CMYK, YCbCr, LAB, HSV): converted by Pillow to RGB.
- float (``F``) images are accepted only when their values already lie in [0, 1].

EXIF orientation is ignored, as in the official loaders: datasets are stored as they are used.
Truncated files are errors: we never turn on Pillow's ``LOAD_TRUNCATED_IMAGES`` (which silently
fills the missing part with grey) and force a full decode with ``load()``.

Example:
    >>> import tempfile, os, torch
    >>> d = tempfile.mkdtemp(); p = os.path.join(d, "x.png")
    >>> write_image(p, torch.full((3, 4, 5), 0.5))
    >>> read_image(p).shape
    torch.Size([3, 4, 5])
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFile

from forgetir.atomic import atomic_path
from forgetir.checkpoint import sha256_file
from forgetir.errors import InputFileError

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageReadError",
    "image_size",
    "read_image",
    "sha256_file",
    "tensor_sha256",
    "write_image",
]

# Extensions we treat as images when listing folders (lower case).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


class ImageReadError(InputFileError):
    """An image file is missing, empty, corrupt, truncated or of an unusable kind."""


def _check_file(path: Path) -> None:
    if not path.exists():
        raise ImageReadError(f"image file not found: {path}")
    if not path.is_file():
        raise ImageReadError(f"not an image file (it is a directory or special file): {path}")
    if path.stat().st_size == 0:
        raise ImageReadError(f"image file is empty (0 bytes): {path}")


def _to_array(img: Image.Image, path: Path) -> np.ndarray:
    """Pixels of ``img`` as float32 (H, W, 3) in [0, 1] following the module's conversions."""
    mode = img.mode
    if mode in _SIXTEEN_BIT_MODES or mode == "I":
        arr = np.asarray(img).astype(np.float64)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise ImageReadError(
                f"{path}: integer image (mode {mode}) has values outside 0..65535 "
                f"({arr.min():.0f}..{arr.max():.0f}); cannot map it to [0, 1]"
            )
        gray = (arr / 65535.0).astype(np.float32)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "F":
        arr = np.asarray(img).astype(np.float32)
        if arr.size and (not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1):
            raise ImageReadError(
                f"{path}: float image (mode F) must hold values in [0, 1]; "
                f"found {np.nanmin(arr):.4g}..{np.nanmax(arr):.4g}"
            )
        return np.repeat(arr[..., None], 3, axis=2)
    if mode != "RGB":
        # L, 1, P, RGBA, LA, PA, CMYK, YCbCr, ...: Pillow's conversion drops alpha, expands
        # palettes and replicates gray, which is the documented behaviour.
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8).astype(np.float32) / 255.0


def read_image(path: str | os.PathLike[str]) -> torch.Tensor:
    """Read an image file as a (3, H, W) float32 tensor in [0, 1].

    Raises ImageReadError naming the file when it is missing, empty, not an image, corrupt or
    truncated. See the module docstring for the mode conversions.

    Example:
        >>> import tempfile, os, torch
        >>> p = os.path.join(tempfile.mkdtemp(), "a.png")
        >>> write_image(p, torch.zeros(3, 2, 2))
        >>> float(read_image(p).max())
        0.0
    """
    path = Path(path)
    _check_file(path)
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # Some other library turned it on for the whole process; we cannot tell truncated
        # files from whole ones any more, so say so rather than train on grey fill silently.
        warnings.warn(
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True in this process (set outside forgetir): "
            f"truncated images such as a cut-off {path.suffix or 'image'} file will load with "
            "grey fill instead of raising an error",
            RuntimeWarning,
            stacklevel=2,
        )
    try:
        with warnings.catch_warnings():
            # A decompression-bomb warning is not our business; corrupt data is.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()  # force the full decode so truncation surfaces here, not later
                arr = _to_array(img, path)
    except ImageReadError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        # Pillow reports truncation as OSError("image file is truncated ...") and broken PNG
        # chunks as SyntaxError; UnidentifiedImageError is an OSError.
        raise ImageReadError(f"cannot read image {path}: {e}") from e
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(height, width) of an image file from its header, without decoding the pixels.

    Example:
        >>> import tempfile, os, torch
        >>> p = os.path.join(tempfile.mkdtemp(), "a.png")
        >>> write_image(p, torch.zeros(3, 2, 5))
        >>> image_size(p)
        (2, 5)
    """
    path = Path(path)
    _check_file(path)
    try:
        with Image.open(path) as img:
            w, h = img.size
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageReadError(f"cannot read image {path}: {e}") from e
    return h, w


def _to_uint8(tensor: torch.Tensor) -> np.ndarray:
    """(3,H,W) or (1,3,H,W) or (H,W) float in [0,1] -> (H,W,3) or (H,W) uint8, rounded."""
    t = tensor.detach().to("cpu", torch.float32)
    if t.dim() == 4:
        if t.shape[0] != 1:
            raise ValueError(f"write_image takes one image; got a batch of shape {tuple(t.shape)}")
        t = t[0]
    if t.dim() == 3 and t.shape[0] == 1:
        t = t[0]
    if t.dim() == 3 and t.shape[0] != 3:
        raise ValueError(f"expected (3, H, W) or (H, W) image, got shape {tuple(t.shape)}")
    if t.dim() not in (2, 3):
        raise ValueError(f"expected (3, H, W) or (H, W) image, got shape {tuple(t.shape)}")
    arr = (t.clamp(0, 1) * 255.0).round().to(torch.uint8).numpy()
    return arr.transpose(1, 2, 0) if arr.ndim == 3 else arr


def tensor_sha256(tensor: torch.Tensor) -> str:
    """SHA-256 of an image quantised to uint8 (rounded), laid out (C, H, W), plus its shape.

    Identifies generated images (dead leaves, shipped photos) the way a file hash identifies
    files: two images hash equal iff their 8-bit pixels and shape are equal.

    Example:
        >>> import torch
        >>> tensor_sha256(torch.zeros(3, 2, 2)) == tensor_sha256(torch.zeros(3, 2, 2))
        True
    """
    t = tensor.detach().to("cpu", torch.float32)
    q = (t.clamp(0, 1) * 255.0).round().to(torch.uint8).contiguous()
    digest = hashlib.sha256()
    digest.update(("x".join(str(s) for s in q.shape)).encode() + b"\n")
    digest.update(q.numpy().tobytes())
    return digest.hexdigest()


def write_image(path: str | os.PathLike[str], tensor: torch.Tensor) -> None:
    """Write a [0, 1] image tensor to ``path`` (format from the extension), atomically.

    The file is written to a temporary name in the same folder and moved into place, so a crash
    never leaves a half-written image. Values are clamped to [0, 1] and rounded to 8 bits.

    Example:
        >>> import tempfile, os, torch
        >>> p = os.path.join(tempfile.mkdtemp(), "b.png")
        >>> write_image(p, torch.rand(1, 3, 8, 8))
        >>> os.path.exists(p)
        True
    """
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(
            f"cannot tell the image format of {path} from its extension; "
            f"use one of: {', '.join(IMAGE_EXTENSIONS)}"
        )
    img = Image.fromarray(_to_uint8(tensor))
    with atomic_path(path) as tmp:
        img.save(tmp, format=fmt)
