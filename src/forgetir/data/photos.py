"""Natural test photos that ship inside installed packages: nothing is downloaded.

scikit-image ships astronaut, chelsea, coffee, rocket and both views of the stereo motorcycle;
matplotlib ships grace_hopper. They are the embedded default's *test* images, so nothing in
the training data may be derived from them (the dead-leaves palette uses other images).

Example:
    >>> from forgetir.data.photos import load_photo
    >>> load_photo("astronaut").shape
    torch.Size([1, 3, 512, 512])
    >>> load_photo("chelsea", multiple_of=16).shape
    torch.Size([1, 3, 288, 448])
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from forgetir.data.deadleaves import deadleaves_test_set  # noqa: F401  (a test set too)

SHIPPED_PHOTOS: tuple[str, ...] = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "motorcycle_left",
    "motorcycle_right",
    "grace_hopper",
)


@functools.cache
def _read(name: str) -> np.ndarray:
    """The photo as a read-only (H,W,3) uint8 array (decoded once per process)."""
    if name == "grace_hopper":
        from matplotlib import cbook

        with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as im:
            arr = np.asarray(im.convert("RGB"))
    else:
        import skimage.data

        if name in ("motorcycle_left", "motorcycle_right"):
            left, right, _ = skimage.data.stereo_motorcycle()
            arr = left if name == "motorcycle_left" else right
        else:
            arr = getattr(skimage.data, name)()
    arr = np.ascontiguousarray(arr[..., :3], dtype=np.uint8)
    arr.flags.writeable = False
    return arr


def load_photo(name: str, max_side: int | None = None, multiple_of: int | None = None) -> Tensor:
    """One shipped photo as a (1,3,H,W) float tensor in [0,1] (multiples of 1/255).

    ``max_side``: shrink (Lanczos, antialiased, on the uint8 image, keeping the aspect ratio)
    so that the longer side is at most this many pixels; never enlarges.
    ``multiple_of``: then centre-crop both sides to a multiple of this (the ``promptir``
    protocol crops to a multiple of 16 before inference).
    """
    if name not in SHIPPED_PHOTOS:
        raise ValueError(f"unknown photo {name!r}; valid choices: {', '.join(SHIPPED_PHOTOS)}")
    arr = _read(name)
    h, w = arr.shape[:2]
    if max_side is not None:
        if max_side < 1:
            raise ValueError(f"max_side must be >= 1, got {max_side}")
        scale = max_side / max(h, w)
        if scale < 1:
            h, w = max(1, round(h * scale)), max(1, round(w * scale))
            arr = np.asarray(Image.fromarray(arr).resize((w, h), Image.Resampling.LANCZOS))
    if multiple_of is not None:
        if multiple_of < 1:
            raise ValueError(f"multiple_of must be >= 1, got {multiple_of}")
        ch, cw = h - h % multiple_of, w - w % multiple_of
        if ch == 0 or cw == 0:
            raise ValueError(f"photo {name!r} ({h}x{w}) is smaller than multiple_of={multiple_of}")
        top, left = (h - ch) // 2, (w - cw) // 2
        arr = arr[top : top + ch, left : left + cw]
    x = torch.from_numpy(np.array(arr, dtype=np.float32)).permute(2, 0, 1) / 255.0
    return x.unsqueeze(0).contiguous()


def shipped_photos(
    max_side: int | None = None, multiple_of: int | None = None
) -> dict[str, Tensor]:
    """All shipped photos, ``{name: (1,3,H,W) tensor}`` in :data:`SHIPPED_PHOTOS` order.

    Example:
        >>> photos = shipped_photos(max_side=128)
        >>> list(photos) == list(SHIPPED_PHOTOS), max(photos["coffee"].shape[-2:])
        (True, 128)
    """
    return {n: load_photo(n, max_side=max_side, multiple_of=multiple_of) for n in SHIPPED_PHOTOS}
