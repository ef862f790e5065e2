import argparse
import json

import pytest

from forgetir.cli.reproduce import add_arguments as add_reproduce_arguments
from forgetir.cli.reproduce import run as reproduce_command
from forgetir.config import load_config
from forgetir.methods import list_methods
from forgetir.reproduce import (
    FORGET_TYPES,
    ReproduceError,
    ReproduceOptions,
    build_plan,
    check_inputs,
    format_grid,
    run_cell,
    run_plan,
    select_cells,
    write_summary,
)
from forgetir.train import run_train

TINY = [
    "train.steps=20",
    "train.batch_size=2",
    "data.pool_size=8",
    "data.image_size=32",
    "data.patch_size=32",
    "data.test_max_side=32",
    "optim.warmup_steps=0",
    "train.tensorboard=false",
]


@pytest.fixture(scope="module")
def tiny_before(tmp_path_factory):
    """A 20-step model on an 8-image pool: stands in for BEFORE and every UT."""
    return run_train(load_config("cpu", TINY), tmp_path_factory.mktemp("before"), quiet=True)


@pytest.fixture(scope="module")
def tiny_ut(tiny_before, tmp_path_factory, nudge):
    """Every UT of the tiny grid: BEFORE nudged (a UT may not be BEFORE itself)."""
    return nudge(tiny_before, tmp_path_factory.mktemp("ut"))


def _tiny(out, before, ut_path=None, **kw):
    base = dict(
        out=str(out),
        checkpoint=str(before),
        ut={t: str(ut_path or before) for t in FORGET_TYPES},
        steps=1,
        batch_size=2,
        patch_size=32,
        test_max_side=32,
        train_overrides=TINY,
        relearn_steps=1,
        ain_max_steps=1,
    )
    base.update(kw)
    return build_plan(ReproduceOptions(**base))


def _never(plan, cell):
    raise AssertionError(f"cell {cell.name} ran but should have been cached or refused")


def test_grid_has_every_required_cell(tmp_path):
    plan = build_plan(ReproduceOptions(out=str(tmp_path)))
    cells = {c.name: c for c in plan.cells}
    for t in FORGET_TYPES:
        for target in ("collapse", "retrain-like"):
            c = cells[f"main/{t}-{target}"]
            assert c.options["target"] == target and c.options["verify"]
            assert c.options["method"] == "accurate-forgetting" and c.options["hparams"] == {}
            assert c.ut == f"ut-{t}" and plan.models[c.ut] == f"shipped:ut-{t}"
        assert cells[f"control/{t}-finetune"].options["method"] == "finetune"
        hp = {k: cells[f"ablation/{t}-{k}"].options["hparams"] for k in ("no-adv", "no-instance")}
        assert hp == {"no-adv": {"use_adv": False}, "no-instance": {"use_instance": False}}
        assert cells[f"ablation/{t}-neither"].options["hparams"] == {
            "use_adv": False,
            "use_instance": False,
        }
        sweeps = [c for c in plan.cells if c.sweep and c.forget_type == t]
        assert {c.sweep[1] for c in sweeps if c.sweep[0] == "lr"} == {1e-4, 1.5e-4}
        batch = [c for c in sweeps if c.sweep[0] == "batch_size"]
        assert sorted(c.options["batch_size"] for c in batch) == [12, 16, 20]
        # Same samples seen as the 60 x 8 main cell, whatever the batch.
        assert all(abs(c.options["steps"] * c.options["batch_size"] - 480) <= 10 for c in batch)
        assert {
            c.options["hparams"]["w_adv"] for c in sweeps if c.sweep[0].startswith("w_adv")
        } == {
            0.5,
            1.5,
        }
        assert not any(c.options["verify"] for c in sweeps)
    for m in list_methods():
        if m not in ("accurate-forgetting", "finetune"):
            assert cells[f"methods/{m}"].forget == ["dehaze"]
            assert cells[f"methods/{m}"].options["steps"] == 60
    inst = cells["instances/accurate-forgetting-16"]
    assert inst.split == "instances" and plan.splits["instances"].by == "instances"
    assert inst.options["verify"]
    # The shipped UT of the deletion request, and the very split it was trained without.
    assert plan.models[inst.ut] == "shipped:ut-instances"
    assert plan.splits["instances"].manifest.endswith("ut-instances.split.json")
    en = cells["class/encoder-noise-stripes"]
    assert en.options["method"] == "encoder-noise" and en.needs == []
    assert plan.models[en.parent] == "shipped:inpaint-before"
    assert plan.models[en.ut] == "shipped:inpaint-ut-stripes"
    assert plan.splits["class-stripes"].manifest.endswith("inpaint-ut-stripes.split.json")
    listing = format_grid(plan)
    assert all(name in listing for name in cells)
    # --only adds what the selection needs; an unknown pattern lists the cells.
    retrain = build_plan(ReproduceOptions(out=str(tmp_path), retrain=True))
    ut = retrain.cell("class/ut-inpaint-no-stripes")
    assert ut.kind == "train" and ut.train_split == "class-stripes"
    assert "data.tasks=[inpaint_4,denoise_25]" in ut.overrides
    chosen = [c.name for c in select_cells(retrain, ["class/encoder-*"])]
    assert chosen == ["class/before-inpaint", "class/ut-inpaint-no-stripes", en.name]
    with pytest.raises(ReproduceError, match="matches no cell; cells: main/dehaze-collapse"):
        select_cells(plan, ["nope/*"])


