"""The contract every unlearning method keeps, and the loss pieces they share.

A method is a small object around the model being unlearned. The one loop
(:mod:`forgetir.engine.loop`) calls ``prepare(forget_batch, retain_batch)`` once, then each
step ``loss(forget_batch, retain_batch)`` and optimises ``trainable_parameters()``; after each
step it may ask ``should_stop(logs)``.

Batches are dicts ``{"degraded": (B,3,P,P), "clean": (B,3,P,P), "task": list[str], ...}`` with
images in [0, 1]. ``forget_batch`` may be None for methods that do not use forget data
(``needs_forget`` False) and ``retain_batch`` may be None where ``needs_retain`` is False.

Two forget targets (``target``):

- ``"collapse"``: the seed paper's aim: quality on the forget data as low as possible.
- ``"retrain-like"``: behave like UT, the model retrained without the forget data. For a
  degradation type UT returns the degraded input almost unchanged (design.md §8), so the forget
  target becomes ``t_f = x_f`` (the identity target), or ``reference(x_f)`` when a UT reference
  model is given. Each method's class attribute ``retrain_like`` says what the target means for
  it; where it is None the method refuses ``"retrain-like"`` with an error.

Example:
    >>> import torch
    >>> from forgetir.methods import create_method
    >>> from forgetir.models import create_model
    >>> method = create_method("finetune", create_model("promptir-tiny"))
    >>> batch = {"degraded": torch.rand(1, 3, 16, 16), "clean": torch.rand(1, 3, 16, 16)}
    >>> out = method.loss(None, batch)
    >>> sorted(out)
    ['loss', 'retain_l1']
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from forgetir.config import ConfigError, from_dict
from forgetir.registry import Registry

TARGETS = ("collapse", "retrain-like")
# The largest size a real-valued method hyperparameter (weight, ratio, step) may have.
MAX_HPARAM = 1e6
Batch = dict[str, Any]
# (rank, world size) of the process's share of a step's global batch: see batch_shard.
_SHARD: contextvars.ContextVar[tuple[int, int]] = contextvars.ContextVar(
    "forgetir_batch_shard", default=(0, 1)
)


@dataclass
class MethodConfig:
    """Hyperparameters of a method with none."""


@dataclass
class ForgetStopConfig(MethodConfig):
    # Early stop: should_stop() fires once the forget batch's PSNR (dB, logged as
    # "forget_psnr") is at or below this floor. None: never stop early.
    forget_floor: float | None = None


def frozen_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` in eval mode with every parameter's requires_grad False."""
    return freeze(copy.deepcopy(model))


def freeze(model: nn.Module) -> nn.Module:
    model.requires_grad_(False)
    return model.eval()


def model_device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def fresh_init(model: nn.Module, generator: torch.Generator) -> nn.Module:
    """A newly initialised model of the same registered spec, seeded from ``generator``.

    Needs the ``forgetir_spec`` that :func:`forgetir.models.create_model` attaches.
    """
    from forgetir.models import create_model

    spec = getattr(model, "forgetir_spec", None)
    if not isinstance(spec, dict) or "name" not in spec:
        raise ValueError(
            f"{type(model).__name__} has no forgetir_spec: re-initialising needs a model built "
            "by forgetir.models.create_model (or one loaded with forgetir.load_model)"
        )
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
    # Model init draws from the global RNG; fork it so the caller's RNG stream is untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = create_model(spec["name"], **dict(spec.get("args", {})))
    p = next(model.parameters())
    return fresh.to(device=p.device, dtype=p.dtype)


