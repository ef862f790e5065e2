"""What a run is scored on, shared by ``forgetir unlearn`` and ``forgetir verify``: the
checkpoint loader, the parent's training data, and the forget-test / retain-test sets.

Kept out of the unlearn command so that verification needs nothing from it.

Example:
    >>> split_set_names({"forget": 0, "retain:denoise_25": 0})
    (['forget'], ['retain:denoise_25'])
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from forgetir.checkpoint import load_model, read_sidecar
from forgetir.checkpoint.shipped import resolve_checkpoint
from forgetir.config import DataConfig, from_dict, load_config
from forgetir.data.testsets import TestSet, build_test_sets
from forgetir.degradations import TASKS
from forgetir.records import ModelMeta

__all__ = [
    "evaluation_sets",
    "load_eval_model",
    "model_meta",
    "parent_data_config",
    "split_set_names",
    "split_test_sets",
]


def load_eval_model(spec: str | Path, arch: str | None = None) -> nn.Module:
    """A checkpoint (``shipped:NAME``, forgetir ``.safetensors`` or published ``.ckpt``) in
    eval mode."""
    model = load_model(resolve_checkpoint(spec), arch=arch)
    model.eval()
    return model


def model_meta(path: str | Path) -> ModelMeta | None:
    """The typed sidecar of a forgetir checkpoint (None for a published ``.ckpt``)."""
    path = resolve_checkpoint(path)
    if path.suffix != ".safetensors" and not path.is_dir():
        return None
    try:
        data = read_sidecar(path)
    except FileNotFoundError:
        return None
    return ModelMeta.from_json(data, str(path))


def parent_data_config(meta: ModelMeta | None) -> DataConfig:
    """The data a checkpoint was trained on (its sidecar), else the ``cpu`` preset's."""
    if meta is not None and meta.data_config:
        return from_dict(DataConfig, dict(meta.data_config), "data.")
    return load_config("cpu").data


def evaluation_sets(
    manifest: Mapping[str, Any], datasets: Mapping[str, Any], opts: Any
) -> dict[str, Any]:
    """The test sets a run is scored on: every task's test set for a degradation split, else
    fixed patches of the forgotten and of retained training images. ``opts``: anything with
    ``test_set`` and ``test_max_side`` (the run's options)."""
    if manifest["kind"] != "degradation":
        return split_test_sets(datasets)
    # root: the promptir test set lives under the split's data root (paper scale).
    root = manifest["data"].get("root")
    return build_test_sets(opts.test_set, list(TASKS), opts.test_max_side, root)


def split_test_sets(datasets: Mapping[str, Any], n: int = 16) -> dict[str, Any]:
    """For class/instance splits: forget-test = the forgotten images, retain-test = retained
    images (about ``n`` fixed patches of each, at least 3 per task), one set per part, or per
    part and task (``"forget:denoise_25"``) when the data has several tasks."""
    sets = {}
    for part in ("forget", "retain"):
        ds = datasets[part]
        tasks = list(ds.tasks)
        per_task = max(3, -(-n // len(tasks)))
        for k, task in enumerate(tasks):
            # Item i has task tasks[i % T]: items k, k+T, ... are this task's.
            idx = range(k, min(len(ds), k + per_task * len(tasks)), len(tasks))
            items = [ds[i] for i in idx]
            name = part if len(tasks) == 1 else f"{part}:{task}"
            sets[name] = TestSet(
                task,
                f"{len(items)} {part}-set training patches of the split ({task})",
                [str(it["image"]) for it in items],
                [it["degraded"][None] for it in items],
                [it["clean"][None] for it in items],
            )
    return sets


def split_set_names(test_sets: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """The forget-test and retain-test set names of :func:`split_test_sets`."""
    forget = [k for k in test_sets if k.split(":")[0] == "forget"]
    return forget, [k for k in test_sets if k.split(":")[0] == "retain"]
