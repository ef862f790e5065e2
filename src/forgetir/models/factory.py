"""Building a registered model: :func:`create_model`, :func:`list_models` and the entries they
read, with installed ``forgetir.models`` plugins discovered (:mod:`forgetir.models.external`)
before a name is looked up.

Example:
    >>> model = create_model("promptir-tiny")
    >>> sum(p.numel() for p in model.parameters()) > 0
    True
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from forgetir.errors import InvalidInputError
from forgetir.models.external import load_entry_points
from forgetir.models.registry import MODELS, ModelEntry


def list_models() -> list[str]:
    """Registered model names, sorted (with those of installed ``forgetir.models`` plugins)."""
    load_entry_points()
    return MODELS.names()


def get_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``, installed plugins searched first if it is not there."""
    if name not in MODELS:
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
