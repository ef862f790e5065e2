"""How a model restores whole images: in tiles or whole, in fp32 or bf16 autocast.

:func:`forward` is the one call that every whole-image restoration goes through
(:func:`forgetir.scoring.evaluate.restore`, and so evaluation, verification's checks and the image
grids). What it does is set per call or, for a whole command, by :func:`tiling_scope` and
:func:`precision_scope`: a command's ``--tile`` and ``--precision`` then reach the checks that
restore images deep inside verification without every signature passing them on. Under
torchrun, :func:`shard_scope` splits the images of each restoration between the processes
(:func:`shard_indices`) and gathers the outputs (:func:`gather_shares`).

Example:
    >>> import torch
    >>> x = torch.rand(1, 3, 40, 40)
    >>> with tiling_scope(16, 4), precision_scope("fp32"):
    ...     y = forward(torch.nn.Identity(), x)
    >>> bool(torch.allclose(y, x, atol=1e-6))
    True
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
from collections.abc import Callable, Iterator, Sequence

import torch
import torch.distributed as dist
from torch import nn

from forgetir.errors import InvalidInputError
from forgetir.models.tiling import (
    DEFAULT_OVERLAP,
    check_tiling,
    default_overlap,
    model_multiple,
    restore_tiled,
)

# auto: bf16 autocast on a GPU that has bf16 (fp16 on one without), fp32 on a CPU; fp16 needs
# a GPU. Weights stay fp32 (autocast) and metrics are always fp32.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")

# (tile, overlap) and precision of every whole-image restoration in the block.
_TILING: contextvars.ContextVar[tuple[int | None, int]] = contextvars.ContextVar(
    "forgetir_tiling", default=(None, DEFAULT_OVERLAP)
)
_PRECISION: contextvars.ContextVar[str] = contextvars.ContextVar(
    "forgetir_precision", default="fp32"
)
# (rank, world size) of the processes that share each restoration's images.
_SHARD: contextvars.ContextVar[tuple[int, int]] = contextvars.ContextVar(
    "forgetir_restore_shard", default=(0, 1)
)
# Outputs already restored in the enclosing reuse_outputs() block, by what they depend on.
_OUTPUTS: contextvars.ContextVar[dict[tuple, list[torch.Tensor]] | None] = contextvars.ContextVar(
    "forgetir_outputs", default=None
)


@contextlib.contextmanager
def tiling_scope(tile: int | None, overlap: int = DEFAULT_OVERLAP) -> Iterator[None]:
    """Within the block, :func:`forward` (and so :func:`forgetir.scoring.evaluate.restore`,
    ``evaluate_model`` and every check that restores test images) runs ``tile`` × ``tile``
    tiles overlapping by ``overlap`` pixels (:func:`forgetir.models.tiling.restore_tiled`);
    ``tile=None``: whole images.

    Example:
        >>> with tiling_scope(64, 16):
        ...     current_tiling()
        (64, 16)
    """
    if tile is not None:
        check_tiling(tile, overlap)
    token = _TILING.set((tile, overlap))
    try:
        yield
    finally:
        _TILING.reset(token)


def current_tiling() -> tuple[int | None, int]:
    """``(tile, overlap)`` of the enclosing :func:`tiling_scope` (``(None, 32)`` outside one)."""
    return _TILING.get()


@contextlib.contextmanager
def precision_scope(precision: str) -> Iterator[None]:
    """Within the block, :func:`forward` runs the model under ``precision`` (one of
    :data:`PRECISIONS`; fp32 outside any scope).

    Example:
        >>> with precision_scope("bf16"):
        ...     current_precision()
        'bf16'
    """
    check_precision(precision)
    token = _PRECISION.set(precision)
    try:
        yield
    finally:
        _PRECISION.reset(token)


def current_precision() -> str:
    """The precision of the enclosing :func:`precision_scope` (``"fp32"`` outside one)."""
    return _PRECISION.get()


@contextlib.contextmanager
def reuse_outputs() -> Iterator[None]:
    """Within the block, :func:`forgetir.scoring.evaluate.restore` restores a list of images
    once per model state: the scores, the checks (output gap, anamnesis target, relearning start, UT
    reference check) and the image grids of a run, and the runs of a demo, read BEFORE's,
    UT's and the unlearned model's outputs from one restoration. An entry is keyed by a digest
    of the model's weights and buffers, of the images' pixels, and the tiling, precision,
    device and batch size, so a changed model or image is restored anew; a model in training
    mode (being fine-tuned) is never cached. A block inside another shares the outer block's.

    Example:
        >>> calls = []
        >>> def compute():
        ...     calls.append(1)
        ...     return [torch.zeros(1, 3, 4, 4)]
        >>> net, xs = torch.nn.Identity().eval(), [torch.ones(1, 3, 4, 4)]
        >>> with reuse_outputs():
        ...     _ = [cached_outputs(net, xs, (None, 32, "fp32", "cpu", 8), compute) for _ in "ab"]
        >>> len(calls)
        1
    """
    if _OUTPUTS.get() is not None:
        yield
        return
    token = _OUTPUTS.set({})
    try:
        yield
    finally:
        _OUTPUTS.reset(token)


def tensors_digest(tensors: Sequence[torch.Tensor], prefix: bytes = b"") -> str:
    """SHA-256 of ``prefix`` and tensors' shapes, dtypes and values, in order.

    Example:
        >>> len(tensors_digest([torch.zeros(2)]))
        64
    """
    h = hashlib.sha256(prefix)
    for t in tensors:
        h.update(f"{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.detach().contiguous().cpu().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def cached_outputs(
    model: nn.Module,
    images: Sequence[torch.Tensor],
    how: tuple,
    compute: Callable[[], list[torch.Tensor]],
) -> list[torch.Tensor]:
    """``compute()`` (``model``'s outputs for ``images``, restored as ``how`` says: tiling,
    precision, device, batch size), or the outputs of the same call earlier in the enclosing
    :func:`reuse_outputs` block. Outside one, or for a model in training mode: ``compute()``."""
    store = _OUTPUTS.get()
    if store is None or model.training:
        return compute()
    state = model.state_dict()
    names = repr(sorted(state)).encode()
    weights = tensors_digest([state[k] for k in sorted(state)], names)
    # The module tree's repr too: two architectures can hold tensors of the same names and shapes.
    arch = hashlib.sha256(repr(model).encode()).hexdigest()
    key = (type(model).__qualname__, arch, weights, tensors_digest(images), how)
    if key not in store:
        store[key] = compute()
    return [o.clone() for o in store[key]]  # a caller may write into its outputs


def check_precision(precision: str, option: str = "--precision") -> str:
    """Refuse a precision that is not one of :data:`PRECISIONS`, naming ``option``."""
    if precision not in PRECISIONS:
        raise InvalidInputError(
            f"{option}: invalid value {precision!r}; valid: {', '.join(PRECISIONS)}"
        )
    return precision


def autocast_dtype(
    precision: str, device: torch.device, option: str = "--precision"
) -> torch.dtype | None:
    """The autocast dtype of ``precision`` on ``device`` (None: plain fp32); fp16 on a CPU is
    refused (an :class:`~forgetir.errors.InvalidInputError` naming ``option``).

    Example:
        >>> autocast_dtype("auto", torch.device("cpu")), autocast_dtype("bf16", torch.device("cpu"))
        (None, torch.bfloat16)
    """
    check_precision(precision, option)
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        if device.type != "cuda":
            raise InvalidInputError(f"{option} fp16 needs a CUDA GPU; on a CPU use fp32 or bf16")
        return torch.float16
    if precision == "auto" and device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return None


@contextlib.contextmanager
def shard_scope(rank: int, world_size: int) -> Iterator[None]:
    """Within the block, every whole-image restoration (:func:`forgetir.evaluate.restore`)
    runs only this process's share of the images (:func:`shard_indices`) and gathers the
    others' outputs from the process group (:func:`gather_shares`): every rank ends with all
    outputs, in order. Every rank must restore the same images in the same order inside the
    block (each restoration is a collective call); ``world_size`` 1 changes nothing.

    Example:
        >>> with shard_scope(0, 1):
        ...     shard_indices(3)
        [0, 1, 2]
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in 0..world_size-1 (world_size {world_size})")
    token = _SHARD.set((rank, world_size))
    try:
        yield
    finally:
        _SHARD.reset(token)


