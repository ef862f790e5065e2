"""The interface every proof check implements, the context they read, and shared helpers.

A check is one figure of the proof of forgetting (docs/proof.md, "The checks"). It says whether it
:meth:`~Check.applies` to a run, :meth:`~Check.compute`\\ s its result (a JSON-ready mapping that
names its metric and data), gives a one-line :meth:`~Check.summary`, its
:meth:`~Check.figures` for the audit manifest, and :meth:`~Check.render`\\ s itself into the
report. ``forgetir verify`` and the report's verification section are loops over
:data:`forgetir.checks.CHECKS`.

Samples ("pairs") are ``(degraded, clean)`` tuples of (1,3,H,W) or (B,3,H,W) tensors in [0,1];
wherever pairs are expected a :class:`~forgetir.data.testsets.TestSet` also works.

Example:
    >>> pairs = [(torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4))]
    >>> l1_per_image(*single_images(as_pairs(pairs, "x")))
    [1.0]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

import torch
from torch import nn

from forgetir.scoring.evaluate import describe_test_sets

__all__ = [
    "BEFORE",
    "L1_METRIC",
    "UNLEARNED",
    "UT",
    "Check",
    "Context",
    "Pair",
    "as_pairs",
    "finite",
    "l1_per_image",
    "mean",
    "single_images",
]

BEFORE, UNLEARNED, UT = "BEFORE", "unlearned", "UT"
L1_METRIC = "mean absolute error per image (RGB, range [0,1]), averaged over images"
Pair = tuple[torch.Tensor, torch.Tensor]


def as_pairs(data: Any, what: str) -> list[Pair]:
    """``data`` (a TestSet or a sequence of (degraded, clean)) as a list of 4-D pairs."""
    if hasattr(data, "degraded") and hasattr(data, "clean"):
        items = list(zip(data.degraded, data.clean, strict=True))
    elif isinstance(data, Sequence) and not isinstance(data, str | bytes):
        items = list(data)
    else:
        raise TypeError(
            f"{what}: expected a TestSet or a list of (degraded, clean) tensor pairs, "
            f"got {type(data).__name__}"
        )
    out: list[Pair] = []
    for i, item in enumerate(items):
        if not (isinstance(item, tuple | list) and len(item) == 2):
            raise ValueError(f"{what}[{i}] must be a (degraded, clean) pair")
        x, y = (t if t.ndim == 4 else t.unsqueeze(0) for t in item)
        if x.ndim != 4 or x.shape != y.shape:
            raise ValueError(
                f"{what}[{i}]: degraded {tuple(item[0].shape)} and clean "
                f"{tuple(item[1].shape)} must be equal (B,C,H,W) or (C,H,W) shapes"
            )
        out.append((x, y))
    if not out:
        raise ValueError(f"{what} is empty: give at least one (degraded, clean) pair")
    return out


def single_images(pairs: list[Pair]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Split batched pairs into (1,C,H,W) images: the unit every per-image figure averages."""
    xs, ys = [], []
    for x, y in pairs:
        xs += list(x.split(1))
        ys += list(y.split(1))
    return xs, ys


def l1_per_image(preds: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> list[float]:
    """Mean absolute difference of each (pred, target) pair."""
    return [
        float((p.float() - t.float()).abs().mean()) for p, t in zip(preds, targets, strict=True)
    ]


def finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else float("nan")


@dataclass
class Context:
    """Everything a check may read about one run: the models, the data, the settings.

    ``rows``: the quality table (labels ``input``, ``BEFORE``, ``unlearned``, ``UT``).
    ``relearn_samples``: a few forget-train pairs (relearning and AIN; None skips them).
    ``membership``: ``{"members", "nonmembers", "forgotten"}`` pairs (instance forgetting).
    ``cost_info``: keyword arguments of :func:`forgetir.checks.cost.cost`.
    ``reference``: UT's cached curves (:mod:`forgetir.checks.reference`), or None to compute.
    ``instance_candidates``: ``{"forgotten", "kept", "nonmembers"}`` whole-image pairs of an
    instance split (the per-example attack); ``mia_reference``: a model that saw none of them
    (its calibration; None: uncalibrated), named ``mia_reference_name``.
    ``results``: the results of the checks run so far, by name.
    """

    unlearned: nn.Module
    before: nn.Module
    ut: nn.Module | None
    forget_tasks: Sequence[str]
    retain_tasks: Sequence[str]
    test_sets: Mapping[str, Any]
    rows: Mapping[str, Any]
    protocol: str = "promptir"
    relearn_samples: Any = None
    relearn_steps: int = 20
    relearn_lr: float = 2e-4
    ain_max_steps: int = 100
    ain_tol: float = 0.05
    eval_every: int = 1
    membership: Mapping[str, Any] | None = None
    cost_info: Mapping[str, Any] | None = None
    relearn_description: str | None = None
    membership_description: str | None = None
    seed: int = 0
    quiet: bool = True
    reference: Any = None
    # The unlearned forget-test PSNR of each seed, where a run has several (verdict interval).
    seed_forget_psnr: Sequence[float] | None = None
    instance_candidates: Mapping[str, Any] | None = None
    instance_description: str | None = None
    mia_reference: nn.Module | None = None
    mia_reference_name: str | None = None
    results: dict[str, Any] = field(default_factory=dict)
    # Work shared between checks (e.g. the anamnesis runs that relearning reads its prefix off).
    cache: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def source(self) -> str:
        return describe_test_sets(self.test_sets)

    @cached_property
    def forget_pairs(self) -> list[Pair]:
        pairs: list[Pair] = []
        for t in self.forget_tasks:
            pairs += as_pairs(self.test_sets[t], f"test set {t!r}")
        return pairs

    @cached_property
    def forget_data(self) -> str:
        return f"forget-test: {', '.join(self.forget_tasks)} of {self.source}"

    @cached_property
    def train_data(self) -> str:
        n = len(single_images(as_pairs(self.relearn_samples, "relearn_samples"))[0])
        return self.relearn_description or f"{n} forget-train samples"

    def models(self) -> dict[str, nn.Module]:
        out = {BEFORE: self.before, UNLEARNED: self.unlearned}
        if self.ut is not None:
            out[UT] = self.ut
        return out


class Check:
    """One figure of the proof. Subclasses set ``name`` (its key in verify.json) and ``title``
    and implement :meth:`compute`, :meth:`summary`, :meth:`figures` and :meth:`render`."""

    name: ClassVar[str]
    title: ClassVar[str]
    # Checks to compute before this one (their work in ``ctx.cache`` is reused); the order of
    # the results and of the report stays the registry's.
    needs: ClassVar[tuple[str, ...]] = ()
    # Said in the report when the check did not apply to the run.
    not_measured: ClassVar[str] = "Not measured."

    def applies(self, ctx: Context) -> bool:
        return True

    def compute(self, ctx: Context) -> dict[str, Any]:
        raise NotImplementedError

    def summary(self, result: Mapping[str, Any]) -> list[str]:
        """Lines for ``forgetir verify``'s output, each naming its metric and data."""
        return []

    def figures(self, result: Mapping[str, Any], verify: Mapping[str, Any]) -> list[dict]:
        """``{figure, value, metric, data}`` rows for the audit manifest."""
        return []

    def render(self, doc: Any, result: Mapping[str, Any], verify: Mapping[str, Any]) -> None:
        """Write the check's section body (a :class:`forgetir.render.document.Doc`)."""
        raise NotImplementedError


def figure(name: str, value: Any, metric: Any, data: Any) -> dict[str, Any]:
    """One audit-manifest row."""
    return {"figure": name, "value": value, "metric": metric, "data": data}
