"""The tiny all-in-one models that ship inside the package (the embedded default).

``shipped:before`` is ``promptir-tiny`` trained by ``forgetir train --config cpu`` on all five
tasks; ``shipped:ut-dehaze`` / ``ut-derain`` / ``ut-denoise`` are the same recipe with that task
left out (the UT reference models); ``shipped:ut-instances`` is the same recipe on the retain part
of a deletion request of 16 training images, whose split manifest ships beside it
(:func:`shipped_split`). ``shipped:inpaint-before`` is an inpainting promptir-tiny trained on
dead leaves of three content classes and ``shipped:inpaint-ut-stripes`` its retrain without the
``stripes`` class (the content-class setting of ``forgetir reproduce``).

The second testbed: ``shipped:adair-before`` is ``adair-tiny`` trained by the same recipe for
3000 steps (twice as long), with ``shipped:adair-ut-dehaze`` / ``adair-ut-derain`` /
``adair-ut-denoise`` its UT models.

Scenario models (fine-tuned from ``inpaint-before``, see :mod:`forgetir.membership.scenarios`):
``shipped:mem-before`` memorises the 32 training images of a deletion request's split and
``shipped:mem-ut`` is the same recipe without the 16 deleted ones (the split, with members,
deleted and held-out non-members, ships as ``mem-before.split.json`` / ``mem-ut.split.json``);
``shipped:class-before`` learned the ``motif`` class (a fixed tiled pattern whose restoration
needs a class prior) besides disks/squares/stripes, and ``shipped:class-ut-motif`` is the same
recipe without it. Each has a JSON sidecar with the exact command, seed, steps, wall time and
metrics.

Example:
    >>> resolve_checkpoint("shipped:before").name
    'before.safetensors'
"""

from __future__ import annotations

from pathlib import Path

from forgetir.degradations.registry import task_groups
from forgetir.errors import InputFileError, UnknownNameError

WEIGHTS_DIR = Path(__file__).parent.parent / "weights"
SHIPPED = (
    "before",
    "ut-dehaze",
    "ut-derain",
    "ut-denoise",
    "ut-instances",
    "inpaint-before",
    "inpaint-ut-stripes",
    "mem-before",
    "mem-ut",
    "class-before",
    "class-ut-motif",
    "adair-before",
    "adair-ut-dehaze",
    "adair-ut-derain",
    "adair-ut-denoise",
)
# Shipped all-in-one BEFORE models -> the name prefix of their UT models.
UT_PREFIX = {"before": "ut-", "adair-before": "adair-ut-"}
# Scenario models, fine-tuned on 32x32 images for one purpose (recalling a deletion request's
# images; a class prior), not as general inpainters: on held-out 64-px images they fill the
# centre hole no better than the grey fill (tests/test_scenarios.py checks what they are for).
SCENARIO_MODELS = ("mem-before", "mem-ut", "class-before", "class-ut-motif")
PREFIX = "shipped:"


def ut_name_for(forget_tasks: list[str], parent: str = "shipped:before") -> str | None:
    """The shipped UT model of shipped BEFORE ``parent`` that was trained without
    ``forget_tasks`` (None if none matches).

    Example:
        >>> ut_name_for(["derain"], "shipped:adair-before")
        'shipped:adair-ut-derain'
    """
    prefix = UT_PREFIX.get(parent.removeprefix(PREFIX)) if parent.startswith(PREFIX) else None
    names = {"denoise" if t.startswith("denoise") else t for t in forget_tasks}
    if prefix is None or len(names) != 1:
        return None
    family = names.pop()
    if f"{prefix}{family}" not in SHIPPED:
        return None
    if family == "denoise" and set(forget_tasks) != set(task_groups()["denoise"]):
        return None
    return f"{PREFIX}{prefix}{family}"


def resolve_checkpoint(spec: str | Path) -> Path:
    """``"shipped:NAME"`` -> the packaged file; anything else is a path, returned as is."""
    text = str(spec)
    if not text.startswith(PREFIX):
        return Path(spec)
    name = text[len(PREFIX) :]
    if name not in SHIPPED:
        raise UnknownNameError("shipped model", text, [PREFIX + s for s in SHIPPED])
    path = WEIGHTS_DIR / f"{name}.safetensors"
    if not path.is_file():
        raise InputFileError(f"shipped model {text!r} is missing from the package ({path})")
    return path


def shipped_split(name: str) -> Path | None:
    """The split manifest a shipped UT model was trained on (its retain part), if any.

    Example:
        >>> shipped_split("ut-instances").name
        'ut-instances.split.json'
    """
    if name not in SHIPPED:
        raise UnknownNameError("shipped model", name, SHIPPED)
    path = WEIGHTS_DIR / f"{name}.split.json"
    return path if path.is_file() else None
