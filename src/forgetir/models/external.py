"""Restoration models from the user's own code: a Python file with a factory, an installed
plugin (entry point group ``forgetir.models``), or a live ``nn.Module``.

A model here is any ``torch.nn.Module`` that maps a degraded (B, 3, H, W) batch in [0, 1] to the
restored batch. Everything forgetir does (every unlearning method, the verification, the report)
needs only that, except ``encoder-noise``, which also needs the encoder: either the model has
``encode(x)`` and ``encoder_parameters()`` (as forgetir's own models do), or its attribute
``forgetir_encoder`` names a sub-module that maps the image to its features (when that
sub-module returns a tuple or list, the last item is taken as the features).

Registering records where the model came from (``source``). Checkpoints saved from such a model
keep that record (the module file's path, the factory's name and the file's SHA-256, or the
entry point). Loading such a checkpoint never imports that file (weights are data; data never
runs code): the user registers it again with ``--model-module FILE.py:FACTORY`` (or
:func:`register_module_factory`), and a module whose content differs from the recorded one is
refused rather than given weights that belong to a different network.

Example:
    >>> import pathlib, tempfile
    >>> d = tempfile.mkdtemp()
    >>> _ = pathlib.Path(d, "net.py").write_text(
    ...     "import torch\\n"
    ...     "def build(width=4):\\n"
    ...     "    return torch.nn.Conv2d(3, 3, 3, padding=1)\\n")
    >>> name = register_module_factory(f"{d}/net.py:build")
    >>> from forgetir.models import create_model
    >>> create_model(name).forgetir_spec["source"]["factory"]
    'build'
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from forgetir.errors import InputFileError, InvalidInputError
from forgetir.models.dry_run import checked_factory
from forgetir.models.registry import MODELS, ModelEntry

ENTRY_POINT_GROUP = "forgetir.models"
_entry_points_loaded = False


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def parse_module_spec(spec: str) -> tuple[Path, str]:
    """``"path/to/file.py:factory"`` -> (absolute path, factory name), checked.

    Example:
        >>> try:
        ...     parse_module_spec("net.py")
        ... except InvalidInputError as e:
        ...     print(e)
        --model-module 'net.py': give FILE.py:FACTORY, e.g. my_net.py:build
    """
    path, sep, factory = str(spec).rpartition(":")
    if not sep or not path or not factory.isidentifier():
        raise InvalidInputError(
            f"--model-module {spec!r}: give FILE.py:FACTORY, e.g. my_net.py:build"
        )
    file = Path(path).expanduser().resolve()
    if file.suffix != ".py":
        raise InvalidInputError(f"--model-module {spec!r}: {path!r} is not a .py file")
    if not file.is_file():
        raise InputFileError(f"--model-module {spec!r}: file {str(file)!r} does not exist")
    return file, factory


def _import_file(file: Path, sha: str) -> ModuleType:
    # One module name per file content, so a changed file never reuses a stale import.
    name = f"forgetir_user_{file.stem}_{sha[:12]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise InputFileError(f"cannot import model module {str(file)!r}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise InputFileError(
            f"importing model module {str(file)!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    return module


def _register(name: str, factory: Callable[..., nn.Module], source: dict[str, Any]) -> str:
    if name in MODELS:
        existing = MODELS.get(name).source
        if existing == source:
            return name  # the same code registered again (a second run in one process)
        raise InvalidInputError(
            f"model name {name!r} is already registered (from {existing or 'forgetir itself'}); "
            "choose another name"
        )
    where = source.get("module") or source.get("entry_point") or source.get("object")
    MODELS.add(name, ModelEntry(name, factory, {}, f"user model ({where})", source))
    return name


def register_module_factory(spec: str, name: str | None = None) -> str:
    """Import ``FILE.py`` and register its ``FACTORY`` (a callable returning the model, with
    keyword arguments that have defaults, or none) under ``name`` (default ``<stem>.<factory>``).
    Returns the registry name."""
    file, factory_name = parse_module_spec(spec)
    sha = _sha256(file)
    module = _import_file(file, sha)
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        found = sorted(k for k, v in vars(module).items() if callable(v) and not k.startswith("_"))
        raise InvalidInputError(
            f"--model-module {spec!r}: {str(file)!r} has no callable {factory_name!r}; "
            f"callables there: {', '.join(found) or 'none'}"
        )
    source = {"kind": "module", "module": str(file), "factory": factory_name, "sha256": sha}
    # Every model it builds is tried on a dry batch first (shape, finiteness, parameters).
    checked = checked_factory(factory, f"--model-module {file}:{factory_name}")
    return _register(name or f"{file.stem}.{factory_name}", checked, source)


def load_entry_points() -> list[str]:
    """Register the models of installed plugins (entry point group ``forgetir.models``) once.

    An entry point may name a factory (registered under the entry point's name) or a module
    whose import registers models itself with :func:`forgetir.models.register_model`. A plugin
    that fails to load is skipped with a warning: it must not break forgetir.
    """
    global _entry_points_loaded
    if _entry_points_loaded:
        return []
    _entry_points_loaded = True
    names = []
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception as exc:  # a third-party plugin's own failure
            warnings.warn(
                f"forgetir.models plugin {ep.name!r} ({ep.value}) failed: {exc}", stacklevel=2
            )
            continue
        if isinstance(obj, ModuleType) or not callable(obj):
            continue  # a module that registered its models on import
        dist = getattr(ep, "dist", None)
        source = {
            "kind": "entry_point",
            "entry_point": f"{ep.name} = {ep.value}",
            "distribution": getattr(dist, "name", None),
        }
        try:
            names.append(_register(ep.name, obj, source))
        except InvalidInputError as exc:  # e.g. a plugin reusing a built-in model's name
            warnings.warn(f"forgetir.models plugin skipped: {exc}", stacklevel=2)
    return names


def reset_entry_points() -> None:
    """Forget that plugins were loaded (tests; after installing a plugin in a session)."""
    global _entry_points_loaded
    _entry_points_loaded = False


def _same_code(source: dict[str, Any], recorded: dict[str, Any]) -> bool:
    """Whether a registered ``source`` is the module file and factory a checkpoint recorded
    (by content: a moved or renamed copy of the same file is the same code)."""
    return (
        source.get("kind") == "module"
        and source.get("sha256") == recorded.get("sha256")
        and source.get("factory") == recorded.get("factory")
    )


def ensure_registered(name: str, source: dict[str, Any], where: str) -> None:
    """Check that model ``name``, which a checkpoint (``where``) says was built by ``source``,
    is registered from that very code; never import anything to make it so.

    A sidecar is data: the module file it names is *information* (what the user must pass),
    never code that reading weights runs, even when its hash matches (a hash proves the file
    unchanged, not trusted). The user registers it (``--model-module FILE.py:FACTORY``,
    :func:`register_module_factory`) or installs it as a plugin (entry points are loaded).
    Refuses when the code registered under ``name`` is not the recorded code (changed file).
    """
    kind = source.get("kind")
    if kind == "entry_point":
        load_entry_points()
        if name not in MODELS:
            raise InputFileError(
                f"{where}: model {name!r} came from the plugin {source.get('entry_point')!r} "
                f"(distribution {source.get('distribution')!r}), which is not installed"
            )
        return
    if kind != "module":
        raise InputFileError(
            f"{where}: model {name!r} was saved from a live module that forgetir cannot "
            f"rebuild ({source.get('object', 'no source')}); build it yourself and load the "
            "weights with load_state_dict"
        )
    file, factory, sha = source.get("module"), source.get("factory"), source.get("sha256")
    if name in MODELS:
        registered = MODELS.get(name).source or {}
        if _same_code(registered, source):
            return
        now = registered.get("sha256") or "forgetir's own model"
        raise InputFileError(
            f"{where}: model module {str(file)!r} changed since the checkpoint was saved: "
            f"{name!r} is registered now from {registered.get('module', 'forgetir')!r} "
            f"(sha256 {str(now)[:12]}...), the checkpoint recorded {str(sha)[:12]}...; the "
            "weights may not fit that code. Register the recorded file or save a new checkpoint"
        )
    for other in list(MODELS):  # the same code registered under another name (moved file)
        entry = MODELS.get(other)
        if entry.source and _same_code(entry.source, source):
            _register(name, entry.cls, entry.source)
            return
    raise InputFileError(
        f"{where}: model {name!r} is built by {factory!r} in {str(file)!r} (sha256 "
        f"{str(sha)[:12]}...); forgetir never runs code that a data file names: if you trust "
        f"that file, pass --model-module {file}:{factory} (in Python: "
        "forgetir.models.register_module_factory)"
    )


def register_instance(model: nn.Module, factory: str | None = None) -> str:
    """Give a live ``model`` a ``forgetir_spec`` so that checkpoints of it can be rebuilt.

    ``factory`` is ``"FILE.py:FACTORY"``. Without it the model's class is used as the factory
    when it is defined in a file and constructible without arguments; otherwise the model
    is registered as not rebuildable (runs work; loading their checkpoints needs your code).
    """
    if isinstance(getattr(model, "forgetir_spec", None), dict):
        return str(model.forgetir_spec["name"])
    if factory is not None:
        name = register_module_factory(factory)
    else:
        name = _register_class(type(model))
    model.forgetir_spec = {"name": name, "args": {}, "source": MODELS.get(name).source}
    return name


def _register_class(cls: type) -> str:
    import inspect

    try:
        file = Path(inspect.getsourcefile(cls) or "")
    except TypeError:
        file = Path("")
    required = [
        p
        for p in list(inspect.signature(cls.__init__).parameters.values())[1:]
        if p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    if (
        file.suffix == ".py"
        and file.is_file()
        and not required
        and "<locals>" not in cls.__qualname__
    ):
        source = {
            "kind": "module",
            "module": str(file.resolve()),
            "factory": cls.__qualname__,
            "sha256": _sha256(file),
        }
        return _register(f"{file.stem}.{cls.__qualname__}", cls, source)
    source = {"kind": "object", "object": f"{cls.__module__}.{cls.__qualname__}"}
    return _register(f"{cls.__module__}.{cls.__qualname__}", cls, source)


def set_encoder(model: nn.Module, encoder: str) -> None:
    """Tell ``encoder-noise`` which sub-module of ``model`` is its encoder (dotted name)."""
    try:
        model.get_submodule(encoder)
    except AttributeError:
        names = [n for n, _ in model.named_children()]
        raise InvalidInputError(
            f"encoder {encoder!r} is not a sub-module of {type(model).__name__}; its "
            f"sub-modules: {', '.join(names) or 'none'}"
        ) from None
    model.forgetir_encoder = encoder


def _encoder_module(model: nn.Module) -> nn.Module | None:
    name = getattr(model, "forgetir_encoder", None)
    return model.get_submodule(name) if isinstance(name, str) else None


def has_encoder(model: nn.Module) -> bool:
    """Whether ``encoder-noise`` can reach ``model``'s encoder."""
    own = hasattr(model, "encode") and hasattr(model, "encoder_parameters")
    return own or _encoder_module(model) is not None


def encode(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``model``'s encoder features of ``x`` (its ``encode`` or its ``forgetir_encoder``)."""
    if hasattr(model, "encode"):
        return model.encode(x)
    module = _encoder_module(model)
    if module is None:
        raise InvalidInputError(f"{type(model).__name__} has no encoder (see set_encoder)")
    out = module(x)
    return out[-1] if isinstance(out, tuple | list) else out


def encoder_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters :func:`encode` depends on."""
    if hasattr(model, "encoder_parameters"):
        return list(model.encoder_parameters())
    module = _encoder_module(model)
    if module is None:
        raise InvalidInputError(f"{type(model).__name__} has no encoder (see set_encoder)")
    return list(module.parameters())


def _feed_condition(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    # A forward pre-hook: every call gets the model's recorded condition unless it was given.
    # It reads the condition from the module, so deep copies carry it and no handle is kept.
    cond = getattr(module, "forgetir_condition", None)
    if isinstance(cond, dict) and cond["argument"] not in kwargs:
        kwargs = {**kwargs, cond["argument"]: cond["value"]}
    return args, kwargs


def set_condition(model: nn.Module, argument: str, value: Any) -> None:
    """Feed ``model(x, **{argument: value})`` on every call: for models that take the task as
    an input (a task name or text prompt) but are run without a degradation label.

    Every evaluation row (BEFORE, unlearned, UT) and every training step then sees the same
    condition; checkpoints record it (``model_condition``) and :func:`forgetir.load_model`
    applies it again; the report's audit manifest states it.

    Example:
        >>> class Prompted(nn.Module):
        ...     def forward(self, x, prompt="none"):
        ...         return x * (2.0 if prompt == "brighten" else 1.0)
        >>> net = Prompted()
        >>> set_condition(net, "prompt", "brighten")
        >>> float(net(torch.ones(1)))
        2.0
    """
    import inspect
    import json

    params = inspect.signature(model.forward).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    if argument not in params and not takes_any:
        raise InvalidInputError(
            f"condition {argument!r}: {type(model).__name__}.forward takes no such argument; "
            f"its arguments: {', '.join(params)}"
        )
    try:
        json.dumps(value)
    except TypeError:
        raise InvalidInputError(
            f"condition {argument}={value!r}: give a string, number or list (it is recorded "
            "in checkpoints and the report)"
        ) from None
    first = not isinstance(getattr(model, "forgetir_condition", None), dict)
    model.forgetir_condition = {"argument": argument, "value": value}
    if first:
        model.register_forward_pre_hook(_feed_condition, with_kwargs=True)


def describe_condition(condition: dict[str, Any] | None) -> str:
    """One line for the report: how the model was fed."""
    if not condition:
        return "none: the model takes only the degraded image"
    return (
        f"fixed input {condition['argument']}={condition['value']!r} for every image, task and "
        "model (BEFORE, unlearned, UT); no degradation label was given to the model"
    )
