"""Which method to use for a request, and why: one table, read by ``forgetir demo`` and
``forgetir unlearn`` (when no ``--method`` is given) and printed with the reason.

The reasons state what the benchmark measured (docs/results.md); where no method reaches UT
for a request kind, the reason says so rather than promise forgetting.

Example:
    >>> recommended_method(["dehaze"])[0]
    'proxy-retrain-guarded'
    >>> recommended_method(None)[0]
    'orbit-consistency'
    >>> recommended_method(None, split_kind="class")[0]
    'orbit-consistency-class'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from forgetir.methods.registry import get_method
from forgetir.options import UnlearnOptions

__all__ = [
    "PAPER_METHOD",
    "RECOMMENDED",
    "SCHEDULE_DEFAULTS",
    "SPLITS",
    "method_and_schedule",
    "recommended_method",
]

PAPER_METHOD = "accurate-forgetting"

# forget task family -> (method, why)
RECOMMENDED: dict[str, tuple[str, str]] = {
    "dehaze": (
        "proxy-retrain-guarded",
        "on haze it lands on UT over 3 seeds (-0.12 dB promptir-tiny, -0.13 adair-tiny, on "
        "photos and held-out images it was never tuned on), at a cost of 0.4-0.5 dB on derain, "
        "and relearns 0.8-1.1 dB faster than UT (docs/results.md)",
    ),
    "derain": (
        "proxy-retrain-guarded",
        "no method here forgets rain (UT makes rainy images worse than the input): this one "
        "ends +1.7 to +3.3 dB above UT over 3 seeds and costs dehaze 0.7-1.7 dB; expect "
        "'not forgotten' (docs/results.md)",
    ),
    "denoise": (
        "proxy-retrain-full",
        "on noise it ends about 0.5 dB above UT over 3 seeds (+0.58 dB promptir-tiny, +0.42 "
        "adair-tiny, on images it was never tuned on: verdict undetermined, where every other "
        "method stays 2.8-6.7 dB above), but costs dehaze about 0.9 dB: check the retained "
        "tasks (docs/results.md)",
    ),
}
# split kind (forgetir split --by ...) -> (method, why); measured with benchmarks/bench_splits.py
SPLITS: dict[str, tuple[str, str]] = {
    "instances": (
        "orbit-consistency",
        "on the deletion request it brings the deleted images down to the non-members' level "
        "(calibrated membership AUC 0.48 against UT's 0.54; the seed paper's method 0.21, "
        "fine-tuning 1.00, same budget) at 5% of training, but costs the kept training images "
        "1.5-1.9 dB; it needs a model trained without flips/rotations (docs/results.md)",
    ),
    "class": (
        "orbit-consistency-class",
        "on the content class it takes 1.1 dB off the forgotten class (UT 1.8 dB), the other "
        "classes within about 0.1 dB, at 5% of training; it needs a model trained without "
        "flips/rotations (docs/results.md)",
    ),
}

_OTHER_SPLIT_REASON = (
    "a {kind} split: the method recommended per degradation type is chosen from --forget TASK; "
    "for a split the seed paper's method is the published default"
)


def recommended_method(
    forget_tasks: Sequence[str] | None, split_kind: str | None = None
) -> tuple[str, str]:
    """(method, why) for forgetting ``forget_tasks`` (task names such as ``denoise_25``), or a
    split of images when None or empty: ``split_kind`` is the manifest's ``kind``
    (``"instances"``, the default, or ``"class"``; another kind gets the seed paper's method).
    Several families: the first one's method."""
    for task in forget_tasks or ():
        family = task.split("_")[0]
        if family in RECOMMENDED:
            return RECOMMENDED[family]
    kind = split_kind or "instances"
    if kind in SPLITS:
        return SPLITS[kind]
    return PAPER_METHOD, _OTHER_SPLIT_REASON.format(kind=kind)


# The schedule a method may recommend (its recommended_schedule), else the run defaults.
SCHEDULE_DEFAULTS: dict[str, int] = {
    f.name: f.default
    for f in dataclasses.fields(UnlearnOptions)
    if f.name in ("steps", "batch_size", "patch_size")
}


def method_and_schedule(
    method: str | None,
    forget_tasks: Sequence[str] | None,
    given: Mapping[str, int | None] | None = None,
    split_kind: str | None = None,
) -> tuple[str, dict[str, int], str | None]:
    """(method, schedule, why): the method recommended for ``forget_tasks`` when none is given
    (``why`` says so; None when the method was given; ``split_kind``: the split manifest's
    ``kind`` when forgetting a split), and steps / batch size / patch size as
    ``given``, else the method's recommended schedule, else the run defaults.

    Example:
        >>> method_and_schedule(None, ["dehaze"], {"steps": 5})[:2]
        ('proxy-retrain-guarded', {'steps': 5, 'batch_size': 8, 'patch_size': 32})
    """
    why = None
    if method is None:
        method, why = recommended_method(forget_tasks, split_kind)
    plan = get_method(method).recommended_schedule
    given = given or {}
    schedule = {
        name: given[name] if given.get(name) is not None else int(plan.get(name, default))
        for name, default in SCHEDULE_DEFAULTS.items()
    }
    return method, schedule, why
