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

The pieces: :mod:`.core` (:class:`Engine`: model, optimiser, process group; ``fit``),
:mod:`.loop` (the step loop), :mod:`.schedule` (optimiser, learning-rate schedule),
:mod:`.logs` (``log.csv``, TensorBoard) and :mod:`.resume` (checkpoints, exact resumption).

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

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from torch import nn

from forgetir.config import OptimConfig, TrainConfig
from forgetir.engine.core import Engine, FitResult, NonFiniteLossError
from forgetir.engine.logs import LOG_NAME, CsvLog
from forgetir.engine.loop import MAX_CONSECUTIVE_SKIPS, BatchSource, LossFn
from forgetir.engine.resume import (
    RESUME_FORMAT,
    RESUME_NAME,
    RESUME_NEXT_NAME,
    RESUME_SAFE_KEYS,
    SIDECAR_NAME,
    WEIGHTS_NAME,
    config_hash,
)
from forgetir.engine.schedule import build_optimizer, lr_at

__all__ = [
    "LOG_NAME",
    "MAX_CONSECUTIVE_SKIPS",
    "RESUME_FORMAT",
    "RESUME_NAME",
    "RESUME_NEXT_NAME",
    "RESUME_SAFE_KEYS",
    "SIDECAR_NAME",
    "WEIGHTS_NAME",
    "BatchSource",
    "CsvLog",
    "Engine",
    "FitResult",
    "LossFn",
    "NonFiniteLossError",
    "build_optimizer",
    "config_hash",
    "fit",
    "lr_at",
]


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
