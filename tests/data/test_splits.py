"""Split manifests: kinds, clear errors, atomic save, validation and hash re-verification."""

from __future__ import annotations

import argparse
import json
import os

import pytest
import torch

from forgetir.cli.split import add_arguments as add_split_arguments
from forgetir.cli.split import run as split_command
from forgetir.config import DataConfig
from forgetir.data.io import write_image
from forgetir.data.splits import (
    ManifestError,
    build_split_datasets,
    load_manifest,
    make_split,
    manifest_sha256,
    save_manifest,
)

DL = dict(pool_size=4, image_size=16, patch_size=8, test_set="deadleaves")


def _dl_split(by, forget, **kw):
    return make_split(DataConfig(**DL), by, forget, test_n=2, test_size=16, held_out=2, **kw)


def _class_tree(root):
    for c in ("cats", "dogs"):
        for k in range(4):
            write_image(root / c / f"{k}.png", torch.rand(3, 16, 16))
    return root


def test_degradation_split_on_dead_leaves():
    m = _dl_split("degradation", ["denoise"])
    assert m["kind"] == "degradation"
    assert m["forget"]["tasks"] == ["denoise_15", "denoise_25", "denoise_50"]
    assert m["retain"]["tasks"] == ["dehaze", "derain"]
    # synthetic tasks share the clean pool: both parts list its 4 images with hashes
    assert [e["id"] for e in m["forget"]["entries"]] == [f"dl-00000{i}" for i in range(4)]
    assert all(len(e["sha256"]) == 64 for e in m["retain"]["entries"])
    assert [e["id"] for e in m["test"]["entries"]] == ["dlt-000000", "dlt-000001"]
    assert "pixels" not in json.dumps(m) and m["data"]["pool_size"] == 4
    ds = build_split_datasets(m)
    assert ds["forget"].tasks == m["forget"]["tasks"] and ds["retain"].tasks == ["dehaze", "derain"]
    assert ds["forget"][0]["clean"].shape == (3, 8, 8)
    # forget and retain batches do not share draws: step s shows other images/crops
    same = [torch.equal(ds["forget"][i]["clean"], ds["retain"][i]["clean"]) for i in range(6)]
    assert not all(same)
    again = build_split_datasets(m)
    assert torch.equal(again["retain"][4]["degraded"], ds["retain"][4]["degraded"])


def test_degradation_split_errors_list_choices():
    with pytest.raises(ValueError, match="unknown task 'haze' in --forget; valid choices: dehaze"):
        _dl_split("degradation", ["haze"])
    with pytest.raises(ValueError, match="leaves no task to retain"):
        _dl_split("degradation", ["dehaze", "derain", "denoise"])
    with pytest.raises(ValueError, match="unknown split kind 'colour'; valid choices"):
        _dl_split("colour", ["x"])
    cfg = DataConfig(**{**DL, "tasks": ["dehaze", "derain"]})
    with pytest.raises(ValueError, match="not trained; trained tasks: dehaze, derain"):
        make_split(cfg, "degradation", ["denoise_25"], test_n=1, test_size=16)


def test_class_split_on_dead_leaves_defaults_to_all_classes():
    m = _dl_split("class", ["squares"])
    assert m["forget"]["classes"] == ["squares"]
    assert m["retain"]["classes"] == ["disks", "stripes"]
    assert [e["id"] for e in m["forget"]["entries"]] == ["dl-000001"]
    assert len(m["retain"]["entries"]) == 3
    assert {e["class"] for e in m["test"]["entries"]} == {"disks", "squares"}
    with pytest.raises(ValueError, match="unknown class.*'cats'.*disks, squares, stripes"):
        _dl_split("class", ["cats"])


def test_instance_split_and_unknown_ids():
    m = _dl_split("instances", ["dl-000002", "dl-000002"])
    assert [e["id"] for e in m["forget"]["entries"]] == ["dl-000002"]
    assert [e["id"] for e in m["retain"]["entries"]] == ["dl-000000", "dl-000001", "dl-000003"]
    assert m["test"]["entries"][0]["id"] == "dlt-000000"  # non-members for membership tests
    with pytest.raises(ValueError, match=r"2 of 3 requested images are not in .*dl-9, cat.png"):
        _dl_split("instances", ["dl-000001", "dl-9", "cat.png"])
    ds = build_split_datasets(m, seed=3)
    assert len(ds["forget"].source) == 1 and ds["forget"][0]["image"] == "dl-000002"
    assert len(ds["train"].source) == 4 and len(ds["test"].source) == 2


