"""The per-example membership attack as a proof check (forgetir.checks.calibrated_membership).

Unit tests run on constructed per-image PSNRs; the end-to-end test unlearns the shipped
memorisation scenario (2 finetune steps, ~40 s on one thread) and reads verify.json, the summary
and report.md: BEFORE's calibrated AUC >= 0.9, UT's <= 0.6, side by side with the unlearned model.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from forgetir.checkpoint.shipped import WEIGHTS_DIR, shipped_split
from forgetir.checks import CHECKS, summary_lines
from forgetir.checks.calibrated_membership import CalibratedMembershipCheck, attack_table
from forgetir.errors import InputFileError, IntegrityError
from forgetir.membership.scenarios import GROUPS
from forgetir.render.document import Doc

# Deleted images that are merely easy (high PSNR for any model), non-members harder.
EASY = {
    "forgotten": np.array([30.0, 31.0, 29.5, 30.5]),
    "kept": np.array([25.0, 24.0, 26.0, 25.5]),
    "nonmembers": np.array([24.0, 25.0, 23.0, 26.0, 24.5, 25.5]),
}


def _shipped(*names: str) -> bool:
    return all((WEIGHTS_DIR / f"{n}.safetensors").is_file() for n in names)


def test_calibration_removes_what_the_reference_finds_easy():
    # the reference finds the deleted images exactly as easy: nothing is memorised
    reference = {g: v - 1.0 for g, v in EASY.items()}
    r = attack_table({"UT": EASY}, reference, "parent")
    ut = r["models"]["UT"]
    assert r["calibrated"] and r["reference"] == "parent"
    assert ut["attack"]["forgotten"]["auc"] == 0.5  # constant score 1 dB for everyone
    assert ut["uncalibrated"]["forgotten"]["auc"] == 1.0  # the plain loss attack is fooled
    assert ut["advantage_db"]["forgotten"] == pytest.approx(30.25 - 24.666666, abs=1e-5)


def test_memorised_images_score_high_and_tpr_at_low_fpr():
    # BEFORE restores the deleted images 6 dB above what the reference does; the rest as it
    memorised = {g: v + 6.0 * (g == "forgotten") for g, v in EASY.items()}
    memorised["forgotten"] += np.array([0.0, 0.1, 0.2, -6.5])  # one image not memorised
    r = attack_table({"BEFORE": memorised, "UT": EASY}, EASY, "parent")
    before, ut = r["models"]["BEFORE"]["attack"], r["models"]["UT"]["attack"]
    # 3 of 4 deleted images above every non-member (score 0), one below all of them
    assert before["forgotten"]["auc"] == 0.75 and before["forgotten"]["tpr_at_1pct_fpr"] == 0.75
    assert ut["forgotten"]["auc"] == 0.5 and ut["forgotten"]["tpr_at_5pct_fpr"] == 0.0
    assert r["models"]["BEFORE"]["advantage_db"]["forgotten"] == pytest.approx(
        EASY["forgotten"].mean() + 6.0 - 6.2 / 4 - EASY["nonmembers"].mean()
    )


def test_without_reference_the_attack_is_uncalibrated_and_says_so():
    r = attack_table({"BEFORE": EASY}, None)
    assert not r["calibrated"] and r["reference"] is None and r["reference_psnr"] is None
    assert r["models"]["BEFORE"]["attack"] == r["models"]["BEFORE"]["uncalibrated"]
    r["data"] = "constructed"
    (line,) = CalibratedMembershipCheck().summary(r)
    assert "UNCALIBRATED" in line and "--mia-reference" in line and "AUC 1.000" in line
    assert "per-image PSNR" in line and "constructed" in line  # metric and data named


def test_check_is_registered_after_the_population_baseline():
    names = list(CHECKS)
    assert names.index("membership") + 1 == names.index("calibrated_membership")


def test_compute_and_render_on_constructed_models(tmp_path):
    g = torch.Generator().manual_seed(0)

    def pairs(n: int, noise: float) -> list:
        out = []
        for _ in range(n):
            clean = torch.rand(1, 3, 8, 8, generator=g)
            out.append((clean + noise * torch.randn(1, 3, 8, 8, generator=g), clean))
        return out

    # the identity "restores" images degraded less better: deleted ones are easy here
    cands = {"forgotten": pairs(4, 0.01), "kept": pairs(4, 0.1), "nonmembers": pairs(8, 0.1)}

    class Ctx:  # the fields the check reads
        instance_candidates = cands
        instance_description = "constructed 8x8 pairs"
        mia_reference = nn.Identity()
        mia_reference_name = "identity"
        quiet = True

        @staticmethod
        def models() -> dict[str, nn.Module]:
            return {"BEFORE": nn.Identity(), "unlearned": nn.Identity()}

    check = CalibratedMembershipCheck()
    r = check.compute(Ctx())  # type: ignore[arg-type]
    assert r["models"]["BEFORE"]["uncalibrated"]["forgotten"]["auc"] == 1.0
    assert r["models"]["BEFORE"]["attack"]["forgotten"]["auc"] == 0.5  # same as the reference
    assert r["data"] == "constructed 8x8 pairs"
    assert len(check.figures(r, {})) == 2 * 4
    doc = Doc(tmp_path, tmp_path)
    check.render(doc, r, {})
    md = "\n".join(doc.md)
    assert "| BEFORE |" in md and "TPR @1% FPR" in md and "identity" in md
    Ctx.instance_candidates = {**cands, "kept": []}
    with pytest.raises(ValueError, match="kept"):
        check.compute(Ctx())  # type: ignore[arg-type]


def test_candidates_fit_the_pixel_budget_task_first():
    from forgetir.config import DataConfig
    from forgetir.data.splits import make_split
    from forgetir.membership.scenarios import split_candidates

    cfg = DataConfig(pool_size=40, image_size=16, tasks=["denoise_25", "denoise_50"])
    m = make_split(cfg, "instances", ["dl-000001", "dl-000002"], held_out=30)
    c, what = split_candidates(m)
    assert {g: len(v) for g, v in c.items()} == {"forgotten": 4, "kept": 76, "nonmembers": 60}
    assert "pooled over tasks" in what and "budget" not in what
    c, what = split_candidates(m, max_pixels=100 * 16 * 16)  # one task only, all images
    assert {g: len(v) for g, v in c.items()} == {"forgotten": 2, "kept": 38, "nonmembers": 30}
    assert "not denoise_50 (pixel budget)" in what
    c, _ = split_candidates(m, max_pixels=42 * 16 * 16)  # one task, fewer kept/non-members
    assert {g: len(v) for g, v in c.items()} == {"forgotten": 2, "kept": 20, "nonmembers": 20}
    assert split_candidates({**m, "kind": "classes"}) == (None, None)


def test_missing_mia_reference_is_refused_before_any_work(tmp_path, tiny_opts):
    from forgetir.unlearn import run_unlearn

    out = tmp_path / "run"
    with pytest.raises(InputFileError, match="no-such"):
        run_unlearn(
            "shipped:mem-before",
            out,
            tiny_opts(mia_reference=str(tmp_path / "no-such.safetensors")),
            split=str(shipped_split("mem-ut")),
        )
    assert not out.exists()


@pytest.mark.skipif(not _shipped("mem-before", "mem-ut", "inpaint-before"), reason="not shipped")
def test_unlearn_on_the_memorisation_scenario_reports_the_attack_side_by_side(tmp_path, tiny_opts):
    from forgetir.checks.verify import verify_folder
    from forgetir.report.write import write_report
    from forgetir.unlearn import run_unlearn

    out = tmp_path / "run"
    opts = tiny_opts(
        method="finetune", mia_reference="shipped:inpaint-before", threads=1, grids=False
    )
    opts.relearn_steps = opts.ain_max_steps = 0
    run_unlearn(
        "shipped:mem-before", out, opts, split=str(shipped_split("mem-ut")), ut="shipped:mem-ut"
    )
    run = json.loads((out / "run.json").read_text())
    assert run["options"]["mia_reference"] == "shipped:inpaint-before"
    assert run["files"]["mia_reference"]["path"].endswith("inpaint-before.safetensors")
    verify = json.loads((out / "verify.json").read_text())
    r = verify["calibrated_membership"]
    assert r["calibrated"] and r["reference"] == "shipped:inpaint-before"
    assert list(r["models"]) == ["BEFORE", "unlearned", "UT"]
    assert {k: r["models"]["BEFORE"]["attack"]["forgotten"]["n_pos"] for k in GROUPS} == {
        k: 16 for k in GROUPS
    }
    before, ut = r["models"]["BEFORE"], r["models"]["UT"]
    assert before["attack"]["forgotten"]["auc"] >= 0.9
    assert ut["attack"]["forgotten"]["auc"] <= 0.6
    assert before["advantage_db"]["forgotten"] >= 2.0
    assert "population" not in r and verify["membership"]  # the baseline is still there
    lines = [x for x in summary_lines(verify) if x.startswith("per-example attack")]
    assert len(lines) == 3 and "calibrated by shipped:inpaint-before" in lines[0]
    write_report(out, quiet=True)
    md = (out / "report.md").read_text()
    section = md.split("Per-example membership attack")[1]
    assert "| UT |" in section and "| unlearned |" in section and "AUC deleted" in section
    # the reference is a file the verdict rests on: a changed one is refused by verify
    run["files"]["mia_reference"]["sha256"] = "0" * 64
    (out / "run.json").write_text(json.dumps(run))
    with pytest.raises(IntegrityError, match="membership-attack reference"):
        verify_folder(out)
