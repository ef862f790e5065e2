"""Typed records: round trips, unknown keys kept, errors naming the file."""

from __future__ import annotations

import json

import pytest

from forgetir.errors import InputFileError
from forgetir.records import (
    FileRecord,
    ModelMeta,
    QualityTable,
    RunRecord,
    SplitRecord,
    VerificationRecord,
)


def _run() -> RunRecord:
    return RunRecord(
        method="accurate-forgetting",
        parent=FileRecord("/w/before.safetensors", "a" * 64),
        split=SplitRecord(
            "degradation", ["dehaze"], ["derain"], FileRecord("split.json", "b" * 64)
        ),
        ut=FileRecord("/w/ut.safetensors", "c" * 64),
        files={"model": FileRecord("model.safetensors", "d" * 64)},
        forget_tasks=("dehaze",),
        steps=20,
        wall_time_s=float("inf"),
        extra={"seeds": [0, 1]},  # a key another forgetir version writes
    )


def test_run_record_round_trip_keeps_unknown_keys():
    data = json.loads(json.dumps(_run().to_json()))
    assert data["format"] == "forgetir-run" and data["version"] == 2
    assert data["seeds"] == [0, 1] and data["wall_time_s"] == "inf"
    back = RunRecord.from_json(data, "run.json")
    assert back.files["model"].sha256 == "d" * 64
    assert back.extra == {"seeds": [0, 1]} and back.forget_tasks == ("dehaze",)
    assert back.to_json() == data


def test_old_run_json_without_version_reads():
    old = {k: v for k, v in _run().to_json().items() if k not in ("format", "version", "files")}
    back = RunRecord.from_json(old, "run.json")
    assert back.files == {} and back.parent.path == "/w/before.safetensors"


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ([], "runs/x/run.json must hold a JSON object"),
        ({"method": "m", "split": {"kind": "degradation"}}, "lacks required key.*parent"),
        ({"method": "m", "parent": {"path": "p"}, "split": {"kind": "d"}}, "parent lacks.*sha256"),
        (
            {"method": "m", "parent": {"path": "p", "sha256": "0"}, "split": {}, "version": 9},
            "runs/x/run.json has version 9",
        ),
    ],
)
def test_bad_run_json_names_the_file(data, match):
    with pytest.raises(InputFileError, match=match):
        RunRecord.from_json(data, "runs/x/run.json")


def test_model_meta_steps_rule():
    train = {"arch": "a", "args": {}, "sha256": "0", "step": 1500, "steps": 9999}
    assert ModelMeta.from_json(train, "m.json").steps == 1500  # the step the engine reached
    unlearn = {"arch": "a", "args": {}, "sha256": "0", "steps": 20, "method": "x"}
    assert ModelMeta.from_json(unlearn, "m.json").steps == 20
    meta = ModelMeta.from_json(
        {**train, "config": {"train": {"batch_size": 8}, "data": {"size": 3}}}, "m.json"
    )
    assert meta.train_batch_size == 8 and meta.data_config == {"size": 3}
    with pytest.raises(InputFileError, match="m.json lacks"):
        ModelMeta.from_json({"arch": "a"}, "m.json")


def test_quality_and_verification_round_trip():
    q = QualityTable("promptir", "photos", {"BEFORE": {"dehaze": {"psnr": 20.0}}})
    assert QualityTable.from_json(q.to_json(), "q.json") == q
    v = VerificationRecord(
        "promptir", "photos", ("dehaze",), (), verdict={"verdict": "forgotten"},
        checks={"gaps": {"tasks": {}}, "cost": None},
    )  # fmt: skip
    data = v.to_json()
    assert list(data)[:3] == ["format", "version", "verdict"]
    assert VerificationRecord.from_json(data, "v.json") == v
