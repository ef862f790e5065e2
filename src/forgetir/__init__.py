"""forgetir: make an image restoration model forget part of its training data, and prove it.

``forgetir.unlearn_model(model, forget="dehaze")`` runs a method, the verification and the
report on any ``torch.nn.Module`` (see :mod:`forgetir.api`); ``forgetir.unlearn`` is the module
behind ``forgetir unlearn``.

Example:
    >>> import forgetir
    >>> model = forgetir.create_model("promptir-tiny")
    >>> "promptir" in forgetir.list_models()
    True
"""

from forgetir._version import __version__
from forgetir.api import UnlearnResult, unlearn_model
from forgetir.checkpoint import load_model, save_model
from forgetir.models import create_model, list_models, register_model

__all__ = [
    "UnlearnResult",
    "create_model",
    "list_models",
    "load_model",
    "register_model",
    "save_model",
    "unlearn_model",
    "__version__",
]
