"""The model registry: :data:`MODELS` and the :func:`register_model` decorator. A leaf: building
a model and discovering plugins (:mod:`forgetir.models.factory`, :mod:`forgetir.models.external`)
sit above it.

Example:
    >>> "promptir-tiny" in MODELS
    True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from forgetir.registry import Registry


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: ``cls`` is a class or any factory returning an ``nn.Module``;
    ``source`` says where a model from the user's code came from (see
    :mod:`forgetir.models.external`) and is recorded in checkpoints so they can be rebuilt."""

    name: str
    cls: Callable[..., nn.Module]
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    source: dict[str, Any] | None = None


MODELS: Registry[ModelEntry] = Registry("model")


def register_model(
    name: str, defaults: dict[str, Any] | None = None, description: str = ""
) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Register ``cls`` under ``name`` with default constructor arguments.

    One class may be registered under several names (``promptir`` and ``promptir-tiny``).
    """

    def deco(cls: type[nn.Module]) -> type[nn.Module]:
        MODELS.add(name, ModelEntry(name, cls, dict(defaults or {}), description))
        return cls

    return deco