def test_retrain_trains_before_and_the_uts_first(tmp_path):
    plan = build_plan(ReproduceOptions(out=str(tmp_path), retrain=True))
    assert [c.name for c in plan.cells[:4]] == [
        "train/before",
        "train/ut-dehaze",
        "train/ut-derain",
        "train/ut-denoise",
    ]
    assert plan.cell("train/ut-derain").exclude == ["derain"]
    assert plan.cell("train/ut-instances").train_split == "instances"
    assert plan.cell("instances/accurate-forgetting-16").needs == [
        "train/before",
        "train/ut-instances",
    ]
    assert plan.splits["instances"].manifest is None  # made from the data, as the UT's
    assert plan.cell("main/derain-collapse").needs == ["train/before", "train/ut-derain"]
    assert plan.model_path("before") == str(tmp_path / "train" / "before" / "model.safetensors")
    check_inputs(plan, plan.cells)  # every model is made by a cell: nothing to check


def test_paper_scale_without_data_or_checkpoints_fails_clearly(tmp_path):
    plan = build_plan(ReproduceOptions(scale="paper", out=str(tmp_path / "p")))
    assert plan.cell("main/dehaze-collapse").epochs == 2.0
    assert plan.cell("main/dehaze-collapse").options["test_set"] == "promptir"
    assert not [c for c in plan.cells if c.name.startswith("class/")]
    assert plan.cell("instances/accurate-forgetting-16").ut is None
    assert any("--ut-instances PATH" in n for n in plan.notes)
    with pytest.raises(ReproduceError) as e:
        run_plan(plan, runner=_never)
    msg = str(e.value)
    for needed in ("--root DATA", "CHECKPOINT", "--ut-dehaze PATH", "--ut-denoise PATH"):
        assert needed in msg
    assert not (tmp_path / "p").exists()

    parser = argparse.ArgumentParser()
    add_reproduce_arguments(parser)
    args = parser.parse_args(
        ["x.ckpt", "--scale", "paper", "--root", str(tmp_path / "nowhere")]
        + ["--ut-dehaze", "a.ckpt", "--out", str(tmp_path / "q")]
    )
    with pytest.raises(ReproduceError) as e:
        reproduce_command(args)
    msg = str(e.value)
    assert "PromptIR data root not found" in msg and "checkpoint not found: x.ckpt" in msg
    assert "--ut-derain PATH" in msg and "--ut-dehaze: checkpoint not found: a.ckpt" in msg
    with pytest.raises(ReproduceError, match="KIND one of dehaze, derain, denoise, instances"):
        reproduce_command(parser.parse_args(["--ut", "haze=a.ckpt"]))


def test_cells_are_cached_and_an_interrupted_run_resumes(tmp_path, tiny_before, tiny_ut):
    plan = _tiny(tmp_path / "out", tiny_before, tiny_ut)
    only = ["ablation/dehaze-no-adv", "ablation/dehaze-neither"]
    calls = []

    def interrupted(plan, cell):
        calls.append(cell.name)
        if cell.name == only[1]:
            (plan.cell_dir(cell) / "log.csv").parent.mkdir(parents=True)
            (plan.cell_dir(cell) / "log.csv").write_text("half-written\n")
            raise KeyboardInterrupt
        return run_cell(plan, cell)

    with pytest.raises(KeyboardInterrupt):
        run_plan(plan, only, runner=interrupted, log=lambda s: None)
    assert calls == only
    assert (plan.cell_dir(only[0]) / "run.json").is_file()
    assert not (plan.cell_dir(only[1]) / "run.json").exists()

    calls.clear()
    logs = []
    run_plan(
        plan, only, runner=lambda p, c: calls.append(c.name) or run_cell(p, c), log=logs.append
    )
    assert calls == [only[1]], "the finished cell is skipped, the unfinished one rerun"
    assert "half-written" not in (plan.cell_dir(only[1]) / "log.csv").read_text()
    assert any("[1/1] ablation/dehaze-neither" in line and "ETA" in line for line in logs)

    summary = run_plan(plan, only, runner=_never, log=lambda s: None)
    assert summary["done"] == 2
    rows = summary["tables"]["ablation"]["rows"]
    assert {"degraded input", "BEFORE", "UT (no dehaze)"} <= set(rows)
    assert "dehaze: without both" in rows
    md = (tmp_path / "out" / "summary.md").read_text()
    assert "Protocol: PSNR/SSIM, promptir protocol" in md and "| dehaze: without both |" in md

    # Other settings over the same folder: refused, not silently mixed.
    other = _tiny(tmp_path / "out", tiny_before, tiny_ut, steps=2)
    with pytest.raises(ReproduceError, match="run with other settings"):
        run_plan(other, only, runner=_never, log=lambda s: None)


