"""UT reference logs: reused only when UT, BEFORE, data and settings all match."""

from __future__ import annotations

import hashlib
import json

import torch
from torch import nn

from forgetir.checks.reference import ReferenceStore
from forgetir.checks.verify import verify_run
from forgetir.data.testsets import TestSet


def _conv(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Conv2d(3, 3, 1)


def _pairs(n: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        c = torch.rand(1, 3, 8, 8, generator=g)
        out.append((0.6 * c + 0.2, c))
    return out


def _sets() -> dict[str, TestSet]:
    p = _pairs(3, 1)
    return {
        "dehaze": TestSet("dehaze", "toy", ["a", "b", "c"], [x for x, _ in p], [y for _, y in p])
    }


def _verify(ut: nn.Module, store: ReferenceStore | None, steps: int = 3) -> dict:
    return verify_run(
        _conv(1), _conv(2), ut, ["dehaze"], [], _sets(), "promptir", _pairs(2, 3),
        relearn_steps=steps, relearn_lr=0.05, ain_max_steps=6, reference=store,
    )  # fmt: skip


def _ut_figures(v: dict) -> dict:
    return {"relearn": v["relearn"]["runs"]["UT"], "ain": v["anamnesis"]["curves"]["UT"]}


def test_a_cached_ut_reference_gives_the_same_figures(tmp_path):
    fresh = _verify(_conv(3), None)
    store = ReferenceStore(None, tmp_path)
    first = _verify(_conv(3), store)
    assert "anamnesis" in store.misses and not store.hits
    assert len(list(tmp_path.glob("*.json"))) == len(store.misses)
    misses = list(store.misses)
    again = _verify(_conv(3), store)
    assert store.hits == misses and store.misses == misses  # every lookup now hits
    # The JSON round trip gives the very same numbers (verify.json is JSON anyway).
    assert json.dumps(_ut_figures(again)) == json.dumps(_ut_figures(first))
    assert json.dumps(_ut_figures(fresh)) == json.dumps(_ut_figures(first))
    assert again["anamnesis"]["ain"] == fresh["anamnesis"]["ain"]


def test_another_ut_or_setting_recomputes(tmp_path):
    store = ReferenceStore(None, tmp_path)
    _verify(_conv(3), store)
    n = len(store.misses)
    _verify(_conv(4), store)  # another UT
    assert not store.hits and len(store.misses) > n
    _verify(_conv(3), store, steps=4)  # another relearning length: AIN's entry still matches
    assert store.hits == ["anamnesis"]


def test_shipped_reference_is_read_beside_the_weights(tmp_path):
    store = ReferenceStore(None, tmp_path / "cache")
    _verify(_conv(3), store)
    entries = {}
    for f in (tmp_path / "cache").glob("*.json"):
        e = json.loads(f.read_text())
        entries[e["key"]] = e
    shipped = tmp_path / "ut-x.reference.json"
    weights = tmp_path / "ut-x.safetensors"
    weights.write_bytes(b"")
    sha = hashlib.sha256(b"").hexdigest()
    shipped.write_text(json.dumps({"ut_file_sha256": sha, "entries": entries}))
    s = ReferenceStore.for_ut(weights)
    s.cache = None
    _verify(_conv(3), s)
    assert s.hits and not s.misses and not s.refused


def test_a_reference_log_bound_to_another_ut_file_is_refused(tmp_path):
    store = ReferenceStore(None, tmp_path / "cache", ut_sha256="a" * 64)
    _verify(_conv(3), store)  # entries written for the UT file aaaa…
    # Beside a UT whose file is another: the same weights' key, but not this file's log.
    other = ReferenceStore(None, tmp_path / "cache", ut_sha256="b" * 64)
    _verify(_conv(3), other)
    assert not other.hits and other.misses and "not this UT" in other.refused[0]
    # A log beside --ut that does not name the UT file's hash is not read either.
    entries = {e["key"]: e for e in map(_read, (tmp_path / "cache").glob("*.json"))}
    (tmp_path / "u.reference.json").write_text(json.dumps({"entries": entries}))
    (tmp_path / "u.safetensors").write_bytes(b"u")
    beside = ReferenceStore.for_ut(tmp_path / "u.safetensors")
    beside.cache = None
    _verify(_conv(3), beside)
    assert not beside.hits and any("u.reference.json" in r for r in beside.refused)


def _read(path):
    return json.loads(path.read_text())


def test_a_forged_reference_run_is_refused_and_recomputed(tmp_path):
    store = ReferenceStore(None, tmp_path)
    honest = _verify(_conv(3), store)
    for f in tmp_path.glob("*.json"):
        entry = _read(f)
        if entry["hashes"]["settings"]["kind"] == "anamnesis":
            entry["run"]["reached_step"] = 1  # UT "relearns" at once: AIN would grow
            f.write_text(json.dumps(entry))
            forged_ain = f
    again = _verify(_conv(3), store)
    assert any("reached_step" in r for r in store.refused), store.refused
    assert again["anamnesis"]["ain"] == honest["anamnesis"]["ain"]
    # A forger who keeps the record consistent with its curve: the start is recomputed.
    entry = _read(forged_ain)
    run = entry["run"]
    run["curve"][0][2] *= 0.5
    run["start_l1"], run["final_l1"] = run["curve"][0][2], run["curve"][-1][2]
    stop = run["stop_l1"]
    run["reached_step"] = next((c[0] for c in run["curve"] if c[2] <= stop), None)
    forged_ain.write_text(json.dumps(entry))
    store.refused.clear()
    _verify(_conv(3), store)
    assert any("start L1" in r for r in store.refused), store.refused


def test_shipped_ut_references_match_the_shipped_weights():
    from forgetir.checkpoint import sha256_file
    from forgetir.checkpoint.shipped import WEIGHTS_DIR

    files = sorted(WEIGHTS_DIR.glob("*.reference.json"))
    assert files, "the shipped UTs carry their reference logs"
    for f in files:
        data = json.loads(f.read_text())
        weights = WEIGHTS_DIR / f.name.replace(".reference.json", ".safetensors")
        # A re-shipped UT needs new references (scripts/ship_ut_references.py).
        assert data["ut_file_sha256"] == sha256_file(weights), f.name
        kinds = {e["kind"] for e in data["entries"].values()}
        assert kinds == {"relearn", "anamnesis"}, f.name
        store = ReferenceStore.for_ut(weights)
        assert store.shipped == f
