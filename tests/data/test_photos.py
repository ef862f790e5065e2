"""Shipped test photos: names, shapes, resizing and cropping."""

import pytest
import torch

from forgetir.data.photos import SHIPPED_PHOTOS, load_photo, shipped_photos

SHAPES = {
    "astronaut": (512, 512),
    "chelsea": (300, 451),
    "coffee": (400, 600),
    "rocket": (427, 640),
    "motorcycle_left": (500, 741),
    "motorcycle_right": (500, 741),
    "grace_hopper": (600, 512),
}


def test_names():
    assert SHIPPED_PHOTOS == tuple(SHAPES)


@pytest.mark.parametrize("name", SHIPPED_PHOTOS)
def test_full_size_shapes_and_values(name):
    x = load_photo(name)
    assert x.shape == (1, 3, *SHAPES[name]) and x.dtype == torch.float32
    assert x.min() >= 0 and x.max() <= 1 and x.std() > 0.05
    assert torch.allclose(x * 255, (x * 255).round(), atol=1e-4)  # as read from uint8
    assert not torch.equal(x[:, 0], x[:, 1])  # colour, not grey


def test_motorcycle_views_differ():
    assert not torch.equal(load_photo("motorcycle_left"), load_photo("motorcycle_right"))


def test_crop_and_resize():
    x = load_photo("chelsea", multiple_of=16)
    assert x.shape == (1, 3, 288, 448)
    full = load_photo("chelsea")
    assert torch.equal(x, full[:, :, 6:294, 1:449])  # centre crop
    small = load_photo("rocket", max_side=128, multiple_of=8)
    assert small.shape == (1, 3, 80, 128)  # 427x640 -> 85x128 -> 80x128
    assert load_photo("astronaut", max_side=1000).shape == (1, 3, 512, 512)  # never enlarges
    photos = shipped_photos(max_side=64)
    assert list(photos) == list(SHIPPED_PHOTOS)
    assert all(max(p.shape[-2:]) == 64 for p in photos.values())


def test_bad_names_and_options():
    with pytest.raises(ValueError, match="astronaut, chelsea"):
        load_photo("lena")
    with pytest.raises(ValueError, match="multiple_of"):
        load_photo("astronaut", multiple_of=0)
    with pytest.raises(ValueError, match="max_side"):
        load_photo("astronaut", max_side=0)
