"""The reproduce grid, pinned: ``build_plan`` gives exactly the plan it gave before the grid's
cells became a table (hashes of a canonical JSON of each plan, made with the old code).

Re-pinned once since, when ``proxy-retrain-guarded`` was registered: every registered method
gets a ``methods/`` cell, and with that method's cells filtered out the plans hashed exactly to
the old pins. A new method changes these hashes; re-pin after checking the same way.
Re-pinned "paper" and "paper-noroot" when reproduce's ``--ut KIND=PATH`` became ``--ut-KIND``:
with the note's "--ut-instances PATH" written back as "--ut instances=PATH" they hash exactly
to the old pins."""

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest

from forgetir.reproduce import ReproduceOptions, build_plan

CASES = {
    "cpu": dict(scale="cpu", out="/x"),
    "cpu-retrain": dict(scale="cpu", out="/x", retrain=True, train_overrides=["train.steps=5"]),
    "cpu-seeds1-steps": dict(
        scale="cpu", out="/x", seeds=1, steps=30, batch_size=4, seed=3, threads=2
    ),
    "cpu-ut": dict(
        scale="cpu",
        out="/x",
        ut={"dehaze": "a.safetensors", "instances": "i.safetensors"},
        checkpoint="b.safetensors",
    ),
    "paper": dict(scale="paper", out="/x", root="/data"),
    "paper-retrain": dict(scale="paper", out="/x", retrain=True, root="/data"),
    "paper-ut-inst": dict(scale="paper", out="/x", ut={"instances": "i.ckpt"}, steps=100),
    "paper-noroot": dict(scale="paper"),
}

PINNED = {
    "cpu": "f3c9fe8b2721b2a0bc4e948c819733c41caea228a501472d4bdd272b9e74491e",
    "cpu-retrain": "be3b433c852c9d46a96ed3dac3335632f00d14d00522f48192675ad7eeacd601",
    "cpu-seeds1-steps": "9d432c070c05620a675ba3822f4f003f26033f27f3202f4cb752d5355c724fc4",
    "cpu-ut": "ebd235ebcd46ea17da4ab41b8542f1a131694474a9fa8e7c8fbe086ec86bd946",
    "paper": "2d0e3c26b49536e1131cee556bbeaec0b9116bf74f6ee89250458e34bf2c791c",
    "paper-noroot": "ac96c0a5bc92c0dd5b6a5049cc18b519b3b9eda797efd80b6b058a3746ab93a6",
    "paper-retrain": "d6edf33b17362c5750c1b67ba0ca32f0c5f6931c8f876a8df16ab590a0cf5ddb",
    "paper-ut-inst": "5b86a49fad6d74be83932b181878effebc0c8017f9664ce99d581fd3889f5e0f",
}


def canonical(case: dict) -> str:
    """The plan of ``case`` as JSON: every cell field, its description, the models and splits
    in order (a shipped manifest by file name, so the install folder does not matter)."""
    plan = build_plan(ReproduceOptions(**case))
    splits = []
    for spec in plan.splits.values():
        d = dataclasses.asdict(spec)
        d["manifest"] = d["manifest"] and Path(d["manifest"]).name
        splits.append(d)
    data = {
        "scale": plan.scale,
        "out": str(plan.out),
        "cells": [dataclasses.asdict(c) | {"describe": c.describe()} for c in plan.cells],
        "models": list(plan.models.items()),
        "splits": splits,
        "notes": plan.notes,
    }
    return json.dumps(data, sort_keys=True, default=list)


@pytest.mark.parametrize("name", sorted(CASES))
def test_plan_is_unchanged(name):
    text = canonical(CASES[name])
    assert hashlib.sha256(text.encode()).hexdigest() == PINNED[name], text[:2000]