def shard_indices(n: int) -> list[int]:
    """The images (of ``n``) this process restores: every ``world_size``-th one from its rank
    (interleaved, so sizes spread evenly); all of them outside a :func:`shard_scope`.

    Example:
        >>> with shard_scope(1, 2):
        ...     shard_indices(5)
        [1, 3]
    """
    rank, world = _SHARD.get()
    return list(range(rank, n, world))


def gather_shares(outputs: list[torch.Tensor | None]) -> list[torch.Tensor]:
    """Every rank's restored images (``outputs[i]`` set where this rank restored image ``i``,
    None elsewhere) merged on every rank; outside a :func:`shard_scope` the list as it is.

    Example:
        >>> len(gather_shares([torch.zeros(1)]))
        1
    """
    _, world = _SHARD.get()
    if world > 1:
        mine = {i: t.cpu() for i, t in enumerate(outputs) if t is not None}
        shares: list[dict[int, torch.Tensor] | None] = [None] * world
        dist.all_gather_object(shares, mine)
        for share in shares:
            for i, t in (share or {}).items():
                outputs[i] = t
    missing = [i for i, t in enumerate(outputs) if t is None]
    if missing:
        raise RuntimeError(f"no process restored image(s) {missing[:5]} of {len(outputs)}")
    return [t for t in outputs if t is not None]


