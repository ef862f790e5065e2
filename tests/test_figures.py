"""Image grids and plots of forgetir.figures."""

import pytest
import torch

from forgetir.figures import write_image_grid


def test_write_image_grid_checks_shapes(tmp_path):
    with pytest.raises(ValueError, match="2 images for 3 columns"):
        write_image_grid(tmp_path / "g.png", [("a", [torch.rand(3, 4, 4)] * 2)], "xyz")
    with pytest.raises(ValueError, match="batch"):
        write_image_grid(tmp_path / "g.png", [("a", [torch.rand(2, 3, 4, 4)])], ["x"])
    p = write_image_grid(tmp_path / "g.png", [("a", [torch.rand(4, 4), None])], ["x", "y"])
    assert p.read_bytes()[:4] == b"\x89PNG"
