"""Which method to use for a request, and why: one table, read by ``forgetir demo`` and
``forgetir unlearn`` (when no ``--method`` is given) and printed with the reason.

The reasons state what the benchmark measured (docs/results.md); where no method reaches UT
for a request kind, the reason says so rather than promise forgetting.

Example:
    >>> recommended_method(["dehaze"])[0]
    'proxy-retrain-guarded'
    >>> recommended_method(None)[0]
    'accurate-forgetting'
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
    "method_and_schedule",
    "recommended_method",
]

PAPER_METHOD = "accurate-forgetting"

# forget task family -> (method, why)
RECOMMENDED: dict[str, tuple[str, str]] = {
    "dehaze": (
        "proxy-retrain-guarded",
        "on haze it lands within a few tenths of a dB of UT on photos it was never tuned on, "
        "and relearns at UT's pace under small relearning attacks (docs/methods.md)",
    ),
    "derain": (
        "proxy-retrain-guarded",
        "no method here lands on UT for rain (UT makes rainy images worse than the input); "
        "this one comes closest without damaging the retained tasks much (docs/methods.md)",
    ),
    "denoise": (
        "proxy-retrain-full",
        "on noise it lands within 0.5 dB of UT on photos and held-out images it was never tuned "
        "on (+0.47 dB promptir-tiny, +0.44 adair-tiny, one seed), but costs the retained tasks "
        "0.3-0.55 dB, and one validation seed in three lost 3.3 dB of dehaze: check the "
        "retained tasks (docs/methods.md)",
    ),
}
_SPLIT_REASON = (
    "for a split of images (deletion request, content class) no method here reaches UT yet; "
    "the seed paper's method is the published default (docs/methods.md)"
)


def recommended_method(forget_tasks: Sequence[str] | None) -> tuple[str, str]:
    """(method, why) for forgetting ``forget_tasks`` (task names such as ``denoise_25``), or a
    split of images when None or empty. Several families: the first one's method."""
    for task in forget_tasks or ():
        family = task.split("_")[0]
        if family in RECOMMENDED:
            return RECOMMENDED[family]
    return PAPER_METHOD, _SPLIT_REASON


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
) -> tuple[str, dict[str, int], str | None]:
    """(method, schedule, why): the method recommended for ``forget_tasks`` when none is given
    (``why`` says so; None when the method was given), and steps / batch size / patch size as
    ``given``, else the method's recommended schedule, else the run defaults.

    Example:
        >>> method_and_schedule(None, ["dehaze"], {"steps": 5})[:2]
        ('proxy-retrain-guarded', {'steps': 5, 'batch_size': 8, 'patch_size': 32})
    """
    why = None
    if method is None:
        method, why = recommended_method(forget_tasks)
    plan = get_method(method).recommended_schedule
    given = given or {}
    schedule = {
        name: given[name] if given.get(name) is not None else int(plan.get(name, default))
        for name, default in SCHEDULE_DEFAULTS.items()
    }
    return method, schedule, why
