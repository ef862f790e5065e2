"""The engine's step loop: batches in, forward, backward, the non-finite guard, the update,
then the step's logs, evaluation, checkpoint, progress and stop request.

:class:`StepLoop` holds what carries from step to step; the :class:`Engine
<forgetir.engine.core.Engine>` that runs it (its :class:`LoopHost`) owns the model, optimiser,
scaler and process group.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from forgetir.config import OptimConfig, TrainConfig
from forgetir.engine.logs import RunLogs, flat_floats, scalars
from forgetir.engine.resume import Snapshot, restore_snapshot, take_snapshot
from forgetir.engine.schedule import lr_at, set_lr
from forgetir.models.base import collect_aux_losses
from forgetir.runtime.progress import Progress

MAX_CONSECUTIVE_SKIPS = 20

LossFn = Callable[..., Mapping[str, Any]]
BatchSource = Callable[[int], Iterable[Any]] | Iterable[Any]
EvaluateFn = Callable[[nn.Module, int], Mapping[str, Any]]
StepEndFn = Callable[[int, dict[str, float]], bool | None]


class LoopHost(Protocol):
    """What the loop needs from its engine."""

    raw: nn.Module
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None
    trainable: list[nn.Parameter]
    optim_cfg: OptimConfig
    train_cfg: TrainConfig
    device: torch.device

    @property
    def is_main(self) -> bool: ...

    def any_rank(self, flag: bool) -> bool: ...

    def mean_over_ranks(self, logs: dict[str, float]) -> dict[str, float]: ...

    def autocast(self) -> contextlib.AbstractContextManager[Any]: ...

    def barrier(self) -> None: ...

    def save_checkpoint(self, step: int, elapsed: float, skipped: int = 0) -> Path | None: ...


def to_device(obj: Any, device: torch.device, channels_last: bool) -> Any:
    """Tensors of a (nested) batch moved to ``device`` (4-d float ones channels-last if asked)."""
    if isinstance(obj, torch.Tensor):
        t = obj.to(device, non_blocking=True)
        if channels_last and t.ndim == 4 and t.is_floating_point():
            t = t.contiguous(memory_format=torch.channels_last)
        return t
    if isinstance(obj, Mapping):
        return {k: to_device(v, device, channels_last) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(to_device(v, device, channels_last) for v in obj)
    return obj


def accepts_model(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` takes a ``model`` keyword argument (named, or through ``**kwargs``)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "model" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def batches_from(source: BatchSource, start: int) -> Iterator[Any]:
    """The batches for steps ``start, start + 1, ...`` of a callable or a plain iterable."""
    if callable(source) and not isinstance(source, Iterable):
        return iter(source(start))
    return itertools.islice(iter(source), start, None)


class StepLoop:
    """The loop of one ``fit`` call from step ``start`` (see :meth:`Engine.fit
    <forgetir.engine.core.Engine.fit>` for the arguments)."""

    def __init__(
        self,
        host: LoopHost,
        loss_fn: LossFn,
        batches: BatchSource,
        *,
        pass_model: bool,
        start: int,
        skipped: int,
        evaluate_fn: EvaluateFn | None,
        on_step_end: StepEndFn | None,
        logs: RunLogs,
        progress: Progress,
        elapsed: Callable[[], float],
    ) -> None:
        self.host, self.loss_fn, self.batches = host, loss_fn, batches
        self.pass_model, self.evaluate_fn, self.on_step_end = pass_model, evaluate_fn, on_step_end
        self.logs, self.progress, self.elapsed = logs, progress, elapsed
        self.tc = host.train_cfg
        self.total = self.tc.steps
        self.start = self.step = start
        self.skipped = skipped
        self.sums: dict[str, float] = {}  # the logging window's running sums ...
        self.count = 0  # ... over this many good steps
        self.last_logs: dict[str, float] = {}
        self.last_eval: dict[str, float] = {}
        self.snapshot: Snapshot | None = None
        self.stopped: str | None = None  # why the loop ended before train.steps, if it did
        self.consecutive_bad = 0
        self.guard_every = max(1, self.tc.guard_every)
        self.source = batches_from(batches, start)

    def run(self) -> None:
        """Steps until ``train.steps``, a stop request or a non-finite step that stops."""
        while self.step < self.total:
            if self._one_step():
                break

    def _one_step(self) -> bool:
        """One optimizer step and what follows it; True when the loop must end."""
        host = self.host
        batch = to_device(self._next_batch(), host.device, self.tc.channels_last)
        lr = lr_at(self.step, host.optim_cfg, self.total)
        set_lr(host.optimizer, lr)
        host.optimizer.zero_grad(set_to_none=True)
        loss, result = self._forward(batch)
        bad, grad_norm = self._backward(loss)
        values: dict[str, Any] = {}
        if bad:
            self.consecutive_bad += 1
            if self._stops_on_bad(loss):
                return True
            self.skipped += 1
        else:
            values = self._update(result, grad_norm)
        self.step += 1
        return self._after_step(lr, values)

    def _next_batch(self) -> Any:
        try:
            return next(self.source)
        except StopIteration:
            # A finite iterable is an epoch: start it again (callables restart at step).
            batches = self.batches
            self.source = batches_from(batches, self.step) if callable(batches) else iter(batches)
            try:
                return next(self.source)
            except StopIteration:
                raise ValueError(f"the batch source yielded nothing at step {self.step}") from None

    def _forward(self, batch: Any) -> tuple[torch.Tensor, Mapping[str, Any]]:
        """The step's loss (auxiliary losses of the model included) and the loss dict."""
        host, step = self.host, self.step
        # Models with auxiliary losses (MoCE-IR's router balance) record them during
        # training forwards; they join the step's loss here, whatever the loss_fn.
        with host.autocast(), collect_aux_losses(host.raw) as aux:
            result = (
                self.loss_fn(batch, step, model=host.model)
                if self.pass_model
                else self.loss_fn(batch, step)
            )
        if not isinstance(result, Mapping) or "loss" not in result:
            raise TypeError(
                f"loss_fn must return a dict with a 'loss' entry, got {type(result).__name__}"
            )
        loss = result["loss"]
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise TypeError("loss_fn's 'loss' must be a scalar tensor")
        if aux:
            aux_total = torch.stack([a.float().reshape(()) for a in aux]).sum()
            loss = loss + aux_total
            result = {**result, "loss": loss, "aux_loss": aux_total.detach()}
        return loss, result

    def _backward(self, loss: torch.Tensor) -> tuple[bool, torch.Tensor | None]:
        """Backward and clipping unless the loss is non-finite on some rank: (bad, grad norm)."""
        host = self.host
        # One flag for all ranks: a rank that skipped backward would hang the others.
        bad = host.any_rank(not bool(torch.isfinite(loss.detach())))
        grad_norm = None
        if not bad:
            if host.scaler is not None:
                host.scaler.scale(loss).backward()
                host.scaler.unscale_(host.optimizer)
            else:
                loss.backward()
            clip = host.optim_cfg.grad_clip or float("inf")
            grad_norm = torch.nn.utils.clip_grad_norm_(host.trainable, clip).detach()
            # Under fp16 an inf gradient is routine: the scaler skips that step itself.
            bad = host.scaler is None and not bool(torch.isfinite(grad_norm))
        return bad, grad_norm

    def _stops_on_bad(self, loss: torch.Tensor) -> bool:
        """After a non-finite step: roll back and stop (True), or skip it (False)."""
        loss_value = float(loss.detach())
        what = (
            f"non-finite loss ({loss_value:g})"
            if not math.isfinite(loss_value)
            else "non-finite gradient norm"
        )
        too_many = self.consecutive_bad > MAX_CONSECUTIVE_SKIPS
        if self.tc.nonfinite != "stop" and not too_many:
            return False
        snap = self.snapshot
        if snap is not None:
            host = self.host
            restore_snapshot(snap, host.raw, host.optimizer, host.scaler)
            self.stopped = (
                f"{what} at step {self.step + 1}; rolled back to the last good weights "
                f"(after step {snap.step}) and stopped"
            )
            self.step = snap.step
        else:
            self.stopped = f"{what} at step {self.step + 1}; stopped before updating"
        if too_many:
            self.stopped += f" ({self.consecutive_bad} non-finite steps in a row)"
        return True

    def _update(self, result: Mapping[str, Any], grad_norm: torch.Tensor | None) -> dict[str, Any]:
        """The optimizer step of a good step; its scalars join the logging window."""
        host = self.host
        self.consecutive_bad = 0
        if (self.step - self.start) % self.guard_every == 0:
            # proven good: it gave a finite loss
            self.snapshot = take_snapshot(self.step, host.raw, host.optimizer, host.scaler)
        if host.scaler is not None:
            host.scaler.step(host.optimizer)
            host.scaler.update()
        else:
            host.optimizer.step()
        values = scalars(result)
        values["grad_norm"] = grad_norm
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.count += 1
        return values

    def _window_mean(self) -> dict[str, float]:
        """The logging window's means (over all ranks); the window starts again."""
        means = self.host.mean_over_ranks({k: float(v) / self.count for k, v in self.sums.items()})
        self.sums, self.count = {}, 0
        return means

    def _evaluate(self) -> dict[str, float]:
        """The periodic evaluation on rank 0, when due (as ``eval/*`` values)."""
        host, step = self.host, self.step
        evaluated: dict[str, float] = {}
        if self.evaluate_fn is not None and self.tc.eval_every and step % self.tc.eval_every == 0:
            if host.is_main:
                host.raw.eval()
                self.last_eval = flat_floats(self.evaluate_fn(host.raw, step))
                host.raw.train()
                evaluated = {f"eval/{k}": v for k, v in self.last_eval.items()}
            host.barrier()
        return evaluated

    def _after_step(self, lr: float, values: dict[str, Any]) -> bool:
        """Logs, evaluation, checkpoint, progress and stop request after a step."""
        host, step, tc = self.host, self.step, self.tc
        row: dict[str, float] = {}
        if self.count and (step % max(1, tc.log_every) == 0 or step == self.total):
            self.last_logs = self._window_mean()
            self.last_logs["lr"] = lr
            if self.skipped:
                self.last_logs["skipped"] = float(self.skipped)
            row.update(self.last_logs)
        evaluated = self._evaluate()
        row.update(evaluated)
        if row:
            self.logs.write(step, row, self.elapsed())
        if tc.ckpt_every and step % tc.ckpt_every == 0 and step < self.total:
            host.save_checkpoint(step, self.elapsed(), self.skipped)
        if "loss" in self.last_logs:
            self.progress.update(step, f"loss {self.last_logs['loss']:.4g}")
        elif "loss" in values:
            self.progress.update(step, f"loss {float(values['loss']):.4g}")
        else:
            self.progress.update(step, "skipped a non-finite step")
        stop = False
        if self.on_step_end is not None:
            step_logs = {**flat_floats(values), "lr": lr, **evaluated}
            stop = bool(self.on_step_end(step, step_logs))
        if host.any_rank(stop):
            self.stopped = f"stopped by on_step_end at step {step}"
            return True
        return False

    def close_window(self) -> None:
        """Log a partial logging window (an early stop): ``log.csv`` only."""
        if self.count:
            self.last_logs = self._window_mean()
            self.last_logs["lr"] = lr_at(max(0, self.step - 1), self.host.optim_cfg, self.total)
            self.logs.write(self.step, self.last_logs, self.elapsed(), tb=False)
