"""Output gap: mean per-image L1 between the unlearned and UT outputs on forget-test, measured
on the clipped outputs (the images the PSNR column describes, range [0, 1]).

Example:
    >>> import torch
    >>> pairs = [(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))]
    >>> output_gap(torch.nn.Identity(), torch.nn.Identity(), pairs)
    0.0
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from forgetir.checks.base import Check, Context, as_pairs, figure, l1_per_image, mean, single_images
from forgetir.render.document import fmt
from forgetir.scoring.evaluate import restore

__all__ = ["OutputGapCheck", "output_gap"]

METRIC = "mean per-image L1 between unlearned and UT outputs, both clipped to [0,1]"


@torch.no_grad()
def output_gap(
    model: nn.Module,
    ut_model: nn.Module,
    test_set: Any,
    device: str | torch.device | None = None,
) -> float:
    """Mean per-image L1 between ``model``'s and ``ut_model``'s outputs on ``test_set``
    (forget-test), each output clipped to [0, 1] as the PSNR/SSIM protocol clips it: 0 means
    the unlearned model behaves exactly as the retrained one.

    Example:
        >>> pairs = [(torch.full((1, 3, 4, 4), 1.5), torch.zeros(1, 3, 4, 4))]
        >>> output_gap(torch.nn.Identity(), torch.nn.Hardtanh(0.0, 0.5), pairs)  # 1.5 -> 1
        0.5
    """
    xs, _ = single_images(as_pairs(test_set, "output_gap test_set"))
    return mean(l1_per_image(_clipped(model, xs, device), _clipped(ut_model, xs, device)))


def _clipped(model: nn.Module, xs: list[torch.Tensor], device: Any = None) -> list[torch.Tensor]:
    return [p.clamp(0, 1) for p in restore(model, xs, device)]


class OutputGapCheck(Check):
    name = "output_gap"
    title = "Output gap"
    not_measured = "Not measured: no UT model was given."

    def applies(self, ctx: Context) -> bool:
        return ctx.ut is not None

    def compute(self, ctx: Context) -> dict[str, Any]:
        xs, _ = single_images(ctx.forget_pairs)
        ut = _clipped(ctx.ut, xs)  # once for both gaps
        return {
            "metric": METRIC,
            "data": ctx.forget_data,
            "value": mean(l1_per_image(_clipped(ctx.unlearned, xs), ut)),
            "before_value": mean(l1_per_image(_clipped(ctx.before, xs), ut)),
        }

    def summary(self, result: Mapping[str, Any]) -> list[str]:
        return [
            f"output gap to UT ({result['metric']}, {result['data']}): "
            f"{fmt(result['value'], 4)} (BEFORE's: {fmt(result.get('before_value'), 4)})"
        ]

    def figures(self, result: Mapping[str, Any], verify: Mapping[str, Any]) -> list[dict]:
        name = "output gap (unlearned vs UT)"
        return [figure(name, result.get("value"), result.get("metric"), result.get("data"))]

    def render(self, doc: Any, result: Mapping[str, Any], verify: Mapping[str, Any]) -> None:
        doc.para(
            f"{result.get('metric')}: {fmt(result.get('value'), 4)} on {result.get('data')} "
            f"(BEFORE vs UT for scale: {fmt(result.get('before_value'), 4)}; 0 is ideal)."
        )
