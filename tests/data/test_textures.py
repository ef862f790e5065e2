"""The textured classes: the fixed motif is exact on the pixel grid; motif is opt-in."""

import torch

from forgetir.data.deadleaves import (
    CONTENT_CLASSES,
    KNOWN_CLASSES,
    dead_leaves,
    render_dead_leaves,
)
from forgetir.data.pool import DeadLeavesPool
from forgetir.data.textures import MOTIF, motif_fill


def test_motif_fill_tiles_the_motif_per_output_pixel():
    side, ss = 24, 3
    front = torch.zeros(side * ss * side * ss, dtype=torch.long)
    colours = torch.tensor([[[0.2, 0.3, 0.4], [0.9, 0.8, 0.7]]])
    pix = motif_fill(front, side * ss, ss, colours).view(side * ss, side * ss, 3)
    for y in range(0, side * ss, 5):
        for x in range(0, side * ss, 7):
            bit = bool(MOTIF[(y // ss) % 8, (x // ss) % 8])
            assert torch.equal(pix[y, x], colours[0, int(bit)])


def test_motif_images_show_the_motif_inside_leaves():
    render = render_dead_leaves(11, 64, "motif")
    img = render.image
    # pixels whose 2x2 super-samples lie in one leaf carry exactly one of its two colours;
    # across the image, the share of "second colour" pixels follows the motif's density
    lm = render.leaf_map.view(64, 2, 64, 2).permute(0, 2, 1, 3).reshape(64, 64, 4)
    pure = (lm == lm[..., :1]).all(-1)
    assert pure.float().mean() > 0.5
    assert img.shape == (3, 64, 64) and 0 <= float(img.min()) and float(img.max()) <= 1
    assert torch.equal(img, dead_leaves(11, 64, "motif"))


def test_motif_is_known_but_not_a_default_class():
    assert "motif" in KNOWN_CLASSES and "motif" not in CONTENT_CLASSES
    pool = DeadLeavesPool(4, 32, seed=1, content_classes=["disks", "motif"])
    assert pool.classes == ["disks", "motif", "disks", "motif"]
    assert not torch.equal(pool[1], dead_leaves(1, 32))
