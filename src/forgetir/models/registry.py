"""Model registry: ``create_model(name, **overrides)`` and ``list_models()``.

Example:
    >>> from forgetir.models import create_model
    >>> model = create_model("promptir-tiny")
    >>> sum(p.numel() for p in model.parameters()) > 0
    True
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from forgetir.errors import InvalidInputError
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


def list_models() -> list[str]:
    """Registered model names, sorted (with those of installed ``forgetir.models`` plugins)."""
    # Imported here: ``external`` imports this module to register plugins into MODELS.
    from forgetir.models.external import load_entry_points

    load_entry_points()
    return MODELS.names()


def get_entry(name: str) -> ModelEntry:
    if name not in MODELS:
        from forgetir.models.external import load_entry_points

        load_entry_points()
    return MODELS.get(name)


def model_args(name: str, **overrides: Any) -> dict[str, Any]:
    """The full constructor arguments ``create_model(name, **overrides)`` would use."""
    entry = get_entry(name)
    target = entry.cls.__init__ if isinstance(entry.cls, type) else entry.cls
    params = inspect.signature(target).parameters
    plain = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    valid = [p for p in params if p != "self" and params[p].kind not in plain]
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise InvalidInputError(
            f"unknown argument(s) {unknown} for model {name!r}; valid: {', '.join(valid)}"
        )
    args = {p: params[p].default for p in valid if params[p].default is not inspect.Parameter.empty}
    args.update(entry.defaults)
    args.update(overrides)
    return args


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build the registered model ``name``; keyword overrides change its constructor arguments.

    The returned module carries ``forgetir_spec = {"name": ..., "args": ...}`` so that
    :func:`forgetir.checkpoint.save_model` can record how to rebuild it.
    """
    args = model_args(name, **overrides)
    entry = get_entry(name)
    model = entry.cls(**args)
    if not isinstance(model, nn.Module):
        raise InvalidInputError(
            f"model {name!r}: its factory returned a {type(model).__name__}, not a torch.nn.Module"
        )
    model.forgetir_spec = {"name": name, "args": args}
    if entry.source is not None:
        model.forgetir_spec["source"] = dict(entry.source)
    return model
