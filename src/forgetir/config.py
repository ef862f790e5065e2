"""Typed run configuration: YAML presets, ``key=value`` overrides, unknown keys rejected.

A run's configuration is a tree of dataclasses. YAML files in ``forgetir/configs/`` give the
presets (``cpu``, ``paper``); dotted ``key=value`` overrides on the command line change single
fields; the resolved tree is written with every run.

Example:
    >>> cfg = load_config("cpu", ["optim.lr=1e-3", "train.steps=10"])
    >>> cfg.optim.lr, cfg.train.steps
    (0.001, 10)
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from forgetir.atomic import atomic_write
from forgetir.degradations.registry import TASKS
from forgetir.errors import InvalidInputError

PRESET_DIR = Path(__file__).parent / "configs"


class ConfigError(InvalidInputError):
    """A configuration file or override is invalid; the message names the key."""


@dataclass
class ModelConfig:
    name: str = "promptir-tiny"
    args: dict[str, Any] = field(default_factory=dict)
    checkpoint: str | None = None  # start from these weights instead of a fresh init


@dataclass
class DataConfig:
    source: str = "deadleaves"  # deadleaves | promptir | paired | classes
    root: str | None = None  # dataset root for non-synthetic sources
    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    exclude: list[str] = field(default_factory=list)  # tasks (or families) left out: the UT model
    patch_size: int = 64
    pool_size: int = 1024  # number of dead-leaves training images (a fixed, enumerable pool)
    pool_seed: int = 0
    image_size: int = 128  # side of each dead-leaves training image
    # the official 7 flip/rotation ops; false: every image is seen as it is (the memorisation
    # scenario, where a deletion request's exact images are what the model must not recall)
    augment: bool = True
    content_classes: list[str] | None = None
    workers: int = 0
    test_set: str = "photos"  # photos | deadleaves | promptir
    test_max_side: int | None = 256
    # Train on one part of a split manifest instead of all the data above (which must match the
    # manifest's): split=<manifest.json> part=retain is the UT of a class or instance split.
    split: str | None = None
    part: str = "retain"  # forget | retain | train (both)


@dataclass
class OptimConfig:
    name: str = "adamw"  # adamw | adam | sgd
    lr: float = 2e-4
    weight_decay: float = 0.01
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    momentum: float = 0.0  # sgd only
    warmup_steps: int = 0
    schedule: str = "cosine"  # cosine | constant
    min_lr: float = 0.0
    # Step at which the cosine reaches min_lr (None: train.steps). The official PromptIR recipe
    # anneals over 150 epochs but stops training at 120, so its paper preset sets this apart.
    decay_steps: int | None = None
    grad_clip: float | None = None


@dataclass
class TrainConfig:
    steps: int = 1000
    batch_size: int = 8
    seed: int = 0
    eval_every: int = 0  # 0: only at the end
    ckpt_every: int = 100
    log_every: int = 10
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto (bf16 autocast on GPU, fp32 on CPU) | fp32 | bf16 | fp16
    channels_last: bool = False
    compile: bool = False
    threads: int | None = None  # torch intra-op threads on CPU
    tensorboard: bool = True  # TensorBoard event files in <out>/tb beside log.csv
    nonfinite: str = "stop"  # on a NaN/inf loss: stop (after rolling back) | skip the step
    guard_every: int = 10  # steps between in-memory copies of the last good weights


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass(frozen=True)
class Range:
    """The valid interval of a numeric field; ``str()`` says it the way error messages do.

    Example:
        >>> str(Range(0, lo_open=True)), str(Range(0, 1, hi_open=True)), Range(1).contains(0)
        ('> 0', 'in [0, 1)', False)
    """

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def contains(self, value: float) -> bool:
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            return False
        return not (self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi))

    def __str__(self) -> str:
        if self.hi is None:
            return f"{'>' if self.lo_open else '>='} {self.lo:g}"
        if self.lo is None:
            return f"{'<' if self.hi_open else '<='} {self.hi:g}"
        left, right = "(" if self.lo_open else "[", ")" if self.hi_open else "]"
        return f"in {left}{self.lo:g}, {self.hi:g}{right}"


POSITIVE = Range(0, lo_open=True)
NON_NEGATIVE = Range(0)
AT_LEAST_ONE = Range(1)
UNIT = Range(0, 1, hi_open=True)  # [0, 1): betas, momentum
# A step size above 1 (per Adam step, each weight moves by about lr) only destroys the model.
LEARNING_RATE = Range(0, 1, lo_open=True)
SEED = Range(0, 2**63 - 1)  # torch, numpy and Python generators all take 64-bit seeds
DECIBELS = Range(0, 100)  # PSNR figures and budgets: 100 dB is already a perfect image

# Numeric fields whose value must lie in a range (None, where a field allows it, always does);
# checked when a config is built, with the range in the message. Dataclasses outside the run
# config (method configs, unlearning options) declare theirs as a ``RANGES`` class attribute.
RANGES: dict[str, Range] = {
    "data.patch_size": Range(8),
    "data.pool_size": AT_LEAST_ONE,
    "data.pool_seed": SEED,
    "data.image_size": Range(8),
    "data.workers": NON_NEGATIVE,
    "data.test_max_side": Range(16),
    "optim.lr": LEARNING_RATE,
    "optim.weight_decay": NON_NEGATIVE,
    "optim.betas": UNIT,
    "optim.momentum": UNIT,
    "optim.warmup_steps": NON_NEGATIVE,
    "optim.min_lr": Range(0, 1),
    "optim.decay_steps": AT_LEAST_ONE,
    "optim.grad_clip": POSITIVE,
    "train.steps": AT_LEAST_ONE,
    "train.batch_size": AT_LEAST_ONE,
    "train.seed": SEED,
    "train.eval_every": NON_NEGATIVE,
    "train.ckpt_every": NON_NEGATIVE,
    "train.log_every": NON_NEGATIVE,
    "train.threads": AT_LEAST_ONE,
    "train.guard_every": AT_LEAST_ONE,
}


def check_range(key: str, value: Any, valid: Range | None) -> None:
    """Raise ConfigError naming ``key`` and the valid range when ``value`` (a number, or a list
    of numbers) lies outside ``valid``; ``None`` passes."""
    if valid is None or value is None:
        return
    for v in value if isinstance(value, list) else [value]:
        if isinstance(v, int | float) and not isinstance(v, bool) and not valid.contains(v):
            raise ConfigError(f"{key}={v!r} is out of range; valid: {valid}")


def check_fields(obj: Any, name: Callable[[str], str] = lambda field: field) -> Any:
    """Check every field of dataclass ``obj`` against its class's ``RANGES`` and against
    non-finite numbers; ``name`` turns a field name into the one messages use (an option).

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass
        ... class Opts:
        ...     RANGES = {"steps": AT_LEAST_ONE}
        ...     steps: int = 0
        >>> check_fields(Opts(), lambda f: "--" + f)
        Traceback (most recent call last):
        ...
        forgetir.config.ConfigError: --steps=0 is out of range; valid: >= 1
    """
    ranges = getattr(type(obj), "RANGES", {})
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{name(f.name)}: must be a finite number, got {value}")
        check_range(name(f.name), value, ranges.get(f.name))
    return obj


# Fields whose value must be one of a fixed set; checked when a config is built.
CHOICES: dict[str, tuple[str, ...]] = {
    "data.part": ("forget", "retain", "train"),
    "optim.name": ("adamw", "adam", "sgd"),
    "optim.schedule": ("cosine", "constant"),
    "train.device": ("auto", "cpu", "cuda"),
    "train.precision": ("auto", "fp32", "bf16", "fp16"),
    "train.nonfinite": ("stop", "skip"),
}


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check/convert ``value`` to the annotated type ``tp``; raise ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{key}: invalid value {value!r}")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item_tp,) = typing.get_args(tp) or (Any,)
        return [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"{key}: must be a finite number, got {value}")
            return float(value)
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    raise ConfigError(f"{key}: unsupported type {tp}")


def from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``; unknown keys raise ConfigError listing valid ones."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = prefix.rstrip(".") or "config"
        raise ConfigError(
            f"unknown key(s) {', '.join(prefix + k for k in unknown)} in {where}; "
            f"valid: {', '.join(prefix + k for k in fields)}"
        )
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = from_dict(tp, value, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(value, tp, prefix + name)
            choices = CHOICES.get(prefix + name)
            if choices is not None and kwargs[name] not in choices:
                raise ConfigError(
                    f"{prefix}{name}: invalid value {kwargs[name]!r}; valid: {', '.join(choices)}"
                )
            valid = RANGES.get(prefix + name) or getattr(cls, "RANGES", {}).get(name)
            check_range(prefix + name, kwargs[name], valid)
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from e
    except OSError as e:
        raise ConfigError(f"{path}: cannot read it ({e.strerror or e})") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = data
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted!r}: {k!r} is not a section")
    node[keys[-1]] = value


def split_key_value(text: str) -> tuple[str, str] | None:
    """The one reader of ``KEY=VALUE`` tokens (config overrides, method hyperparameters,
    ``--data``, reproduce's old ``--ut KIND=PATH``): ``(key, value)`` split at the first ``=``,
    the key stripped; None without ``=`` or key, so that each caller names its option.

    Example:
        >>> split_key_value("optim.lr=1e-3"), split_key_value("lr")
        (('optim.lr', '1e-3'), None)
    """
    key, sep, value = text.partition("=")
    return (key.strip(), value) if sep and key.strip() else None


def parse_override(text: str) -> tuple[str, Any]:
    """``"optim.lr=1e-3"`` -> ``("optim.lr", 0.001)``; the value is read as YAML."""
    pair = split_key_value(text)
    if pair is None:
        raise ConfigError(f"override {text!r} must look like key=value, e.g. optim.lr=1e-3")
    key, raw = pair
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        raise ConfigError(f"override {text!r}: cannot parse value ({e})") from e
    # YAML reads 1e-3 as a string (no dot): accept scientific notation as a number.
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    return key, value


def load_config(
    preset_or_path: str | Path = "cpu", overrides: list[str] | None = None
) -> RunConfig:
    """Load a preset name (``cpu``, ``paper``) or a YAML path; then apply ``key=value``
    overrides."""
    path = Path(preset_or_path)
    if not path.suffix:
        if str(preset_or_path) not in list_presets():
            raise ConfigError(
                f"unknown config preset {str(preset_or_path)!r}; valid presets: "
                f"{', '.join(list_presets())} (or a path to a .yaml file)"
            )
        path = PRESET_DIR / f"{preset_or_path}.yaml"
    elif not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    data = _read_yaml(path)
    for text in overrides or []:
        key, value = parse_override(text)
        _set_dotted(data, key, value)
    return from_dict(RunConfig, data)


def save_config(cfg: Any, path: str | Path) -> None:
    """Write the resolved configuration as YAML, atomically."""
    atomic_write(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))
