"""Registry and task names: every task on every call path."""

import json

import pytest
import torch

from forgetir.degradations import (
    TASKS,
    degrade,
    degrade_each,
    get_degradation,
    list_degradations,
    list_tasks,
    register_degradation,
    task_family,
)


def test_names():
    assert list_degradations() == ["haze", "inpaint", "noise", "rain"]
    assert TASKS == ("dehaze", "derain", "denoise_15", "denoise_25", "denoise_50")
    assert list_tasks()[: len(TASKS)] == list(TASKS)
    assert {"inpaint_4", "inpaint_8"} <= set(list_tasks())
    assert task_family("denoise_25") == ("noise", {"sigma": 25})
    assert task_family("dehaze") == ("haze", {})
    assert task_family("inpaint_8") == ("inpaint", {"area_ratio": 0.5})
    fam, params = task_family("denoise_15")
    params["sigma"] = 99  # a copy: the table must not change
    assert task_family("denoise_15")[1] == {"sigma": 15}


def test_unknown_names_list_choices():
    with pytest.raises(ValueError) as err:
        degrade("desnow", torch.rand(1, 3, 8, 8), 0)
    assert all(t in str(err.value) for t in list_tasks())
    with pytest.raises(ValueError, match="noise, rain"):
        get_degradation("snow")
    with pytest.raises(ValueError, match="twice"):
        register_degradation("noise")(lambda clean, generator: (clean, {}))


def _jsonable(params):
    return json.dumps(
        {k: v.tolist() if isinstance(v, torch.Tensor) else v for k, v in params.items()}
    )


@pytest.mark.parametrize("task", list_tasks())
def test_every_task_shape_range_seed_and_json(task):
    clean = torch.rand(2, 3, 24, 40)
    out, params = degrade(task, clean, 3)
    assert out.shape == clean.shape and out.dtype == clean.dtype
    assert out.min() >= 0 and out.max() <= 1
    assert not torch.equal(out, clean)
    again, _ = degrade(task, clean, torch.Generator().manual_seed(3))
    assert out.numpy().tobytes() == again.numpy().tobytes()
    _jsonable(params)
    family, fixed = task_family(task)
    direct, _ = get_degradation(family)(clean, 3, **fixed)
    assert torch.equal(direct, out)


def test_degrade_each_does_not_depend_on_batch():
    x = torch.rand(3, 3, 16, 16)
    y, params = degrade_each("denoise_25", x, [5, 6, 7])
    y_last, _ = degrade_each("denoise_25", x[2:], [7])
    assert torch.equal(y[2:], y_last) and len(params) == 3
    with pytest.raises(ValueError, match="seeds"):
        degrade_each("denoise_25", x, [1])


def test_rejects_bad_images():
    with pytest.raises(ValueError, match="float"):
        degrade("derain", torch.zeros(1, 3, 8, 8, dtype=torch.uint8), 0)
    with pytest.raises(TypeError, match="Tensor"):
        degrade("derain", [[0.0]], 0)
