"""Where a run executes: torchrun's process group, the device, mixed precision, and the global
random generators (seeded, saved and restored exactly for resumption).

Example:
    >>> init_distributed("cpu").world_size  # not launched by torchrun
    1
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from forgetir.config import ConfigError
from forgetir.errors import DeviceError, InvalidInputError


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in a torchrun job (a single process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    created_group: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str, local_rank: int = 0, option: str = "train.device") -> torch.device:
    """``auto`` -> ``cuda:<local_rank>`` when a GPU is present, else ``cpu``; ``cpu``, ``cuda``
    (this rank's GPU) and ``cuda:N`` as named. An unknown name, or a GPU this torch cannot see,
    is a :class:`~forgetir.errors.DeviceError` naming ``option``.

    Example:
        >>> resolve_device("cpu").type
        'cpu'
    """
    valid = "auto, cpu, cuda, cuda:N"
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise DeviceError(f"{option}: unknown device {name!r}; valid: {valid}") from None
    if dev.type == "cpu":
        return torch.device("cpu")
    if dev.type != "cuda":
        raise DeviceError(f"{option}: invalid value {name!r}; valid: {valid}")
    if not torch.cuda.is_available():
        raise DeviceError(
            f"{option}={name} but this torch ({torch.__version__}) sees no CUDA GPU; "
            "valid here: auto, cpu"
        )
    index = local_rank if dev.index is None else dev.index
    if index >= torch.cuda.device_count():
        raise DeviceError(
            f"{option}={name}: no such GPU; this machine has {torch.cuda.device_count()} "
            f"(cuda:0..cuda:{torch.cuda.device_count() - 1})"
        )
    return torch.device("cuda", index)


def _env_int(name: str, default: int, least: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = least - 1
    if value < least:
        raise InvalidInputError(
            f"environment variable {name}={raw!r} is out of range; valid: an integer >= {least}"
        )
    return value


def distributed_env() -> tuple[int, int, int]:
    """``(world size, rank, local rank)`` from torchrun's environment, checked before any
    work: integers, ``RANK`` set whenever ``WORLD_SIZE`` > 1 and below it.

    Example:
        >>> distributed_env()  # not launched by torchrun
        (1, 0, 0)
    """
    world = _env_int("WORLD_SIZE", 1, 1)
    if world == 1:
        return 1, 0, 0
    if "RANK" not in os.environ:
        raise InvalidInputError(
            f"environment variable WORLD_SIZE={world} is set but RANK is not: launch "
            "distributed runs with torchrun (e.g. torchrun --nproc_per_node 2 -m forgetir.cli "
            "train ...), or unset WORLD_SIZE for one process"
        )
    rank = _env_int("RANK", 0, 0)
    if rank >= world:
        raise InvalidInputError(
            f"environment variable RANK={rank} is out of range; valid: 0..{world - 1} "
            f"(WORLD_SIZE={world})"
        )
    return world, rank, _env_int("LOCAL_RANK", 0, 0)


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the process group described by torchrun's environment, if there is one.

    Reads ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK`` (and ``MASTER_ADDR``/``MASTER_PORT`` through
    the ``env://`` rendezvous). Without them, or with ``WORLD_SIZE=1``, this is a single process.

    Example:
        >>> init_distributed("cpu").world_size  # not launched by torchrun
        1
    """
    world, rank, local_rank = distributed_env()
    if world <= 1:
        return DistInfo()
    if dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, False)
    dev = resolve_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(rank, world, local_rank, True)


def leave_distributed(info: DistInfo) -> None:
    """Leave the process group that :func:`init_distributed` created for ``info`` (nothing
    when it joined an existing one or there is none). All ranks must call it: they pass a
    barrier first, as a rank leaving while a peer still exchanges can abort the peer
    ("terminate called without an active exception").

    Example:
        >>> leave_distributed(init_distributed("cpu"))  # a single process: nothing to leave
    """
    if info.created_group and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def resolve_precision(precision: str, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """``(autocast dtype or None, use a GradScaler)`` for ``train.precision`` on ``device``."""
    if precision == "auto":
        if device.type != "cuda":
            return None, False
        return (torch.bfloat16, False) if torch.cuda.is_bf16_supported() else (torch.float16, True)
    if precision == "fp32":
        return None, False
    if precision == "bf16":
        return torch.bfloat16, False
    if precision == "fp16":
        if device.type != "cuda":
            raise ConfigError("train.precision=fp16 needs a CUDA GPU; on CPU use fp32 or bf16")
        return torch.float16, True
    raise ConfigError(
        f"train.precision: invalid value {precision!r}; valid: auto, fp32, bf16, fp16"
    )


# ------------------------------------------------------------------------------ random generators


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (CPU and CUDA) global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def get_rng_state() -> dict[str, Any]:
    """Every global generator's state as tensors and plain values (``weights_only``-loadable)."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    version, py_state, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": {"version": version, "state": list(py_state), "gauss": gauss},
    }


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`get_rng_state` returned."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    npst = state["numpy"]
    keys = npst["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, npst["pos"], npst["has_gauss"], npst["cached"]))
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
