"""The one training / retraining / unlearning loop.

:class:`Engine` runs ``train.steps`` optimizer steps of a loss given by the caller, with the
official schedule (linear warm-up, then cosine to ``min_lr``), gradient clipping, mixed
precision on GPU, a guard against non-finite losses, CSV + TensorBoard logs, atomic checkpoints
and exact resumption: a run killed at any moment and restarted with ``resume=True`` ends, on CPU
with the same seed, with the same weights as an uninterrupted run.

Files in ``out_dir`` (written by rank 0 only):

- ``model.safetensors`` + ``model.json``: the weights (:func:`forgetir.checkpoint.save_model`);
  the sidecar records the step they belong to;
- ``resume.pt``: everything else needed to continue (optimizer, grad scaler, step, RNG states of
  every rank, config hash), plain tensors and containers read with ``weights_only=True``;
- ``log.csv`` (step, loss, lr, other logged values, time) and ``tb/`` (TensorBoard).

Scale-out is PyTorch DDP as launched by ``torchrun``; nothing home-made. ``train.batch_size`` is
the GLOBAL batch: each of the ``WORLD_SIZE`` processes takes ``batch_size / WORLD_SIZE`` samples
(see :meth:`Engine.local_batch_size`), gradients are averaged by DDP, and only rank 0 writes.
The engine joins the process group itself when ``torchrun`` has set ``RANK``/``WORLD_SIZE``
(NCCL on GPU, Gloo on CPU)::

    # one machine, 4 GPUs
    torchrun --standalone --nproc_per_node 4 -m forgetir.cli train --config paper --out runs/p
    # two machines with 8 GPUs each (run on both, node_rank 0 and 1)
    torchrun --nnodes 2 --nproc_per_node 8 --node_rank 0 --master_addr HOST0 --master_port 29500 \\
        -m forgetir.cli train --config paper --out runs/p
    # or elastic rendezvous: --nnodes 2 --rdzv_backend c10d --rdzv_endpoint HOST0:29500

Under DDP the loss must run the forward pass through the wrapped module, so ``loss_fn`` then has
to accept a ``model`` keyword argument (the engine passes the DDP module there).

Example:
    >>> import torch
    >>> from torch import nn
    >>> from forgetir.config import OptimConfig, TrainConfig
    >>> net = nn.Conv2d(3, 3, 3, padding=1)
    >>> def batches(start):
    ...     g = torch.Generator().manual_seed(0)
    ...     while True:
    ...         yield torch.rand(4, 3, 8, 8, generator=g)
    >>> def loss_fn(x, step, model):
    ...     return {"loss": (model(x) - x).abs().mean()}
    >>> result = Engine(net, OptimConfig(lr=1e-2), TrainConfig(steps=5), quiet=True).fit(
    ...     loss_fn, batches)
    >>> result.step
    5
"""

from __future__ import annotations

import contextlib
import copy
import csv
import hashlib
import inspect
import io
import itertools
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from forgetir.atomic import atomic_path, atomic_write, remove_orphan_temps
from forgetir.config import AT_LEAST_ONE, ConfigError, OptimConfig, TrainConfig, check_range
from forgetir.errors import MissingInputError, RunExistsError
from forgetir.models.base import collect_aux_losses
from forgetir.progress import Progress
from forgetir.runtime import (
    get_rng_state,
    init_distributed,
    resolve_device,
    resolve_precision,
    seed_everything,
    set_rng_state,
)

WEIGHTS_NAME = "model.safetensors"
SIDECAR_NAME = "model.json"
RESUME_NAME = "resume.pt"
# Written complete before the weights, renamed to RESUME_NAME after them: whichever of the two
# matches the weights' step is the state to resume from, wherever a crash happened.
RESUME_NEXT_NAME = "resume.next.pt"
LOG_NAME = "log.csv"
RESUME_FORMAT = "forgetir-resume"
# Settings that may change between a run and its resumption without changing the result
# (or only its speed); everything else must match for ``resume=True``.
RESUME_SAFE_KEYS = frozenset(
    {
        "train.log_every",
        "train.ckpt_every",
        "train.eval_every",
        "train.threads",
        "train.device",
        "train.compile",
        "train.tensorboard",
        "data.workers",
    }
)
MAX_CONSECUTIVE_SKIPS = 20

LossFn = Callable[..., Mapping[str, Any]]
BatchSource = Callable[[int], Iterable[Any]] | Iterable[Any]


