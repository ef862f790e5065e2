"""Property-based tests (Hypothesis) of the parsers and validators that stand between a user's
input and a run: whatever they are given, they return a valid value or raise forgetir's own
error (one line at the CLI), never another exception (a traceback)."""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forgetir.config import DataConfig, load_config, parse_override, to_dict
from forgetir.data.manifest import validate_manifest
from forgetir.data.pipeline import resolve_tasks
from forgetir.data.splits import make_split
from forgetir.errors import ForgetirError
from forgetir.options import UnlearnOptions
from forgetir.records import ModelMeta, RunRecord
from forgetir.unlearn.inputs import check_options

# Cheap calls, but a loaded 2-core machine: no per-example deadline; a bounded number of cases.
FAST = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
NUMBERS = (
    st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([0, 1, -1, 2**63, 2**63 - 1, 1e308, 1e-300, -0.0])
)


def _refused_cleanly(call, *args, **kwargs):
    """``call(...)``'s value, or None when it raised a ForgetirError (anything else fails)."""
    try:
        return call(*args, **kwargs)
    except ForgetirError:
        return None


# ------------------------------------------------------------------------- KEY=VALUE options

_KEYS = sorted(
    f"{section}.{field}"
    for section, fields in to_dict(load_config("cpu")).items()
    if isinstance(fields, dict)
    for field in fields
)


@FAST
@given(st.text(max_size=40))
def test_any_override_text_parses_or_is_refused(text):
    parsed = _refused_cleanly(parse_override, text)
    assert parsed is None or (isinstance(parsed, tuple) and isinstance(parsed[0], str))


def _yaml(value):
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


@FAST
@given(
    st.sampled_from(_KEYS) | st.text(max_size=15),
    JSON.map(
        lambda v: yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("...").strip()
    )
    | st.text(max_size=20),
)
def test_any_config_override_gives_a_config_or_our_error(key, value):
    cfg = _refused_cleanly(load_config, "cpu", [f"{key}={value}"])
    assert cfg is None or cfg.train.steps >= 0


# --------------------------------------------------------------- task and test-set names


@FAST
@given(
    st.lists(st.text(max_size=12) | st.sampled_from(["dehaze", "denoise", "derain"]), max_size=4)
)
def test_any_task_names_resolve_or_are_refused(names):
    tasks = _refused_cleanly(resolve_tasks, names, "--forget")
    assert tasks is None or all(isinstance(t, str) for t in tasks)


# ------------------------------------------------------------------------ numeric bounds

_BASE = UnlearnOptions(steps=1, batch_size=2, patch_size=32, quiet=True)
_NUMERIC = [
    "steps",
    "batch_size",
    "patch_size",
    "lr",
    "seed",
    "retain_budget",
    "forget_floor",
    "guard_every",
    "test_max_side",
    "relearn_steps",
    "ain_max_steps",
    "tile",
]


@FAST
@given(st.sampled_from(_NUMERIC), NUMBERS)
def test_any_number_for_an_option_is_accepted_in_range_or_refused(field, value):
    opts = _refused_cleanly(check_options, replace(_BASE, **{field: value}))
    if opts is not None and isinstance(value, float):
        assert value == value and abs(value) != float("inf"), f"{field}={value} accepted"


@FAST
@given(st.sampled_from(["w_ul", "w_adv", "w_r", "noise", "nope"]), NUMBERS | st.text(max_size=8))
def test_any_method_hyperparameter_is_accepted_in_range_or_refused(key, value):
    opts = replace(_BASE, hparams={key: value})
    assert _refused_cleanly(check_options, opts) is None or key != "nope"


# ------------------------------------------------------------------------- split manifests


@pytest.fixture(scope="module")
def manifest():
    cfg = DataConfig(pool_size=3, image_size=16, patch_size=8, test_set="deadleaves")
    return make_split(cfg, "instances", ["dl-000001"], held_out=1, test_n=1, test_size=16)


def _paths(obj, prefix=()):
    """Every (key path) inside a JSON value."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*prefix, i))


def _set(obj, path, value):
    for key in path[:-1]:
        obj = obj[key]
    obj[path[-1]] = value


@FAST
@given(st.data(), JSON)
def test_any_edit_of_a_manifest_validates_or_is_refused(manifest, data, value):
    m = copy.deepcopy(manifest)
    paths = [p for p in _paths(m) if p]
    _set(m, data.draw(st.sampled_from(paths)), value)
    _refused_cleanly(validate_manifest, m, "split.json")


@FAST
@given(JSON)
def test_any_json_as_a_manifest_is_refused(value):
    assert _refused_cleanly(validate_manifest, value, "split.json") is None


# ----------------------------------------------------------------- run records and sidecars

_RUN = RunRecord.from_json(
    {"method": "m", "parent": {"path": "p", "sha256": "0" * 64}, "split": {"kind": "degradation"}},
    "run.json",
).to_json()


@FAST
@given(st.data(), JSON)
def test_any_edit_of_a_run_record_reads_or_is_refused(data, value):
    d = copy.deepcopy(_RUN)
    paths = [p for p in _paths(d) if p]
    _set(d, data.draw(st.sampled_from(paths)), value)
    _refused_cleanly(RunRecord.from_json, d, "run.json")
    _refused_cleanly(RunRecord.from_json, value, "run.json")


@FAST
@given(JSON, st.data())
def test_any_sidecar_reads_or_is_refused(value, data):
    meta = {"arch": "promptir-tiny", "args": {}, "sha256": "0" * 64, "step": 1}
    meta[data.draw(st.sampled_from([*meta, "steps", "config", "method"]))] = value
    _refused_cleanly(ModelMeta.from_json, meta, "model.json")
    _refused_cleanly(ModelMeta.from_json, value, "model.json")


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(JSON)
def test_any_sidecar_file_reads_or_is_refused(tmp_path_factory, value):
    from forgetir.checkpoint import read_sidecar

    path = Path(tmp_path_factory.mktemp("sidecar")) / "model.json"
    path.write_text(
        json.dumps(
            {
                "format": "forgetir-checkpoint",
                "format_version": 1,
                **(value if isinstance(value, dict) else {"arch": value}),
            }
        )
    )
    _refused_cleanly(read_sidecar, path)


def test_the_strategies_reach_valid_values_too():
    # The properties above would hold vacuously if every input were refused.
    assert parse_override("optim.lr=1e-3") == ("optim.lr", 0.001)
    assert check_options(replace(_BASE, lr=1e-4)).lr == 1e-4
    assert asdict(load_config("cpu", ["train.steps=3"]).train)["steps"] == 3
