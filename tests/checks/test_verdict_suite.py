"""The verdict suite: models whose truth we know, run through the real ``forgetir verify``.

Each case is a run folder made by :func:`forgetir.unlearn.run_unlearn` from the shipped BEFORE
(forget: dehaze; UT: the shipped model retrained without haze), whose unlearned model is set
to a known one by a test-only method, then verified by ``forgetir verify RUN`` on the command
line: the verdict a user would read. Every verdict off the expected one is a bug.

The truths are constructed, not measured by the code under test: BEFORE is BEFORE; UT is UT;
weight interpolations towards UT keep a known share of the skill (checked here to land where
the case says before the verdict is read); the seed paper's collapse destroys the output.
The gated model that hides a skill is the verify_run case of ``tests/test_verify.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch

from forgetir.cli import main
from forgetir.methods.base import METHODS, Batch, MethodConfig, UnlearningMethod
from forgetir.runs.testbed import load_eval_model
from forgetir.unlearn import UnlearnOptions, run_unlearn

FORGET, UT_SPEC = "dehaze", "shipped:ut-dehaze"


class Oracle(UnlearningMethod):
    """Test-only (registered while the suite runs): sets the model to ``Oracle.state``, then
    changes nothing (zero loss)."""

    name = "test-oracle"
    summary = "test only: the unlearned model is a given state"
    Config = MethodConfig
    needs_forget = needs_retain = False
    state: ClassVar[dict[str, torch.Tensor] | None] = None

    def prepare(self, forget_batch: Batch | None, retain_batch: Batch | None) -> None:
        with torch.no_grad():
            self.model.load_state_dict(self.state)

    def _loss(self, forget_batch: Batch | None, retain_batch: Batch | None) -> dict[str, Any]:
        zero = sum(p.sum() for p in self.model.parameters()) * 0.0  # Adam: a zero update
        return {"loss": zero}


def _mix(towards: str, alpha: float) -> dict[str, torch.Tensor]:
    """BEFORE's weights moved ``alpha`` of the way towards ``towards``'s."""
    a = load_eval_model("shipped:before").state_dict()
    b = load_eval_model(towards).state_dict()
    return {k: a[k] + alpha * (b[k] - a[k]) if a[k].is_floating_point() else a[k] for k in a}


def _perturbed() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    state = load_eval_model("shipped:before").state_dict()
    return {
        k: v * (1 + 1e-3 * torch.randn(v.shape, generator=g)) if v.is_floating_point() else v
        for k, v in state.items()
    }


def _run(tmp: Path, name: str, method: str, state: Any = None, **opts: Any) -> Path:
    Oracle.state = state
    settings = dict(steps=1, batch_size=1, max_side=64, verify=False, quiet=True, threads=1)
    settings.update(opts)
    settings["test_max_side"] = settings.pop("max_side")
    run_unlearn(
        "shipped:before",
        tmp / name,
        UnlearnOptions(method=method, **settings),
        forget=[FORGET],
        ut=UT_SPEC,
    )
    return tmp / name


def _verify(run: Path, *extra: str) -> dict[str, Any]:
    args = ["verify", str(run), "--relearn-steps", "0", "--ain-max-steps", "0"]
    assert main([*args, "--quiet", "--threads", "1", *extra]) == 0
    return json.loads((run / "verify.json").read_text())["verdict"]


# name -> (how the unlearned model is made, expected verdict vs UT, expected damaged tasks or
# None where retained damage is not part of the construction, expected UT-free verdict or None)
CASES: dict[str, tuple[Any, str, list[str] | None, str | None]] = {
    "BEFORE itself": (lambda: load_eval_model("shipped:before").state_dict(),
                      "not forgotten", [], "not forgotten"),
    "BEFORE perturbed (0.1% of each weight)": (_perturbed, "not forgotten", None, None),
    "UT as the unlearned model": (lambda: load_eval_model(UT_SPEC).state_dict(),
                                  "forgotten", [], "forgotten"),
    "between BEFORE and UT, ~1-2 dB above UT": (lambda: _mix(UT_SPEC, 0.3),
                                                "not forgotten", None, None),
    "derain damaged by ~0.5 dB": (lambda: _mix("shipped:ut-derain", 0.1),
                                  "not forgotten", ["derain"], None),
}  # fmt: skip


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> dict[str, dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("suite")
    out: dict[str, dict[str, Any]] = {}
    METHODS.add(Oracle.name, Oracle)
    try:
        for i, (name, (make, _, _, free)) in enumerate(CASES.items()):
            run = _run(tmp, f"case-{i}", Oracle.name, make())
            out[name] = {"UT": _verify(run)}
            if free is not None:
                out[name]["UT-free"] = _verify(run, "--ut", "none")
    finally:
        METHODS.remove(Oracle.name)
    # The seed paper's method with its collapse target, at its published settings.
    run = _run(tmp, "collapse", "accurate-forgetting", steps=60, batch_size=8, patch_size=64)
    out["seed paper's collapse"] = {"UT": _verify(run), "UT-free": _verify(run, "--ut", "none")}
    if os.environ.get("FORGETIR_SUITE_TABLE"):  # the table of docs/proof.md
        Path(os.environ["FORGETIR_SUITE_TABLE"]).write_text(_table(out), encoding="utf-8")
    return out


def _table(out: dict[str, dict[str, Any]]) -> str:
    expected = {name: (case[1], case[2], case[3]) for name, case in CASES.items()}
    expected["seed paper's collapse"] = (
        "over-forgotten or hidden",
        None,
        "over-forgotten or hidden",
    )
    lines = [
        "| model (truth) | expected | verdict vs UT | retained damaged | expected UT-free "
        "| verdict UT-free |",
        "|---|---|---|---|---|---|",
    ]
    for name, got in out.items():
        want, damaged, free = expected[name]
        ut_free = got.get("UT-free")
        lines.append(
            f"| {name} | {want}"
            + (f"; damaged: {', '.join(damaged) or 'none'}" if damaged is not None else "")
            + f" | {got['UT']['verdict']} | {', '.join(got['UT']['retained_damaged']) or 'none'}"
            + f" | {free or '–'} | {ut_free['verdict'] if ut_free else '–'} |"
        )
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("name", list(CASES))
def test_known_models_get_their_verdict(suite, name: str) -> None:
    _, expected, damaged, free = CASES[name]
    got = suite[name]["UT"]
    assert got["verdict"] == expected, got["line"]
    assert got["basis"] == "UT" and "paired vs UT" in got["line"]
    if damaged is not None:
        assert got["retained_damaged"] == damaged, got["line"]
    if free is not None:
        ut_free = suite[name]["UT-free"]
        assert ut_free["verdict"] == free, ut_free["line"]
        assert ut_free["basis"] == "input" and "UT-free" in ut_free["line"]


def test_between_model_lands_where_the_case_says(suite) -> None:
    # The construction, checked independently of the verdict: 0.7-3 dB above UT on dehaze.
    got = suite["between BEFORE and UT, ~1-2 dB above UT"]["UT"]["forget"]
    assert 0.7 < got["mean"] < 3.0


def test_the_collapse_is_over_forgotten(suite) -> None:
    for basis in ("UT", "UT-free"):
        got = suite["seed paper's collapse"][basis]
        assert got["verdict"] in ("over-forgotten", "hidden"), got["line"]