class NonFiniteLossError(RuntimeError):
    """Raised by :meth:`Engine.fit` only when asked to (``raise_on_nonfinite=True``)."""


# ------------------------------------------------------------------------------ optimisation


def lr_at(step: int, optim: OptimConfig, total_steps: int) -> float:
    """Learning rate for the update that follows ``step`` completed updates.

    Linear warm-up over ``warmup_steps`` (reaching ``lr`` on the last warm-up step), then
    ``constant`` or a half cosine from ``lr`` down to ``min_lr`` at ``decay_steps``
    (``total_steps`` when unset); flat at ``min_lr`` past it.

    Example:
        >>> o = OptimConfig(lr=1.0, warmup_steps=2, min_lr=0.0)
        >>> [round(lr_at(s, o, 6), 3) for s in range(6)]
        [0.5, 1.0, 1.0, 0.854, 0.5, 0.146]
    """
    warm = optim.warmup_steps
    if step < warm:
        return optim.lr * (step + 1) / warm
    if optim.schedule == "constant":
        return optim.lr
    if optim.schedule != "cosine":
        raise ConfigError(
            f"optim.schedule: invalid value {optim.schedule!r}; valid: cosine, constant"
        )
    end = optim.decay_steps if optim.decay_steps is not None else total_steps
    progress = min(1.0, (step - warm) / max(1, end - warm))
    return optim.min_lr + (optim.lr - optim.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_optimizer(params: Iterable[nn.Parameter], optim: OptimConfig) -> torch.optim.Optimizer:
    """AdamW, Adam or SGD (with ``optim.momentum``; SCRUB's optimiser) as configured.

    Example:
        >>> opt = build_optimizer(nn.Linear(2, 2).parameters(), OptimConfig(name="adam"))
        >>> type(opt).__name__
        'Adam'
    """
    if optim.name == "sgd":
        return torch.optim.SGD(
            params, lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay
        )
    if len(optim.betas) != 2:
        raise ConfigError(f"optim.betas: expected two numbers, got {optim.betas!r}")
    kwargs = dict(lr=optim.lr, betas=tuple(optim.betas), weight_decay=optim.weight_decay)
    if optim.name == "adamw":
        return torch.optim.AdamW(params, **kwargs)
    if optim.name == "adam":
        return torch.optim.Adam(params, **kwargs)
    raise ConfigError(f"optim.name: invalid value {optim.name!r}; valid: adamw, adam, sgd")


# ------------------------------------------------------------------------------ config & RNG


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_hash(config: Mapping[str, Any] | None) -> str | None:
    """SHA-256 of a config tree, ignoring the :data:`RESUME_SAFE_KEYS` that may change on resume.

    Example:
        >>> a = config_hash({"train": {"steps": 3, "log_every": 1}})
        >>> a == config_hash({"train": {"steps": 3, "log_every": 5}})
        True
    """
    if config is None:
        return None
    flat = {k: v for k, v in _flatten(config).items() if k not in RESUME_SAFE_KEYS}
    text = json.dumps(flat, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# ------------------------------------------------------------------------------ small helpers


def _to_device(obj: Any, device: torch.device, channels_last: bool) -> Any:
    if isinstance(obj, torch.Tensor):
        t = obj.to(device, non_blocking=True)
        if channels_last and t.ndim == 4 and t.is_floating_point():
            t = t.contiguous(memory_format=torch.channels_last)
        return t
    if isinstance(obj, Mapping):
        return {k: _to_device(v, device, channels_last) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_to_device(v, device, channels_last) for v in obj)
    return obj


def _accepts_model(fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "model" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _scalars(logs: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Scalar entries of a loss dict, detached (tensors stay on the device: no sync per step)."""
    out: dict[str, Any] = {}
    for key, value in logs.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_scalars(value, f"{name}/"))
        elif isinstance(value, torch.Tensor) and value.numel() == 1:
            out[name] = value.detach().float().reshape(())
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = float(value)
    return out


def _flat_floats(logs: Mapping[str, Any]) -> dict[str, float]:
    """:func:`_scalars` as Python floats (one device sync per value: for logged steps only)."""
    return {k: float(v) for k, v in _scalars(logs).items()}


class CsvLog:
    """``log.csv``: one row per logged step; columns step, loss, lr, ..., time.

    A new column rewrites the file (atomically) with the wider header; otherwise rows are
    appended. On resume, rows past the checkpoint's step are dropped: they will be logged again.
    """

    HEAD = ("step", "loss", "lr")
    TAIL = ("time",)

    def __init__(self, path: Path, resume_step: int | None = None) -> None:
        self.path = path
        self.rows: list[dict[str, str]] = []
        self.middle: list[str] = []
        if resume_step is not None and path.is_file():
            with open(path, newline="") as f:
                reader = csv.DictReader(f)
                for row in reader:
                    if row.get("step", "").isdigit() and int(row["step"]) <= resume_step:
                        self.rows.append(row)
                self.middle = [c for c in reader.fieldnames or [] if c not in self.fields()]
        self._rewrite()

    def fields(self) -> list[str]:
        return [*self.HEAD, *self.middle, *self.TAIL]

    def _rewrite(self) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, self.fields(), restval="")
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write(self.path, buf.getvalue())

    def write(self, values: Mapping[str, float | int]) -> None:
        row = {k: (str(v) if isinstance(v, int) else f"{v:.6g}") for k, v in values.items()}
        new = [k for k in row if k not in self.fields()]
        self.rows.append(row)
        if new:
            self.middle.extend(new)
            self._rewrite()
            return
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.fields(), restval="").writerow(row)


def _tb_tag(key: str) -> str:
    return key if "/" in key else f"train/{key}"


def _tensorboard(folder: Path, rows: list[dict[str, str]]) -> Any:
    """A TensorBoard writer on ``folder`` holding one event file: a resumed run's earlier
    values are replayed from ``log.csv`` (``rows``, already cut at the resumed step) into it
    and the event files of earlier segments removed, so no step is ever recorded twice."""
    from torch.utils.tensorboard import SummaryWriter

    for old in folder.glob("events.out.tfevents.*"):
        old.unlink()
    writer = SummaryWriter(str(folder))
    for row in rows:
        for key, value in row.items():
            if key not in ("step", "time") and value not in ("", None):
                writer.add_scalar(_tb_tag(key), float(value), int(row["step"]))
    return writer


@dataclass
class FitResult:
    """What :meth:`Engine.fit` did."""

    step: int  # optimizer steps completed in total (including those before a resume)
    steps_run: int  # steps run by this call
    wall_time: float  # seconds spent by this call
    total_time: float  # training seconds including earlier, resumed-from segments
    logs: dict[str, float] = field(default_factory=dict)  # the last logged (averaged) values
    eval: dict[str, float] = field(default_factory=dict)  # the last periodic evaluation
    stopped_early: str | None = None  # why the loop ended before train.steps, if it did
    skipped_steps: int = 0  # non-finite steps skipped (train.nonfinite=skip)
    resumed_from: int | None = None
    checkpoint: Path | None = None  # out_dir/model.safetensors when an out_dir was given


@dataclass
class _Snapshot:
    step: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scaler: dict[str, Any] | None


# ------------------------------------------------------------------------------ the engine


class Engine:
    """Runs the loop for ``model``; see the module docstring for files, DDP and resumption.

    Args:
        model: the trainable network (moved to the device; wrapped in DDP inside ``fit``).
        optim, train: the ``optim`` and ``train`` sections of a :class:`~forgetir.config.RunConfig`.
        out_dir: where checkpoints and logs go; ``None`` keeps everything in memory.
        params: the parameters to optimise; the model's other parameters are frozen during
            ``fit`` (``requires_grad`` restored afterwards). Default: all of them.
        config: the resolved run configuration (a dict); its hash is stored in ``resume.pt``
            and a resumed run must match it (apart from :data:`RESUME_SAFE_KEYS`).
        meta: extra JSON fields for every checkpoint sidecar (command, config, ...).
        quiet: no progress output.
        label: the progress bar's title.
        find_unused_parameters: passed to DDP. True by default, as the official PromptIR
            training (``ddp_find_unused_parameters_true``): PromptIR registers modules that its
            forward never uses, and unlearning losses may leave parts of a model out.
    """

    def __init__(
        self,
        model: nn.Module,
        optim: OptimConfig,
        train: TrainConfig,
        out_dir: str | Path | None = None,
        *,
        params: Iterable[nn.Parameter] | None = None,
        config: Mapping[str, Any] | None = None,
        meta: Mapping[str, Any] | None = None,
        quiet: bool = False,
        label: str = "train",
        find_unused_parameters: bool = True,
    ) -> None:
        if train.steps < 0:
            raise ConfigError(f"train.steps must be >= 0, got {train.steps}")
        if train.nonfinite not in ("stop", "skip"):
            raise ConfigError(
                f"train.nonfinite: invalid value {train.nonfinite!r}; valid: stop, skip"
            )
        self.optim_cfg, self.train_cfg = optim, train
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.config = dict(config) if config is not None else None
        self.meta = dict(meta or {})
        self.quiet, self.label = quiet, label
        self.find_unused_parameters = find_unused_parameters
        if train.threads is not None:
            check_range("train.threads", train.threads, AT_LEAST_ONE)
            torch.set_num_threads(train.threads)
        self.dist = init_distributed(train.device)
        self.device = resolve_device(train.device, self.dist.local_rank)
        self.amp_dtype, use_scaler = resolve_precision(train.precision, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type) if use_scaler else None
        self.raw = model.to(self.device)
        if train.channels_last:
            self.raw = self.raw.to(memory_format=torch.channels_last)
        self.params = list(params) if params is not None else None
        trainable = self.params if self.params is not None else list(self.raw.parameters())
        self.trainable = [p for p in trainable if p.requires_grad or self.params is not None]
        if not self.trainable:
            raise ValueError("Engine: the model has no trainable parameters")
        self.optimizer = build_optimizer(self.trainable, optim)
        self.model: nn.Module = self.raw  # the forward module: DDP / compiled once fit starts

    # ---------------------------------------------------------------------------- utilities

    @property
    def rank(self) -> int:
        return self.dist.rank

    @property
    def world_size(self) -> int:
        return self.dist.world_size

    @property
    def is_main(self) -> bool:
        return self.dist.is_main

    def local_batch_size(self, global_batch: int | None = None) -> int:
        """This rank's share of the global batch (``train.batch_size`` by default)."""
        size = self.train_cfg.batch_size if global_batch is None else global_batch
        if size % self.world_size:
            raise ConfigError(
                f"train.batch_size={size} is the global batch and must be divisible by the "
                f"number of processes ({self.world_size}); e.g. use "
                f"{self.world_size * max(1, size // self.world_size)}"
            )
        return size // self.world_size

    def check_out_dir(self, resume: bool) -> None:
        """Refuse to start a new run over an existing one (``resume=False`` and files there)."""
        out = self.out_dir
        if resume or out is None:
            return
        if any((out / n).exists() for n in (WEIGHTS_NAME, RESUME_NAME, RESUME_NEXT_NAME)):
            raise RunExistsError(
                f"{out} already holds a run ({WEIGHTS_NAME}); pass --resume to continue it, or "
                "choose another output directory"
            )

    def barrier(self) -> None:
        if self.dist.enabled:
            dist.barrier()

    def close(self) -> None:
        """Leave the process group if this engine created it (call once, at the end)."""
        self.model = self.raw  # drop the DDP wrapper: its reducer holds work on the group
        if self.dist.created_group and dist.is_initialized():
            import gc

            gc.collect()
            # All ranks tear Gloo down together: a rank leaving while its peer is still
            # exchanging can abort the peer ("terminate called without an active exception").
            dist.barrier()
            dist.destroy_process_group()

    def _any(self, flag: bool) -> bool:
        if not self.dist.enabled:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def _mean_logs(self, logs: dict[str, float]) -> dict[str, float]:
        if not self.dist.enabled or not logs:
            return logs
        keys = sorted(logs)
        t = torch.tensor([logs[k] for k in keys], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return {k: float(v) / self.world_size for k, v in zip(keys, t.tolist(), strict=True)}

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _wrap(self) -> None:
        model: nn.Module = self.raw
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            # Depthwise convs' (C,1,k,k) grads have strides that differ from the bucket's only
            # along a size-1 dimension: harmless, but DDP warns on every step.
            warnings.filterwarnings("ignore", message="Grad strides do not match bucket view")
            ids = [self.device.index] if self.device.type == "cuda" else None
            model = DDP(model, device_ids=ids, find_unused_parameters=self.find_unused_parameters)
        if self.train_cfg.compile:
            model = torch.compile(model)
        self.model = model

    # ------------------------------------------------------------------------- checkpoints

    def _snapshot(self, step: int) -> _Snapshot:
        return _Snapshot(
            step,
            {k: v.detach().clone() for k, v in self.raw.state_dict().items()},
            copy.deepcopy(self.optimizer.state_dict()),
            copy.deepcopy(self.scaler.state_dict()) if self.scaler is not None else None,
        )

    def _restore(self, snap: _Snapshot) -> None:
        self.raw.load_state_dict(snap.model)
        self.optimizer.load_state_dict(snap.optimizer)
        if self.scaler is not None and snap.scaler is not None:
            self.scaler.load_state_dict(snap.scaler)

    def save_checkpoint(self, step: int, elapsed: float, skipped: int = 0) -> Path | None:
        """Write weights + resume state for ``step`` (a collective call under DDP)."""
        rng = get_rng_state()
        if self.dist.enabled:
            gathered: list[Any] | None = [None] * self.world_size if self.is_main else None
            dist.gather_object(rng, gathered, dst=0)
            rngs = gathered
        else:
            rngs = [rng]
        path = None
        if self.is_main and self.out_dir is not None:
            from forgetir.checkpoint import save_model

            self.out_dir.mkdir(parents=True, exist_ok=True)
            state = {
                "format": RESUME_FORMAT,
                "version": 1,
                "step": step,
                "elapsed": elapsed,
                "skipped": skipped,
                "world_size": self.world_size,
                "config_hash": config_hash(self.config),
                "config": self.config,
                "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                "rng": rngs,
            }
            nxt = self.out_dir / RESUME_NEXT_NAME
            with atomic_path(nxt) as tmp:
                torch.save(state, tmp)
            path = save_model(self.raw, self.out_dir / WEIGHTS_NAME, **{**self.meta, "step": step})
            os.replace(nxt, self.out_dir / RESUME_NAME)
        self.barrier()
        return path

    def _read_resume(self) -> dict[str, Any] | None:
        """The resume state and weights on rank 0's disk, or None when there is no checkpoint."""
        from forgetir.checkpoint import CheckpointError, read_sidecar, sha256_file

        if self.out_dir is None:
            return None
        weights = self.out_dir / WEIGHTS_NAME
        candidates = [self.out_dir / RESUME_NEXT_NAME, self.out_dir / RESUME_NAME]
        if not weights.is_file():
            return None  # killed before the first checkpoint: start afresh
        if not any(c.is_file() for c in candidates):
            raise MissingInputError(
                f"cannot resume in {self.out_dir}: it holds {WEIGHTS_NAME} but no {RESUME_NAME} "
                "(optimizer and RNG state); start a new output directory, or train from those "
                "weights with model.checkpoint=..."
            )
        sidecar = read_sidecar(self.out_dir / SIDECAR_NAME)
        if sha256_file(weights) != sidecar["sha256"]:
            raise CheckpointError(
                f"{weights} does not match the sha256 in {self.out_dir / SIDECAR_NAME}: the "
                "checkpoint is damaged; cannot resume"
            )
        state = None
        for cand in candidates:
            if not cand.is_file():
                continue
            try:
                loaded = torch.load(cand, map_location="cpu", weights_only=True)
            except Exception as exc:  # a damaged pending file is simply not a candidate
                warnings.warn(f"ignoring unreadable {cand}: {exc}", stacklevel=2)
                continue
            if not isinstance(loaded, dict) or loaded.get("format") != RESUME_FORMAT:
                raise CheckpointError(f"{cand} is not a forgetir resume file; cannot resume")
            if loaded["step"] == sidecar.get("step"):
                state = loaded
                break
        if state is None:
            raise CheckpointError(
                f"the weights in {weights} (step {sidecar.get('step')}) have no matching resume "
                f"state in {self.out_dir}; cannot resume exactly (start a new --out directory)"
            )
        import safetensors.torch

        state["weights"] = safetensors.torch.load_file(str(weights), device="cpu")
        return state

    def _load_resume(self) -> dict[str, Any] | None:
        payload = [self._read_resume() if self.is_main else None]
        if self.dist.enabled:
            dist.broadcast_object_list(payload, src=0)
        state = payload[0]
        if state is None:
            return None
        want, have = config_hash(self.config), state.get("config_hash")
        if want is not None and have is not None and want != have:
            old = {k: v for k, v in _flatten(state.get("config") or {}).items()}
            new = _flatten(self.config or {})
            diff = sorted(
                k
                for k in set(old) | set(new)
                if k not in RESUME_SAFE_KEYS and old.get(k) != new.get(k)
            )
            raise ConfigError(
                f"cannot resume the run in {self.out_dir}: its configuration differs in "
                f"{', '.join(diff) or 'unknown keys'}; resume with the same settings or use a "
                "new --out directory"
            )
        self.raw.load_state_dict(state["weights"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and state.get("scaler") is not None:
            self.scaler.load_state_dict(state["scaler"])
        rngs = state["rng"]
        if len(rngs) == self.world_size:
            set_rng_state(rngs[self.rank])
        else:
            warnings.warn(
                f"resuming with {self.world_size} processes from a run with {len(rngs)}: "
                "random streams are re-seeded, the result will not match an uninterrupted run",
                stacklevel=2,
            )
            seed_everything(self.train_cfg.seed + 1000003 * state["step"] + self.rank)
        return state

    # --------------------------------------------------------------------------------- fit

    def _batches(self, source: BatchSource, start: int) -> Iterator[Any]:
        if callable(source) and not isinstance(source, Iterable):
            return iter(source(start))
        return itertools.islice(iter(source), start, None)

    def fit(
        self,
        loss_fn: LossFn,
        batches: BatchSource,
        *,
        resume: bool = False,
        evaluate_fn: Callable[[nn.Module, int], Mapping[str, Any]] | None = None,
        on_step_end: Callable[[int, dict[str, float]], bool | None] | None = None,
        raise_on_nonfinite: bool = False,
    ) -> FitResult:
        """Run the loop up to ``train.steps`` (from the last checkpoint when ``resume``).

        Args:
            loss_fn: ``loss_fn(batch, step)`` or ``loss_fn(batch, step, model=...)`` returning a
                dict with a scalar ``"loss"`` tensor; other scalar entries are logged. Under DDP
                it must take ``model`` and run the forward through it.
            batches: ``batches(start_step)`` returning an iterable of (per-rank) batches for
                steps ``start_step, start_step + 1, ...``, or a plain iterable (its first
                ``start_step`` items are skipped on resume). Tensors are moved to the device.
            resume: continue from ``out_dir``'s checkpoint (a fresh start when there is none).
            evaluate_fn: ``evaluate_fn(model, step) -> dict`` run on rank 0 every
                ``train.eval_every`` steps (model in eval mode); values are logged as ``eval/*``.
            on_step_end: ``on_step_end(step, logs) -> stop`` after every step; ``logs`` holds
                this step's loss values, ``lr``, ``grad_norm`` and any evaluation.
            raise_on_nonfinite: raise :class:`NonFiniteLossError` (after rolling back and
                checkpointing) instead of returning with ``stopped_early`` set.
        """
        pass_model = _accepts_model(loss_fn)
        if self.dist.enabled and not pass_model:
            raise TypeError(
                "under DDP, loss_fn must accept a `model` keyword argument and run the forward "
                "pass through it (the engine passes the DDP-wrapped module)"
            )
        frozen: list[nn.Parameter] = []
        if self.params is not None:
            chosen = {id(p) for p in self.params}
            for p in self.raw.parameters():
                if id(p) not in chosen and p.requires_grad:
                    p.requires_grad_(False)
                    frozen.append(p)
            for p in self.params:
                p.requires_grad_(True)
        try:
            return self._fit(
                loss_fn, batches, pass_model, resume, evaluate_fn, on_step_end, raise_on_nonfinite
            )
        finally:
            for p in frozen:
                p.requires_grad_(True)

    def _fit(
        self,
        loss_fn: LossFn,
        batches: BatchSource,
        pass_model: bool,
        resume: bool,
        evaluate_fn: Callable[[nn.Module, int], Mapping[str, Any]] | None,
        on_step_end: Callable[[int, dict[str, float]], bool | None] | None,
        raise_on_nonfinite: bool,
    ) -> FitResult:
        tc, total = self.train_cfg, self.train_cfg.steps
        out = self.out_dir
        start, elapsed_before, skipped, resumed_from = 0, 0.0, 0, None
        if resume and out is not None:
            state = self._load_resume()
            if state is not None:
                start, elapsed_before = int(state["step"]), float(state["elapsed"])
                skipped, resumed_from = int(state.get("skipped", 0)), start
        else:
            self.check_out_dir(resume)
        if resumed_from is None:
            seed_everything(tc.seed + self.rank)
        self._wrap()

        writer = log = None
        if self.is_main and out is not None:
            out.mkdir(parents=True, exist_ok=True)
            remove_orphan_temps(out)  # left by a save that was killed half-way
            log = CsvLog(out / LOG_NAME, resume_step=start if resumed_from is not None else None)
            if tc.tensorboard:
                writer = _tensorboard(out / "tb", log.rows)

        progress = Progress(total, start, self.is_main and not self.quiet, self.label)
        t0 = time.perf_counter()
        step = start
        sums: dict[str, float] = {}
        count = 0
        last_logs: dict[str, float] = {}
        last_eval: dict[str, float] = {}
        snapshot: _Snapshot | None = None
        stopped: str | None = None
        consecutive_bad = 0
        guard_every = max(1, tc.guard_every)
        source = self._batches(batches, start)
        self.raw.train()

        def elapsed() -> float:
            return elapsed_before + time.perf_counter() - t0

        try:
            while step < total:
                try:
                    batch = next(source)
                except StopIteration:
                    # A finite iterable is an epoch: start it again (callables restart at step).
                    source = self._batches(batches, step) if callable(batches) else iter(batches)
                    try:
                        batch = next(source)
                    except StopIteration:
                        raise ValueError(
                            f"the batch source yielded nothing at step {step}"
                        ) from None
                batch = _to_device(batch, self.device, tc.channels_last)
                lr = lr_at(step, self.optim_cfg, total)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                self.optimizer.zero_grad(set_to_none=True)
                # Models with auxiliary losses (MoCE-IR's router balance) record them during
                # training forwards; they join the step's loss here, whatever the loss_fn.
                with self._autocast(), collect_aux_losses(self.raw) as aux:
                    result = (
                        loss_fn(batch, step, model=self.model)
                        if pass_model
                        else loss_fn(batch, step)
                    )
                if not isinstance(result, Mapping) or "loss" not in result:
                    raise TypeError(
                        "loss_fn must return a dict with a 'loss' entry, "
                        f"got {type(result).__name__}"
                    )
                loss = result["loss"]
                if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                    raise TypeError("loss_fn's 'loss' must be a scalar tensor")
                if aux:
                    aux_total = torch.stack([a.float().reshape(()) for a in aux]).sum()
                    loss = loss + aux_total
                    result = {**result, "loss": loss, "aux_loss": aux_total.detach()}
                # One flag for all ranks: a rank that skipped backward would hang the others.
                bad = self._any(not bool(torch.isfinite(loss.detach())))
                grad_norm = None
                if not bad:
                    if self.scaler is not None:
                        self.scaler.scale(loss).backward()
                        self.scaler.unscale_(self.optimizer)
                    else:
                        loss.backward()
                    clip = self.optim_cfg.grad_clip or float("inf")
                    grad_norm = torch.nn.utils.clip_grad_norm_(self.trainable, clip).detach()
                    # Under fp16 an inf gradient is routine: the scaler skips that step itself.
                    bad = self.scaler is None and not bool(torch.isfinite(grad_norm))
                if bad:
                    consecutive_bad += 1
                    loss_value = float(loss.detach())
                    what = (
                        f"non-finite loss ({loss_value:g})"
                        if not math.isfinite(loss_value)
                        else "non-finite gradient norm"
                    )
                    if tc.nonfinite == "stop" or consecutive_bad > MAX_CONSECUTIVE_SKIPS:
                        if snapshot is not None:
                            self._restore(snapshot)
                            stopped = (
                                f"{what} at step {step + 1}; rolled back to the last good weights "
                                f"(after step {snapshot.step}) and stopped"
                            )
                            step = snapshot.step
                        else:
                            stopped = f"{what} at step {step + 1}; stopped before updating"
                        if consecutive_bad > MAX_CONSECUTIVE_SKIPS:
                            stopped += f" ({consecutive_bad} non-finite steps in a row)"
                        break
                    skipped += 1
                    values: dict[str, Any] = {}
                else:
                    consecutive_bad = 0
                    if (step - start) % guard_every == 0:
                        snapshot = self._snapshot(step)  # proven good: it gave a finite loss
                    if self.scaler is not None:
                        self.scaler.step(self.optimizer)
                        self.scaler.update()
                    else:
                        self.optimizer.step()
                    values = _scalars(result)
                    values["grad_norm"] = grad_norm
                    for k, v in values.items():
                        sums[k] = sums.get(k, 0.0) + v
                    count += 1
                step += 1

                row: dict[str, float | int] = {}
                if count and (step % max(1, tc.log_every) == 0 or step == total):
                    last_logs = self._mean_logs({k: float(v) / count for k, v in sums.items()})
                    last_logs["lr"] = lr
                    if skipped:
                        last_logs["skipped"] = float(skipped)
                    sums, count = {}, 0
                    row.update(last_logs)
                evaluated: dict[str, float] = {}
                if evaluate_fn is not None and tc.eval_every and step % tc.eval_every == 0:
                    if self.is_main:
                        self.raw.eval()
                        last_eval = _flat_floats(evaluate_fn(self.raw, step))
                        self.raw.train()
                        evaluated = {f"eval/{k}": v for k, v in last_eval.items()}
                        row.update(evaluated)
                    self.barrier()
                if row and log is not None:
                    log.write({"step": step, **row, "time": elapsed()})
                if row and writer is not None:
                    for k, v in row.items():
                        writer.add_scalar(_tb_tag(k), v, step)
                if tc.ckpt_every and step % tc.ckpt_every == 0 and step < total:
                    self.save_checkpoint(step, elapsed(), skipped)
                if "loss" in last_logs:
                    progress.update(step, f"loss {last_logs['loss']:.4g}")
                elif "loss" in values:
                    progress.update(step, f"loss {float(values['loss']):.4g}")
                else:
                    progress.update(step, "skipped a non-finite step")
                stop = False
                if on_step_end is not None:
                    step_logs = {**_flat_floats(values), "lr": lr, **evaluated}
                    stop = bool(on_step_end(step, step_logs))
                if self._any(stop):
                    stopped = f"stopped by on_step_end at step {step}"
                    break
        finally:
            progress.close()
        if count:  # a partial logging window (early stop)
            last_logs = self._mean_logs({k: float(v) / count for k, v in sums.items()})
            last_logs["lr"] = lr_at(max(0, step - 1), self.optim_cfg, total)
            if log is not None:
                log.write({"step": step, **last_logs, "time": elapsed()})
        wall = time.perf_counter() - t0
        steps_run = step - start
        path = None
        if out is not None:
            if steps_run or resumed_from is None or stopped:
                path = self.save_checkpoint(step, elapsed(), skipped)
            else:
                path = out / WEIGHTS_NAME
        if writer is not None:
            writer.close()
        result = FitResult(
            step=step,
            steps_run=steps_run,
            wall_time=wall,
            total_time=elapsed_before + wall,
            logs=last_logs,
            eval=last_eval,
            stopped_early=stopped,
            skipped_steps=skipped,
            resumed_from=resumed_from,
            checkpoint=path if self.is_main else None,
        )
        if stopped and "non-finite" in stopped:
            if self.is_main and not self.quiet:
                print(f"{self.label}: {stopped}", file=sys.stderr, flush=True)
            if raise_on_nonfinite:
                raise NonFiniteLossError(stopped)
        return result


def fit(
    model: nn.Module,
    loss_fn: LossFn,
    batches: BatchSource,
    optim: OptimConfig,
    train: TrainConfig,
    out_dir: str | Path | None = None,
    *,
    resume: bool = False,
    evaluate_fn: Callable[[nn.Module, int], Mapping[str, Any]] | None = None,
    on_step_end: Callable[[int, dict[str, float]], bool | None] | None = None,
    params: Iterable[nn.Parameter] | None = None,
    config: Mapping[str, Any] | None = None,
    meta: Mapping[str, Any] | None = None,
    quiet: bool = False,
) -> FitResult:
    """One-call form of ``Engine(model, ...).fit(loss_fn, batches, ...)``.

    Example:
        >>> import torch
        >>> net = nn.Linear(2, 1)
        >>> data = [torch.ones(4, 2)] * 3
        >>> r = fit(net, lambda x, s: {"loss": net(x).pow(2).mean()}, data,
        ...         OptimConfig(lr=0.1), TrainConfig(steps=3), quiet=True)
        >>> r.steps_run
        3
    """
    engine = Engine(
        model, optim, train, out_dir, params=params, config=config, meta=meta, quiet=quiet
    )
    return engine.fit(
        loss_fn, batches, resume=resume, evaluate_fn=evaluate_fn, on_step_end=on_step_end
    )
