"""Synthetic degradations, one module per family, and the seed paper's task names.

Families (``list_degradations()``): ``noise``, ``rain``, ``haze``, ``inpaint``. Tasks
(``list_tasks()``): ``dehaze``, ``derain``, ``denoise_15``, ``denoise_25``, ``denoise_50`` (the
seed paper's, in its column order) and ``inpaint_4``, ``inpaint_8``.

Example:
    >>> import torch
    >>> from forgetir.degradations import degrade, list_tasks
    >>> hazy, params = degrade("dehaze", torch.rand(2, 3, 32, 32), generator=0)
    >>> hazy.shape, len(params["A"])
    (torch.Size([2, 3, 32, 32]), 2)
"""

# Imported for their @register_degradation side effect.
from forgetir.degradations import haze, inpaint, noise, rain  # noqa: F401
from forgetir.degradations.registry import (
    TASKS,
    as_generator,
    degrade,
    degrade_each,
    forget_types,
    get_degradation,
    list_degradations,
    list_tasks,
    register_degradation,
    task_family,
    task_groups,
)

__all__ = [
    "TASKS",
    "as_generator",
    "degrade",
    "degrade_each",
    "forget_types",
    "get_degradation",
    "list_degradations",
    "list_tasks",
    "register_degradation",
    "task_family",
    "task_groups",
]
