"""Unlearning methods and their registry (one file per method).

Every method is a small class: ``loss(forget_batch, retain_batch) -> {"loss": Tensor, **logs}``,
``trainable_parameters()``, optional ``prepare()`` and ``should_stop()``; the one loop lives in
``forgetir.engine``.

Example:
    >>> from forgetir.methods import list_methods
    >>> list_methods()[:3]
    ['accurate-forgetting', 'bad-teacher', 'encoder-noise']
"""

# Imported explicitly (no filename scanning) so that each registers itself.
from forgetir.methods import (  # noqa: F401
    accurate_forgetting,
    bad_teacher,
    encoder_noise,
    finetune,
    gradient_ascent,
    neggrad_plus,
    orbit_consistency,
    proxy_retrain,
    random_target,
    retrain,
    salun,  # noqa: F401  (after the methods it may wrap)
    scrub,
)
from forgetir.methods.base import TARGETS, UnlearningMethod
from forgetir.methods.registry import create_method, get_method, list_methods, register_method

__all__ = [
    "TARGETS",
    "UnlearningMethod",
    "create_method",
    "get_method",
    "list_methods",
    "register_method",
]
