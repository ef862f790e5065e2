"""Inpainting masks: centred box, area ratio, fill value."""

import pytest
import torch

from forgetir.degradations import degrade
from forgetir.degradations.inpaint import FILL_VALUE, mask_centre


@pytest.mark.parametrize(("task", "ratio"), [("inpaint_4", 4 / 16), ("inpaint_8", 8 / 16)])
@pytest.mark.parametrize(("h", "w"), [(64, 64), (50, 70), (33, 17)])
def test_area_ratio_and_fill(task, ratio, h, w):
    clean = torch.rand(2, 3, h, w)
    out, p = degrade(task, clean, 0)
    mask = p["mask"]
    assert mask.shape == (2, 1, h, w) and mask.dtype == torch.bool
    # whole-pixel rounding of each side: within one row and one column of the exact area
    assert abs(mask[0].sum().item() - ratio * h * w) <= h + w
    assert torch.all(out[mask.expand_as(out)] == FILL_VALUE)
    assert torch.equal(out[~mask.expand_as(out)], clean[~mask.expand_as(clean)])
    top, left, bh, bw = p["box"][0]
    assert abs(top - (h - top - bh)) <= 1 and abs(left - (w - left - bw)) <= 1  # centred
    assert bh / h == pytest.approx(bw / w, abs=2 / min(h, w))  # keeps the aspect ratio
    assert p["area_ratio"] == [ratio, ratio]


def test_exact_quarter_and_options():
    out, p = mask_centre(torch.zeros(1, 3, 16, 16), 0, area_ratio=0.25, fill=1.0)
    assert p["box"] == [[4, 4, 8, 8]] and float(out.mean()) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="area_ratio"):
        mask_centre(torch.zeros(1, 3, 8, 8), 0, area_ratio=1.5)
