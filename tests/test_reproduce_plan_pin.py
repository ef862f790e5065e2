"""The reproduce grid, pinned: ``build_plan`` gives exactly the plan it gave before the grid's
cells became a table (hashes of a canonical JSON of each plan, made with the old code).

Re-pinned once since, when ``proxy-retrain-guarded`` was registered: every registered method
gets a ``methods/`` cell, and with that method's cells filtered out the plans hashed exactly to
the old pins. A new method changes these hashes; re-pin after checking the same way.
Re-pinned "paper" and "paper-noroot" when reproduce's ``--ut KIND=PATH`` became ``--ut-KIND``:
with the note's "--ut-instances PATH" written back as "--ut instances=PATH" they hash exactly
to the old pins.
Re-pinned when ``proxy-retrain-full`` was registered: with its ``methods/`` cell filtered out
every plan hashed exactly to the previous pins."""

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
    "cpu": "c2f37305500c21df860a03bc74ac27902203340d4bf5da28ea14a1fdedb75259",
    "cpu-retrain": "43bc71a9408da2c0d5acc379dfa205d9fc1bb20110ab4b04eb98c529a2188692",
    "cpu-seeds1-steps": "d69a8b2f1b1bfc7214044e9f981d3a3d8685412ad2cd2ff131d723199119b1e8",
    "cpu-ut": "f063713ce54013bb61e79f76572f2ef65a3dca19ac9e0a613948a8b8e0995afd",
    "paper": "4a676d384f3375810f151853b6a850be7fe1fec5cb714b7daf67e19325f85872",
    "paper-noroot": "6e15b315d7b700f8d2d4a1e4def970f10648ae25a2c83af5d05ff1bc2f52a585",
    "paper-retrain": "199fba97417094ec5b5d63e614c94d96b90e8c4f468036af4579aaf7ac118951",
    "paper-ut-inst": "68f72ed348061eef5aa912832cd80aa8a1dd112b9b9c07b0ba26eecb387856a4",
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