def forward(
    model: nn.Module,
    x: torch.Tensor,
    tile: int | None = None,
    overlap: int | None = None,
    precision: str | None = None,
) -> torch.Tensor:
    """``model(x)`` as float32, tiled and in the precision asked (None: as the enclosing
    scopes say). ``x`` is on the model's device; no gradients are kept by tiled calls.

    Example:
        >>> forward(torch.nn.Identity(), torch.zeros(2, 3, 8, 8), precision="bf16").dtype
        torch.float32
    """
    scoped_tile, scoped_overlap = current_tiling()
    tile = scoped_tile if tile is None else tile
    overlap = scoped_overlap if overlap is None else overlap
    dtype = autocast_dtype(current_precision() if precision is None else precision, x.device)
    # autocast covers the model's forward only: padding, blending and metrics stay in fp32
    with torch.autocast(x.device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        y = model(x) if tile is None else restore_tiled(model, x, tile, overlap)
    return y.float()


def tiling_options(
    tile: int | None, overlap: int | None, models: Sequence[nn.Module] = ()
) -> tuple[int | None, int]:
    """``(tile, overlap)`` of ``--tile``/``--tile-overlap``, checked against ``models``' size
    multiples (an :class:`~forgetir.errors.InvalidInputError` naming the option); an
    overlap without a tile is refused.

    Example:
        >>> tiling_options(256, None), tiling_options(None, None)
        ((256, 32), (None, 32))
    """
    if tile is None:
        if overlap is not None:
            raise InvalidInputError(f"--tile-overlap={overlap} needs --tile N (tiled inference)")
        return None, DEFAULT_OVERLAP
    if overlap is None:
        overlap = default_overlap(tile) if isinstance(tile, int) else DEFAULT_OVERLAP
    check_tiling(tile, overlap, max([1, *(model_multiple(m) for m in models)]))
    return tile, overlap
