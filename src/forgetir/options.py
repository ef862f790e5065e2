"""The options of an unlearning run (:class:`UnlearnOptions`), kept below the commands so that
``forgetir unlearn`` records them and ``forgetir verify`` reads them back with one definition.

Example:
    >>> options_from_dict({"steps": 5}, "run.json").steps
    5
    >>> options_from_dict({"bogus": 1}, "run.json")
    Traceback (most recent call last):
    ...
    forgetir.errors.InputFileError: run.json: unknown key(s) options.bogus in options; valid: ...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from forgetir.config import (
    AT_LEAST_ONE,
    DECIBELS,
    LEARNING_RATE,
    NON_NEGATIVE,
    SEED,
    ConfigError,
    Range,
    from_dict,
)
from forgetir.errors import InputFileError


@dataclass
class UnlearnOptions:
    """Everything ``forgetir unlearn`` takes besides the checkpoint and the split.

    :func:`check_options` validates them (ranges below, finite numbers, known names)."""

    RANGES = {
        "steps": AT_LEAST_ONE,
        "batch_size": AT_LEAST_ONE,
        "patch_size": Range(8),
        "lr": LEARNING_RATE,
        "seed": SEED,
        "retain_budget": DECIBELS,
        "forget_floor": DECIBELS,
        "threads": AT_LEAST_ONE,
        "guard_every": AT_LEAST_ONE,
        "test_max_side": Range(16),
        "relearn_steps": NON_NEGATIVE,
        "ain_max_steps": NON_NEGATIVE,
        "verify_eval_every": AT_LEAST_ONE,
        "tile": AT_LEAST_ONE,
        "tile_overlap": NON_NEGATIVE,
    }

    method: str = "accurate-forgetting"
    target: str = "collapse"  # collapse | retrain-like
    hparams: dict[str, Any] = field(default_factory=dict)  # method hyperparameters
    steps: int = 60
    batch_size: int = 8
    patch_size: int = 64
    lr: float | None = None  # None: the method's published learning rate
    seed: int = 0
    threads: int | None = None
    retain_budget: float | None = None  # dB a retained task may lose (held-out guard set)
    forget_floor: float | None = None  # stop once forget PSNR (guard set) is at or below this
    guard_every: int = 10
    protocol: str = "promptir"
    test_set: str = "photos+deadleaves"  # the paired verdict needs more than 7 photos
    test_max_side: int | None = 256
    verify: bool = True
    relearn_steps: int = 20
    ain_max_steps: int = 100
    verify_eval_every: int = 5
    # A checkpoint that saw none of an instance split's images: calibrates the per-example
    # membership attack (forgetir.checks.calibrated_membership); None: uncalibrated attack.
    mia_reference: str | None = None
    grids: bool = True
    quiet: bool = False
    # None: BEFORE's training data. "deadleaves" or a folder of images: data-free mode, every
    # task synthesised on these clean images (see forgetir.unlearn.clean_source_images).
    clean_source: str | None = None
    # Tiled inference of every whole test image (evaluation, verification, grids): tile side
    # and overlap in pixels (see forgetir.models.tiling); None: whole images / the default.
    tile: int | None = None
    tile_overlap: int | None = None
    # Autocast of unlearning's steps and of every test-image restoration (forgetir.inference
    # PRECISIONS): auto is bf16 on a GPU, fp32 on a CPU; weights stay fp32 either way.
    precision: str = "auto"


# Fields whose option is not the field's name: the test-photo size is --max-side on every command.
_OPTION_NAMES = {"test_max_side": "--max-side"}


def option_name(field_name: str) -> str:
    """The command-line option of an :class:`UnlearnOptions` field (``batch_size`` ->
    ``--batch-size``, ``test_max_side`` -> ``--max-side``), as error messages name it."""
    return _OPTION_NAMES.get(field_name, "--" + field_name.replace("_", "-"))


def options_from_dict(data: Any, where: str) -> UnlearnOptions:
    """The :class:`UnlearnOptions` a run recorded (``run.json``'s ``options``), checked: an
    unknown key or a value out of range is an error naming ``where``."""
    try:
        return from_dict(UnlearnOptions, data, "options.")
    except ConfigError as e:
        raise InputFileError(f"{where}: {e}") from None