def test_main_cell_sweeps_and_docs(tmp_path, tiny_before, tiny_ut):
    plan = _tiny(tmp_path / "out", tiny_before, tiny_ut)
    only = ["main/dehaze-collapse", "sweep/dehaze-lr-0.0001"]
    summary = run_plan(plan, only, log=lambda s: None)
    main = plan.cell_dir("main/dehaze-collapse")
    run = json.loads((main / "run.json").read_text())
    assert run["steps"] == 1 and (main / "verify.json").is_file()
    sweeps = json.loads((main / "sweeps.json").read_text())
    lrs = sorted(e["value"] for e in sweeps if e["param"] == "lr")
    assert lrs == [1e-4, 2e-4]
    assert set(sweeps[0]["psnr"]) == {"dehaze", "derain", "denoise_15", "denoise_25", "denoise_50"}
    assert summary["tables"]["sweep-lr"]["cells"] == only
    assert summary["tables"]["main"]["rows"]["UT (no dehaze)"]["dehaze"]["n"] == 7

    docs = tmp_path / "docs" / "reproduce.md"
    write_summary(plan, docs=docs)
    assert docs.read_text() == (tmp_path / "out" / "summary.md").read_text()


def test_list_prints_the_cells_and_runs_nothing(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_reproduce_arguments(parser)
    out = tmp_path / "out"
    assert (
        reproduce_command(parser.parse_args(["--list", "--out", str(out), "--only", "main/*"])) == 0
    )
    text = capsys.readouterr().out
    # 6 main cells, each at the 3 default seeds
    assert "18 cells" in text and "main/denoise-retrain-like@seed2" in text
    assert "sweep/" not in text
    assert not out.exists()


def test_class_cells_train_the_ut_without_the_class(tmp_path, tiny_before):
    plan = _tiny(tmp_path / "out", tiny_before, retrain=True)
    summary = run_plan(plan, ["class/encoder-noise-stripes"], log=lambda s: None)
    pool = json.loads(
        (plan.cell_dir("class/ut-inpaint-no-stripes") / "train_pool.json").read_text()
    )
    classes = {e["class"] for e in pool["clean"]["entries"]}
    assert classes == {"disks", "squares"}
    full = json.loads((plan.cell_dir("class/before-inpaint") / "train_pool.json").read_text())
    assert {e["class"] for e in full["clean"]["entries"]} == {"disks", "squares", "stripes"}
    rows = summary["tables"]["class"]["rows"]
    parts = {f"{p}:{t}" for p in ("forget", "retain") for t in ("inpaint_4", "denoise_25")}
    assert set(rows["UT (no stripes)"]) == parts
    assert "encoder-noise: forget class stripes" in rows


def test_instance_cell_compares_with_its_ut(tmp_path, tiny_before, tiny_ut):
    plan = _tiny(tmp_path / "out", tiny_before, ut={"instances": str(tiny_ut)}, relearn_steps=1)
    run_plan(plan, ["instances/*"], log=lambda s: None)
    cell = plan.cell_dir("instances/accurate-forgetting-16")
    verify = json.loads((cell / "verify.json").read_text())
    assert set(verify["membership"]["models"]) == {"BEFORE", "unlearned", "UT"}
    assert verify["output_gap"]["value"] is not None
    assert "UT" in json.loads((cell / "quality.json").read_text())["rows"]


def test_main_and_method_cells_run_at_several_seeds(tmp_path, tiny_before, tiny_ut):
    plan = build_plan(ReproduceOptions(out=str(tmp_path), seeds=3))
    names = {c.name for c in plan.cells}
    for base in ("main/dehaze-collapse", "main/denoise-retrain-like", "methods/proxy-retrain"):
        assert {f"{base}@seed1", f"{base}@seed2"} <= names
        assert plan.cell(f"{base}@seed2").options["seed"] == 2
    assert not any(n.startswith(("ablation/", "sweep/")) and "@seed" in n for n in names)
    assert not any("@seed" in c.name for c in build_plan(ReproduceOptions(seeds=1)).cells)
    with pytest.raises(ReproduceError, match="--seeds"):
        build_plan(ReproduceOptions(seeds=0))

    tiny = _tiny(tmp_path / "out", tiny_before, tiny_ut, seeds=2)
    only = ["main/dehaze-collapse", "main/dehaze-collapse@seed1"]
    summary = run_plan(tiny, only, log=lambda s: None)
    agg = summary["seeds"]["main/dehaze-collapse"]
    assert agg["n"] == 2 and len(agg["figures"]["forget vs UT"]["values"]) == 2
    assert "## Over seeds (mean ± sd)" in (tmp_path / "out" / "summary.md").read_text()
