"""Image grids and plots of forgetir.render.figures."""

import pytest
import torch

from forgetir.data.testsets import build_test_sets
from forgetir.render.figures import write_image_grid, write_model_grid


def test_write_image_grid_checks_shapes(tmp_path):
    with pytest.raises(ValueError, match="2 images for 3 columns"):
        write_image_grid(tmp_path / "g.png", [("a", [torch.rand(3, 4, 4)] * 2)], "xyz")
    with pytest.raises(ValueError, match="batch"):
        write_image_grid(tmp_path / "g.png", [("a", [torch.rand(2, 3, 4, 4)])], ["x"])
    p = write_image_grid(tmp_path / "g.png", [("a", [torch.rand(4, 4), None])], ["x", "y"])
    assert p.read_bytes()[:4] == b"\x89PNG"


class _Refuses(torch.nn.Module):
    def forward(self, x):
        raise AssertionError("restored again")


def test_model_grid_uses_outputs_the_evaluation_already_restored(tmp_path):
    sets = build_test_sets("deadleaves", tasks=("dehaze", "derain"), n=1, size=16)
    known = {"unlearned": {t: torch.zeros(1, 3, 16, 16) for t in sets}}
    path = write_model_grid(
        tmp_path / "g.png", {"unlearned": _Refuses()}, sets, ["dehaze"], outputs=known
    )
    assert path.is_file()
    with pytest.raises(AssertionError, match="restored again"):
        write_model_grid(tmp_path / "h.png", {"unlearned": _Refuses()}, sets, ["dehaze"])
