"""The reproduce grid, pinned: ``build_plan`` gives exactly the plan it gave before the grid's
cells became a table (hashes of a canonical JSON of each plan, made with the old code).

Re-pinned once since, when ``proxy-retrain-guarded`` was registered: every registered method
gets a ``methods/`` cell, and with that method's cells filtered out the plans hashed exactly to
the old pins. A new method changes these hashes; re-pin after checking the same way.
Re-pinned "paper" and "paper-noroot" when reproduce's ``--ut KIND=PATH`` became ``--ut-KIND``:
with the note's "--ut-instances PATH" written back as "--ut instances=PATH" they hash exactly
to the old pins.
Re-pinned when ``proxy-retrain-full`` was registered: with its ``methods/`` cell filtered out
every plan hashed exactly to the previous pins. Re-pinned when ``orbit-consistency`` was
registered: the plans differ from the previous ones only by its six ``methods/`` cells
(checked on the "cpu-ut" case, cell by cell)."""

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
    "cpu": "dd01d9593aed490b194b5bc48e1fd3428b49730f93c275ab607cc9cb5ee0871c",
    "cpu-retrain": "c54f238ae4a91c22ea87400e286c0a67b526f9e3db9a0c605814828c10127370",
    "cpu-seeds1-steps": "259451b2ed84985004af9378e7725e2c93b57c0bf75ab797b20f8b5ba23452f3",
    "cpu-ut": "fbaca30ea8dee70c0639651391d913b1605687ce9f3aaac00f38ded9118a0703",
    "paper": "a77f06fd1b92951b44b8082b1b4900b74e622e490e919346549e63598820d54a",
    "paper-noroot": "7f299678ce7665a83f2d72f8f89832e325e84e25119aed1f8ec0d2d9ac12b0a9",
    "paper-retrain": "a0270eccaf945bba273c979f4c6481c030296c87bb50a5f2d37d091cdbe2c824",
    "paper-ut-inst": "c654d2b87ac3742550e3c751af4f92692d9c7e14e626f5966d7f891c7940d044",
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
