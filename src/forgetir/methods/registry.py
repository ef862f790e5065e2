"""Method registry: ``register_method``, ``list_methods``, ``get_method``, ``create_method``.

The registry name, the class's ``name`` and the config name are one string.

Example:
    >>> from forgetir.methods import create_method, list_methods
    >>> from forgetir.models import create_model
    >>> "accurate-forgetting" in list_methods()
    True
    >>> method = create_method("accurate-forgetting", create_model("promptir-tiny"),
    ...                        overrides={"w_adv": 1.5})
    >>> method.cfg.w_adv
    1.5
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from forgetir.methods.base import METHODS, UnlearningMethod


def register_method(name: str) -> Callable[[type[UnlearningMethod]], type[UnlearningMethod]]:
    """Class decorator: register an UnlearningMethod subclass under ``name`` (== its ``name``)."""

    def deco(cls: type[UnlearningMethod]) -> type[UnlearningMethod]:
        if not (isinstance(cls, type) and issubclass(cls, UnlearningMethod)):
            raise TypeError(f"{cls!r} is not an UnlearningMethod subclass")
        if cls.name != name:
            raise ValueError(f"{cls.__name__}.name is {cls.name!r}; it must equal {name!r}")
        if not cls.summary:
            raise ValueError(f"{cls.__name__} needs a one-line summary")
        return METHODS.add(name, cls)

    return deco


def list_methods() -> list[str]:
    """Registered method names, sorted."""
    return METHODS.names()


def get_method(name: str) -> type[UnlearningMethod]:
    """The class registered as ``name``; an unknown name raises UnknownNameError listing all."""
    return METHODS.get(name)


def create_method(
    name: str,
    model: nn.Module,
    original: nn.Module | None = None,
    overrides: dict[str, Any] | None = None,
    target: str = "collapse",
    generator: torch.Generator | None = None,
    reference: nn.Module | None = None,
) -> UnlearningMethod:
    """Build method ``name`` around ``model``; ``overrides`` change its config defaults.

    ``original`` is the model before unlearning (a frozen deep copy of ``model`` if None);
    ``reference`` an optional UT model for the ``"retrain-like"`` target.
    """
    cls = get_method(name)
    return cls(
        model,
        original=original,
        cfg=dict(overrides or {}),
        target=target,
        generator=generator,
        reference=reference,
    )
