"""The reproduce grid, pinned: ``build_plan`` gives exactly the plan it gave before the grid's
cells became a table (hashes of a canonical JSON of each plan, made with the old code)."""

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
    "cpu": "004b068918b29342b934dc39afafa8b1660f1a9aea88aefbdc3934c31ab14c4e",
    "cpu-retrain": "ac602730fc18daf27f0d2cd19a755d8c04e99bb7f5a9aa3c623444bd782467d2",
    "cpu-seeds1-steps": "5d5f861dfe0454faf53d44b1a862fd60d1d3d39cc37195a9c86809e74a225acd",
    "cpu-ut": "4b00674fa9b8dd8675bd118964b62f5c19b4ed732e2f7c296a308b8a26fdd24b",
    "paper": "1eae4c28d182a57d5b6b2222844f4c5bc06ae7eabf85879df76ac4050df636e2",
    "paper-noroot": "2dd2f313feda77a3b8fc9530422cc01e4530675027ed055a5ee9f74df26b810d",
    "paper-retrain": "ba1d78c9b8cfd478fad69043974e0798a44b5a4ee370e84299c2d43704795bb5",
    "paper-ut-inst": "e6c343435487ed17696450d74a5ce697a55a379f55c3197798638ac3d9d5131c",
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
