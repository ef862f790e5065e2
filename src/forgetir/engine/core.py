"""The :class:`Engine`: model, optimiser, scaler and process group; ``fit`` composes the
step loop (:mod:`.loop`), the schedule (:mod:`.schedule`), the logs (:mod:`.logs`) and the
checkpoints (:mod:`.resume`)."""

from __future__ import annotations

import contextlib
import gc
import sys
import time
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from forgetir.atomic import remove_orphan_temps
from forgetir.config import AT_LEAST_ONE, ConfigError, OptimConfig, TrainConfig, check_range
from forgetir.engine.logs import RunLogs
from forgetir.engine.loop import (
    BatchSource,
    EvaluateFn,
    LossFn,
    StepEndFn,
    StepLoop,
    accepts_model,
)
from forgetir.engine.resume import (
    RESUME_NAME,
    RESUME_NEXT_NAME,
    WEIGHTS_NAME,
    check_same_config,
    config_hash,
    read_resume,
    write_checkpoint,
)
from forgetir.engine.schedule import build_optimizer
from forgetir.errors import RunExistsError
from forgetir.runtime.process import (
    get_rng_state,
    init_distributed,
    leave_distributed,
    resolve_device,
    resolve_precision,
    seed_everything,
    set_rng_state,
)
from forgetir.runtime.progress import Progress


class NonFiniteLossError(RuntimeError):
    """Raised by :meth:`Engine.fit` only when asked to (``raise_on_nonfinite=True``)."""


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
class _Start:
    """Where a ``fit`` call starts: step 0, or a resumed checkpoint's step."""

    step: int = 0
    elapsed: float = 0.0
    skipped: int = 0
    resumed_from: int | None = None


class Engine:
    """Runs the loop for ``model``; see :mod:`forgetir.engine` for files, DDP and resumption.

    Args:
        model: the trainable network (moved to the device; wrapped in DDP inside ``fit``).
        optim, train: the ``optim`` and ``train`` sections of a :class:`~forgetir.config.RunConfig`.
        out_dir: where checkpoints and logs go; ``None`` keeps everything in memory.
        params: the parameters to optimise; the model's other parameters are frozen during
            ``fit`` (``requires_grad`` restored afterwards). Default: all of them.
        config: the resolved run configuration (a dict); its hash is stored in ``resume.pt``
            and a resumed run must match it (apart from ``RESUME_SAFE_KEYS``).
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
        if self.dist.created_group:
            gc.collect()
        leave_distributed(self.dist)

    def any_rank(self, flag: bool) -> bool:
        """``flag`` on any rank (one all-reduce under DDP)."""
        if not self.dist.enabled:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def mean_over_ranks(self, logs: dict[str, float]) -> dict[str, float]:
        """Logged values averaged over the ranks (as they are in a single process)."""
        if not self.dist.enabled or not logs:
            return logs
        keys = sorted(logs)
        t = torch.tensor([logs[k] for k in keys], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return {k: float(v) / self.world_size for k, v in zip(keys, t.tolist(), strict=True)}

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Mixed precision as configured (a no-op context in full precision)."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _wrap(self) -> None:
        model: nn.Module = self.raw
        if self.dist.enabled:
            # Depthwise convs' (C,1,k,k) grads have strides that differ from the bucket's only
            # along a size-1 dimension: harmless, but DDP warns on every step.
            warnings.filterwarnings("ignore", message="Grad strides do not match bucket view")
            ids = [self.device.index] if self.device.type == "cuda" else None
            model = DDP(model, device_ids=ids, find_unused_parameters=self.find_unused_parameters)
        if self.train_cfg.compile:
            model = torch.compile(model)
        self.model = model

    # ------------------------------------------------------------------------- checkpoints

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
            state = {
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
            path = write_checkpoint(self.out_dir, state, self.raw, self.meta)
        self.barrier()
        return path

    def _load_resume(self) -> dict[str, Any] | None:
        payload = [read_resume(self.out_dir) if self.is_main else None]
        if self.dist.enabled:
            dist.broadcast_object_list(payload, src=0)
        state = payload[0]
        if state is None:
            return None
        check_same_config(state, self.config, self.out_dir)
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

    def fit(
        self,
        loss_fn: LossFn,
        batches: BatchSource,
        *,
        resume: bool = False,
        evaluate_fn: EvaluateFn | None = None,
        on_step_end: StepEndFn | None = None,
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
        pass_model = accepts_model(loss_fn)
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

    def _start(self, resume: bool) -> _Start:
        """Load the checkpoint to resume from, or check the folder and seed a fresh start."""
        start = _Start()
        if resume and self.out_dir is not None:
            state = self._load_resume()
            if state is not None:
                step = int(state["step"])
                start = _Start(step, float(state["elapsed"]), int(state.get("skipped", 0)), step)
        else:
            self.check_out_dir(resume)
        if start.resumed_from is None:
            seed_everything(self.train_cfg.seed + self.rank)
        return start

    def _open_logs(self, start: _Start) -> RunLogs:
        out = self.out_dir if self.is_main else None
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            remove_orphan_temps(out)  # left by a save that was killed half-way
        resume_step = start.step if start.resumed_from is not None else None
        return RunLogs(out, resume_step, self.train_cfg.tensorboard)

    def _fit(
        self,
        loss_fn: LossFn,
        batches: BatchSource,
        pass_model: bool,
        resume: bool,
        evaluate_fn: EvaluateFn | None,
        on_step_end: StepEndFn | None,
        raise_on_nonfinite: bool,
    ) -> FitResult:
        begin = self._start(resume)
        self._wrap()
        logs = self._open_logs(begin)
        progress = Progress(
            self.train_cfg.steps, begin.step, self.is_main and not self.quiet, self.label
        )
        t0 = time.perf_counter()

        def elapsed() -> float:
            return begin.elapsed + time.perf_counter() - t0

        loop = StepLoop(
            self,
            loss_fn,
            batches,
            pass_model=pass_model,
            start=begin.step,
            skipped=begin.skipped,
            evaluate_fn=evaluate_fn,
            on_step_end=on_step_end,
            logs=logs,
            progress=progress,
            elapsed=elapsed,
        )
        self.raw.train()
        try:
            loop.run()
        finally:
            progress.close()
        loop.close_window()
        wall = time.perf_counter() - t0
        result = self._finish(loop, begin, wall, elapsed())
        logs.close()
        if loop.stopped and "non-finite" in loop.stopped:
            if self.is_main and not self.quiet:
                print(f"{self.label}: {loop.stopped}", file=sys.stderr, flush=True)
            if raise_on_nonfinite:
                raise NonFiniteLossError(loop.stopped)
        return result

    def _finish(self, loop: StepLoop, begin: _Start, wall: float, elapsed: float) -> FitResult:
        """The final checkpoint (when anything changed) and the :class:`FitResult`."""
        steps_run = loop.step - begin.step
        path = None
        if self.out_dir is not None:
            if steps_run or begin.resumed_from is None or loop.stopped:
                path = self.save_checkpoint(loop.step, elapsed, loop.skipped)
            else:
                path = self.out_dir / WEIGHTS_NAME
        return FitResult(
            step=loop.step,
            steps_run=steps_run,
            wall_time=wall,
            total_time=begin.elapsed + wall,
            logs=loop.last_logs,
            eval=loop.last_eval,
            stopped_early=loop.stopped,
            skipped_steps=loop.skipped,
            resumed_from=begin.resumed_from,
            checkpoint=path if self.is_main else None,
        )