def l1_per_image(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute error of each image: shape (B,)."""
    return (a - b).abs().flatten(1).mean(1)


def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over all elements (``nn.L1Loss()``, as the seed paper uses)."""
    return F.l1_loss(a, b)


@torch.no_grad()
def psnr_mean(output: torch.Tensor, target: torch.Tensor) -> float:
    """Mean per-image PSNR (dB, data range 1) of the clipped output: a cheap step log."""
    mse = (output.detach().clamp(0, 1) - target).pow(2).flatten(1).mean(1)
    return float((10 * torch.log10(1.0 / mse.clamp_min(1e-10))).mean())


@contextlib.contextmanager
def batch_shard(rank: int, world_size: int) -> Iterator[None]:
    """Within the block, each batch a method sees is rows ``rank*B ... (rank+1)*B - 1`` of the
    step's global batch (torchrun, one process per rank), and :func:`batch_noise` draws the
    noise of the global batch and keeps those rows: N processes then draw what one process
    draws for the same global batch, so their unlearned weights match.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> with batch_shard(1, 2):
        ...     half = batch_noise(torch.rand, (2, 3), g)
        >>> whole = torch.rand((4, 3), generator=torch.Generator().manual_seed(0))
        >>> bool(torch.equal(half, whole[2:]))
        True
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in 0..world_size-1 (world_size {world_size})")
    token = _SHARD.set((rank, world_size))
    try:
        yield
    finally:
        _SHARD.reset(token)


def batch_noise(
    draw: Any, shape: tuple[int, ...] | torch.Size, generator: torch.Generator, dtype: Any = None
) -> torch.Tensor:
    """``draw(shape, generator=...)`` (``torch.rand``/``torch.randn``) for a batch of ``shape``:
    this rank's rows of the global batch's draw inside :func:`batch_shard`, else the plain draw.
    Every rank's generator is seeded alike, so the global draws agree."""
    rank, world = _SHARD.get()
    rows = shape[0]
    full = (rows * world, *shape[1:])
    z = draw(full, generator=generator, device=generator.device, dtype=dtype)
    return z[rank * rows : (rank + 1) * rows] if world > 1 else z


def uniform_perturbed(
    y: torch.Tensor, half_range: float, generator: torch.Generator
) -> torch.Tensor:
    """The seed paper's adversarial target: ``clamp(y + p, 0, 1)``, p ~ U(-r, r) elementwise."""
    u = batch_noise(torch.rand, y.shape, generator, y.dtype)
    return (y + (u.to(y.device) * 2 - 1) * half_range).clamp(0, 1)


def gaussian_like(
    x: torch.Tensor, generator: torch.Generator, stats: str = "image"
) -> torch.Tensor:
    """A Gaussian noise image with ``x``'s statistics: ``clamp(randn * std + mean, 0, 1)``.

    ``stats="image"``: mean/std per image and channel (over H, W); ``"batch"``: per channel
    over the whole batch.
    """
    dims = {"image": (2, 3), "batch": (0, 2, 3)}
    if stats not in dims:
        raise ValueError(f"noise statistics {stats!r} unknown; valid: {', '.join(dims)}")
    x = x.detach()
    mean = x.mean(dims[stats], keepdim=True)
    std = x.std(dims[stats], keepdim=True) if x[0, 0].numel() > 1 else torch.zeros_like(mean)
    z = batch_noise(torch.randn, x.shape, generator, x.dtype)
    return (z.to(x.device) * std + mean).clamp(0, 1)


def hinged_ascent(
    err: torch.Tensor, bound: float | None, scale: torch.Tensor | None = None
) -> torch.Tensor:
    """The value whose negative is minimised by an ascent term, from per-image errors ``err``.

    Unbounded (``bound`` None): ``err.mean()``. Bounded: ``min(err_i, bound * scale_i).mean()``,
    so an image stops pushing once its error passes the bound (its gradient is then zero).
    """
    if bound is None:
        return err.mean()
    limit = bound * (scale if scale is not None else torch.ones_like(err))
    return torch.minimum(err, limit.detach()).mean()


def require(batch: Batch | None, key: str, method: str, which: str) -> torch.Tensor:
    """``batch[key]``, or a ValueError naming the method, the batch and the keys it has."""
    if batch is None:
        raise ValueError(f"method {method!r} needs a {which} batch; got None")
    if key not in batch:
        raise ValueError(
            f"method {method!r}: the {which} batch has no {key!r} entry "
            f"(keys: {', '.join(map(str, batch))})"
        )
    return batch[key]


class UnlearningMethod:
    """Base class: holds the model, a frozen copy of it before unlearning, the config and RNG.

    Subclasses set ``name``, ``summary``, ``Config``, ``default_optim`` (the paper's optimiser,
    keys as in ``forgetir.config.OptimConfig``), ``recommended_schedule``, ``retrain_like`` (what
    the retrain-like target means, None if unsupported) and implement ``_loss``.

    Args:
        model: the model to unlearn, changed in place by the loop's optimiser.
        original: the model before unlearning; frozen here (requires_grad False, eval mode).
            None: a frozen deep copy of ``model`` is made now.
        cfg: the method's ``Config`` instance, a dict of overrides, or None for the defaults.
        target: ``"collapse"`` or ``"retrain-like"``.
        generator: every random draw of the method; None gives a CPU generator seeded 0.
        reference: optional UT model (retrained without the forget data); frozen here. Only
            the retrain-like target uses it, as the forget target ``reference(x_f)``.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    Config: ClassVar[type] = MethodConfig
    needs_forget: ClassVar[bool] = True
    needs_retain: ClassVar[bool] = True
    default_optim: ClassVar[dict[str, Any]] = {
        "name": "adam",
        "lr": 2e-4,
        "betas": [0.9, 0.999],
        "weight_decay": 0.0,
    }
    recommended_schedule: ClassVar[dict[str, Any]] = {}
    retrain_like: ClassVar[str | None] = None

    def __init__(
        self,
        model: nn.Module,
        original: nn.Module | None = None,
        cfg: Any = None,
        target: str = "collapse",
        generator: torch.Generator | None = None,
        reference: nn.Module | None = None,
    ) -> None:
        self.cfg = self.parse_config(cfg)
        self.check_target(target)
        self.target = target
        if original is model or (reference is not None and reference is model):
            raise ValueError(
                "original/reference must be separate models from the one being unlearned "
                "(pass original=None to get a frozen copy)"
            )
        self.model = model
        self.original = freeze(original) if original is not None else frozen_copy(model)
        self.reference = freeze(reference) if reference is not None else None
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self.step = 0
        self._net: nn.Module | None = None

    # --- configuration ------------------------------------------------------------------
    @classmethod
    def parse_config(cls, cfg: Any) -> Any:
        """``cfg`` as the method's Config; unknown keys raise ConfigError listing valid ones."""
        if cfg is None:
            return cls.Config()
        if isinstance(cfg, cls.Config | dict):
            try:
                built = cfg if isinstance(cfg, cls.Config) else from_dict(cls.Config, cfg)
                return cls._bounded(built)
            except ConfigError as e:
                raise ConfigError(f"method {cls.name!r}: {e}") from e
        raise ConfigError(
            f"method {cls.name!r}: config must be a {cls.Config.__name__} or a dict, "
            f"got {type(cfg).__name__}"
        )

    @classmethod
    def _bounded(cls, cfg: Any) -> Any:
        """``cfg``, refused when a real-valued hyperparameter is beyond :data:`MAX_HPARAM` in
        size: a loss weight of 1e308 overflows the loss to inf (the run then stops at step 0
        and the "unlearned" model is BEFORE); no weight, ratio or step size means anything
        there."""
        for f in dataclasses.fields(cfg):
            v = getattr(cfg, f.name)
            if isinstance(v, float) and not abs(v) <= MAX_HPARAM:
                raise ConfigError(
                    f"{f.name}={v!r} is out of range; valid: a finite number within ±{MAX_HPARAM:g}"
                )
        return cfg

    @classmethod
    def check_target(cls, target: str) -> None:
        if target not in TARGETS:
            raise ConfigError(f"unknown forget target {target!r}; valid: {', '.join(TARGETS)}")
        if target == "retrain-like" and cls.retrain_like is None:
            able = [m for m in METHODS.names() if METHODS.get(m).retrain_like is not None]
            raise ConfigError(
                f"method {cls.name!r} supports the forget target 'collapse' only; "
                f"methods that support 'retrain-like': {', '.join(able)}"
            )

    # --- the loop's interface -----------------------------------------------------------
    def prepare(self, forget_batch: Batch | None, retain_batch: Batch | None) -> None:
        """Called once by the loop before the first step. Default: nothing to do."""

    def loss(
        self,
        forget_batch: Batch | None,
        retain_batch: Batch | None,
        model: nn.Module | None = None,
    ) -> dict[str, Any]:
        """``{"loss": scalar Tensor, **float logs}`` for one step; advances ``self.step``.

        ``model``: the module to run the forward passes through when it is not ``self.model``
        itself, e.g. the DDP wrapper of it (DDP only syncs gradients of forwards it ran).
        """
        if self.needs_forget and forget_batch is None:
            raise ValueError(f"method {self.name!r} needs a forget batch; got None")
        if self.needs_retain and retain_batch is None:
            raise ValueError(f"method {self.name!r} needs a retain batch; got None")
        self._net = model
        try:
            out = self._loss(forget_batch, retain_batch)
        finally:
            self._net = None
        self.step += 1
        return out

    def net(self, x: torch.Tensor) -> torch.Tensor:
        """The model being unlearned applied to ``x`` (through the loop's wrapper if given)."""
        return (self._net if self._net is not None else self.model)(x)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters the loop optimises. Default: every trainable parameter of the model."""
        return [p for p in self.model.parameters() if p.requires_grad]

    def should_stop(self, logs: dict[str, Any]) -> str | None:
        """A reason to stop early, or None. Fires when ``logs["forget_psnr"]`` (the loop may pass
        a smoothed value) reaches the config's ``forget_floor``."""
        floor = getattr(self.cfg, "forget_floor", None)
        value = logs.get("forget_psnr")
        if floor is not None and value is not None and float(value) <= floor:
            return f"forget PSNR {float(value):.2f} dB reached the floor {floor:.2f} dB"
        return None

    def describe(self) -> dict[str, Any]:
        """What a report records about this method run."""
        return {
            "name": self.name,
            "summary": self.summary,
            "target": self.target,
            "retrain_like": self.retrain_like,
            "reference": self.reference is not None,
            "config": dataclasses.asdict(self.cfg),
            "default_optim": dict(self.default_optim),
            "recommended_schedule": dict(self.recommended_schedule),
        }

    # --- helpers for subclasses ----------------------------------------------------------
    def _loss(self, forget_batch: Batch | None, retain_batch: Batch | None) -> dict[str, Any]:
        raise NotImplementedError

    def forget_pair(self, batch: Batch | None) -> tuple[torch.Tensor, torch.Tensor]:
        return (
            require(batch, "degraded", self.name, "forget"),
            require(batch, "clean", self.name, "forget"),
        )

    def retain_pair(self, batch: Batch | None) -> tuple[torch.Tensor, torch.Tensor]:
        return (
            require(batch, "degraded", self.name, "retain"),
            require(batch, "clean", self.name, "retain"),
        )

    @torch.no_grad()
    def retrain_like_target(self, x_f: torch.Tensor) -> torch.Tensor:
        """What UT returns on the forget inputs: ``reference(x_f)`` if given, else ``x_f``."""
        if self.reference is not None:
            return self.reference(x_f).clamp(0, 1)
        return x_f.detach()

    def retain_l1(self, retain_batch: Batch | None) -> torch.Tensor:
        x_r, y_r = self.retain_pair(retain_batch)
        return l1(self.net(x_r), y_r)


# The registry of methods (filled by methods.registry.register_method); here, below the
# registry module, so that check_target can name the methods without importing it.
METHODS: Registry[type[UnlearningMethod]] = Registry("unlearning method")
