"""forgetir: make an image restoration model forget part of its training data, and prove it.

Example:
    >>> import forgetir
    >>> model = forgetir.create_model("promptir-tiny")
    >>> "promptir" in forgetir.list_models()
    True
"""

from forgetir.checkpoint import load_model, save_model
from forgetir.models import create_model, list_models

__version__ = "0.1.0"
__all__ = ["create_model", "list_models", "load_model", "save_model", "__version__"]
