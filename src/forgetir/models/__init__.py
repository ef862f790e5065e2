"""Restoration architectures and their registry.

Example:
    >>> from forgetir.models import create_model, list_models
    >>> "promptir-tiny" in list_models()
    True
"""

from forgetir.models import adair, moceir, promptir  # noqa: F401  (registers the architectures)
from forgetir.models.base import RestorationModel
from forgetir.models.factory import create_model, get_entry, list_models, model_args
from forgetir.models.registry import register_model

__all__ = [
    "RestorationModel",
    "create_model",
    "get_entry",
    "list_models",
    "model_args",
    "register_model",
]