def test_class_folder_split_holds_out_files_and_verifies_hashes(tmp_path):
    root = _class_tree(tmp_path / "pets")
    cfg = DataConfig(source="classes", root=str(root), test_set="deadleaves", patch_size=8)
    m = make_split(cfg, "class", ["dogs"], held_out_fraction=0.25, test_n=1, test_size=16)
    assert [e["class"] for e in m["test"]["entries"]] == ["cats", "dogs"]
    assert m["forget"]["count"] == 3 and m["retain"]["count"] == 3
    assert all(e["path"].startswith("dogs/") for e in m["forget"]["entries"])
    path = save_manifest(m, tmp_path / "split.json")
    load_manifest(path, verify=True)
    victim = root / m["retain"]["entries"][0]["path"]
    write_image(victim, torch.zeros(3, 16, 16))
    with pytest.raises(ManifestError, match=f"{victim} \\(altered"):
        load_manifest(path, verify=True)
    os.remove(victim)
    with pytest.raises(ManifestError, match="missing"):
        load_manifest(path, verify=True)


def test_instance_split_by_path_on_files(tmp_path):
    root = _class_tree(tmp_path / "pets")
    cfg = DataConfig(source="classes", root=str(root), test_set="deadleaves", patch_size=8)
    m = make_split(
        cfg,
        "instances",
        [str(root / "cats" / "1.png"), "dogs/0.png"],
        held_out_fraction=0.2,
        test_n=1,
        test_size=16,
    )
    assert [e["id"] for e in m["forget"]["entries"]] == ["cats/1.png", "dogs/0.png"]
    forgotten = {e["id"] for e in m["forget"]["entries"]}
    assert not forgotten & {e["id"] for e in m["test"]["entries"]}
    assert not forgotten & {e["id"] for e in m["retain"]["entries"]}
    assert m["test"]["count"] == 1
    ds = build_split_datasets(m)
    src = ds["forget"].source
    assert [src.name(i) for i in range(len(src))] == ["cats/1.png", "dogs/0.png"]
    assert ds["forget"][5]["image"] in ("cats/1.png", "dogs/0.png")


def test_generated_images_are_reverified(tmp_path):
    m = _dl_split("instances", ["dl-000001"])
    path = save_manifest(m, tmp_path / "s.json")
    assert load_manifest(path, verify=True)["kind"] == "instances"
    m["retain"]["entries"][0]["sha256"] = "0" * 64
    save_manifest(m, path)
    with pytest.raises(ManifestError, match=r"dl-000000 \(regenerated image differs\)"):
        load_manifest(path, verify=True)


def test_save_is_atomic_and_validates(tmp_path, monkeypatch):
    m = _dl_split("instances", ["dl-000001"])
    path = save_manifest(m, tmp_path / "s.json")
    before = path.read_bytes()
    assert manifest_sha256(path) == manifest_sha256(path) and len(manifest_sha256(path)) == 64

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        save_manifest(m, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["s.json"]
    bad = {**m, "forget": {"count": 1, "entries": [{"id": "x"}]}}
    with pytest.raises(ManifestError, match="forget.entries\\[0\\] needs an 'id' and a 64-hex"):
        save_manifest(bad, tmp_path / "other.json")
    assert not (tmp_path / "other.json").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"format": "other"}', "not a forgetir split manifest"),
        ('{"format": "forgetir-split", "version": 9}', "version 9"),
        ('{"format": "forgetir-split", "version": 1, "kind": "degradation"}', "missing key"),
    ],
)
def test_load_rejects_malformed_manifests(tmp_path, text, message):
    p = tmp_path / "m.json"
    p.write_text(text)
    with pytest.raises(ManifestError, match=message):
        load_manifest(p)
    with pytest.raises(ManifestError, match="not found"):
        load_manifest(tmp_path / "none.json")


def test_load_rejects_wrong_counts_and_bad_data(tmp_path):
    m = _dl_split("instances", ["dl-000001"])
    p = tmp_path / "m.json"
    p.write_text(json.dumps({**m, "retain": {**m["retain"], "count": 99}}))
    with pytest.raises(ManifestError, match="retain.count is 99 but it lists 3"):
        load_manifest(p)
    p.write_text(json.dumps({**m, "data": {**m["data"], "colour": 1}}))
    with pytest.raises(ManifestError, match="invalid data section.*colour"):
        load_manifest(p)


def test_cli(tmp_path, capsys):
    parser = add_split_arguments(argparse.ArgumentParser())
    req = tmp_path / "deletion.txt"
    req.write_text("# deletion request\ndl-000003\n\ndl-000000\n")
    out = tmp_path / "split.json"
    args = parser.parse_args(
        [
            "--by",
            "instances",
            "--forget-file",
            str(req),
            "--pool-size",
            "4",
            "--image-size",
            "16",
            "--held-out",
            "1",
            "--out",
            str(out),
        ]
    )
    assert split_command(args) == 0
    m = load_manifest(out)
    assert [e["id"] for e in m["forget"]["entries"]] == ["dl-000003", "dl-000000"]
    assert "wrote" in capsys.readouterr().out
    args = parser.parse_args(["--by", "degradation", "--forget-file", str(req), "--out", str(out)])
    with pytest.raises(ValueError, match="--forget-file is for --by instances"):
        split_command(args)
    with pytest.raises(SystemExit):
        parser.parse_args(["--by", "colour", "--out", "x"])
