"""Relearning: fine-tune a copy on a few forget images for ``k`` steps and report the forget
PSNR recovered (UT's run read from its reference log when one matches).

Example:
    >>> import torch
    >>> net = torch.nn.Conv2d(3, 3, 1)
    >>> pairs = [(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))]
    >>> relearn(net, pairs, steps=1, lr=1e-2)["steps_run"]
    1
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from forgetir.checks import reference
from forgetir.checks.base import (
    BEFORE,
    L1_METRIC,
    UNLEARNED,
    UT,
    Check,
    Context,
    as_pairs,
    figure,
    l1_per_image,
    mean,
    single_images,
)
from forgetir.metrics import describe_protocol, psnr
from forgetir.render.document import fmt
from forgetir.render.figures import relearn_figure
from forgetir.runtime.progress import Progress
from forgetir.scoring.evaluate import restore

__all__ = ["RelearnCheck", "measure", "relearn"]


def _device_of(model: nn.Module) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def measure(
    model: nn.Module, xs: list[torch.Tensor], ys: list[torch.Tensor], protocol: str
) -> tuple[float, float]:
    """(mean PSNR, mean L1) of ``model`` on images ``xs`` against ``ys``, outputs clipped."""
    # Clip as the promptir protocol does, so L1 and PSNR describe the same images. PSNR only:
    # SSIM at every step would cost more than the fine-tuning itself.
    preds = [p.clamp(0, 1) for p in restore(model, xs)]
    psnrs = [float(psnr(p, y.to(p.dtype), protocol)[0]) for p, y in zip(preds, ys, strict=True)]
    return mean(psnrs), mean(l1_per_image(preds, ys))


def relearn(
    model: nn.Module,
    forget_samples: Any,
    steps: int = 20,
    lr: float = 2e-4,
    eval_set: Any = None,
    *,
    protocol: str = "promptir",
    eval_every: int = 1,
    stop_l1: float | None = None,
    quiet: bool = True,
    label: str = "relearning",
) -> dict[str, Any]:
    """Fine-tune a deep copy of ``model`` on ``forget_samples`` for ``steps`` Adam steps and
    measure the forget PSNR/L1 on ``eval_set`` (default: the samples themselves).

    This is the relearning attack: ``model`` itself is never modified. Each step is one full
    batch over every sample (the official L1 loss; Adam betas (0.9, 0.999)), so the result is
    deterministic and does not depend on sample order. Every parameter is trained, frozen or
    not. ``stop_l1`` ends the run at the first evaluation whose forget L1 is at or below it.
    ``quiet=False`` shows progress (``label``).

    Returns ``curve`` = [(step, forget PSNR, forget L1), ...] (step 0 is before any update),
    ``start_psnr``, ``final_psnr``, ``best_psnr``, ``recovered_db`` (final minus start),
    ``reached_step`` (first step meeting ``stop_l1``, or None), and what was measured.

    Example:
        >>> net = torch.nn.Conv2d(3, 3, 1)
        >>> pairs = [(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))]
        >>> r = relearn(net, pairs, steps=2, lr=1e-2)
        >>> [s for s, _, _ in r["curve"]], net.weight.grad is None
        ([0, 1, 2], True)
    """
    if int(steps) < 0:
        raise ValueError(f"relearn steps must be >= 0, got {steps}")
    if int(eval_every) < 1:
        raise ValueError(f"relearn eval_every must be >= 1, got {eval_every}")
    if not lr > 0:
        raise ValueError(f"relearn lr must be > 0, got {lr}")
    describe_protocol(protocol)
    train_pairs = as_pairs(forget_samples, "relearn forget_samples")
    eval_pairs = train_pairs if eval_set is None else as_pairs(eval_set, "relearn eval_set")
    xs, ys = single_images(eval_pairs)

    net = copy.deepcopy(model)
    for p in net.parameters():
        p.requires_grad_(True)
    dev = _device_of(net)
    train_pairs = [(x.to(dev), y.to(dev)) for x, y in train_pairs]
    n_images = sum(x.shape[0] for x, _ in train_pairs)
    optim = torch.optim.Adam(net.parameters(), lr=lr, betas=(0.9, 0.999))

    psnr0, l10 = measure(net, xs, ys, protocol)
    curve: list[tuple[int, float, float]] = [(0, psnr0, l10)]
    reached = 0 if stop_l1 is not None and l10 <= stop_l1 else None
    step = 0
    with Progress(int(steps), 0, not quiet and int(steps) > 0, label) as bar:
        while step < int(steps) and reached is None:
            net.train()
            optim.zero_grad(set_to_none=True)
            # Weighted by images so batched and single-image samples count alike.
            loss = sum(F.l1_loss(net(x), y) * x.shape[0] for x, y in train_pairs) / n_images
            loss.backward()
            optim.step()
            step += 1
            if step % int(eval_every) == 0 or step == int(steps):
                p, l1 = measure(net, xs, ys, protocol)
                curve.append((step, p, l1))
                if stop_l1 is not None and l1 <= stop_l1:
                    reached = step
            bar.update(step, f"forget L1 {curve[-1][2]:.4f}")
    return _summary(
        curve,
        steps=int(steps),
        steps_run=step,
        lr=float(lr),
        eval_every=int(eval_every),
        train_images=n_images,
        eval_images=len(xs),
        protocol=protocol,
        stop_l1=stop_l1,
        reached_step=reached,
    )


def _summary(curve: list[tuple[int, float, float]], **run: Any) -> dict[str, Any]:
    """A relearning run's record from its curve and settings."""
    psnrs = [c[1] for c in curve]
    protocol = run["protocol"]
    return {
        "steps": run["steps"],
        "steps_run": run["steps_run"],
        "lr": run["lr"],
        "optimizer": "Adam(0.9, 0.999), full batch, L1 loss",
        "eval_every": run["eval_every"],
        "train_images": run["train_images"],
        "eval_images": run["eval_images"],
        "protocol": protocol,
        "metric": f"forget PSNR (dB, {protocol} protocol) and forget L1 ({L1_METRIC})",
        "curve_columns": ["step", "psnr", "l1"],
        "curve": curve,
        "start_psnr": psnrs[0],
        "final_psnr": psnrs[-1],
        "best_psnr": max(psnrs),
        "recovered_db": psnrs[-1] - psnrs[0],
        "start_l1": curve[0][2],
        "final_l1": curve[-1][2],
        "stop_l1": run["stop_l1"],
        "reached_step": run["reached_step"],
    }


def truncated(run: dict[str, Any], steps: int) -> dict[str, Any] | None:
    """The run of ``steps`` steps (no stop) read off a longer run with the same model, samples,
    lr and evaluation interval: the fine-tuning is deterministic, so its first ``steps`` steps
    are that run, number for number. None when the longer run stopped before ``steps`` or did
    not evaluate at ``steps``.

    Example:
        >>> net = torch.nn.Conv2d(3, 3, 1)
        >>> pairs = [(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))]
        >>> truncated(relearn(net, pairs, steps=4), 2)["curve"] == relearn(net, pairs, 2)["curve"]
        True
    """
    if run["steps_run"] < steps:
        return None
    curve = [c for c in run["curve"] if c[0] <= steps]
    if curve[-1][0] != steps:
        return None
    keys = ("lr", "eval_every", "train_images", "eval_images", "protocol")
    return _summary(
        curve,
        steps=steps,
        steps_run=steps,
        stop_l1=None,
        reached_step=None,
        **{k: run[k] for k in keys},
    )


class RelearnCheck(Check):
    name = "relearn"
    title = "Relearning"
    needs = ("anamnesis",)
    not_measured = "Not measured: no relearning samples were given."

    def applies(self, ctx: Context) -> bool:
        return ctx.relearn_samples is not None

    def compute(self, ctx: Context) -> dict[str, Any]:
        kwargs = {"protocol": ctx.protocol, "eval_every": ctx.eval_every, "quiet": ctx.quiet}
        args = (ctx.relearn_samples, ctx.relearn_steps, ctx.relearn_lr, ctx.forget_pairs)
        # The anamnesis runs fine-tune the same copies with the same settings for longer:
        # when they got past relearn_steps, their first steps are this test's runs.
        longer = ctx.cache.get("ain_runs") or {}
        runs = {}
        for label, model in ((UNLEARNED, ctx.unlearned), (UT, ctx.ut)):
            if model is None:
                continue
            run = truncated(longer[label], ctx.relearn_steps) if label in longer else None
            if run is None and label == UT:
                run = reference.ut_run(
                    ctx, "relearn", lambda: relearn(ctx.ut, *args, **kwargs, label="relearning UT")
                )
            elif run is None:
                run = relearn(model, *args, **kwargs, label=f"relearning {label}")
            runs[label] = run
        before_psnr = mean([float(ctx.rows[BEFORE][t]["psnr"]) for t in ctx.forget_tasks])
        for r in runs.values():
            lost = before_psnr - r["start_psnr"]
            r["recovered_fraction_of_before_gap"] = r["recovered_db"] / lost if lost > 0 else None
        return {
            "train_data": ctx.train_data,
            "eval_data": ctx.forget_data,
            "before_forget_psnr": before_psnr,
            "runs": runs,
        }

    def summary(self, result: Mapping[str, Any]) -> list[str]:
        runs = result["runs"]
        got = ", ".join(
            f"{k} {fmt(r['start_psnr'])} -> {fmt(r['final_psnr'])} dB" for k, r in runs.items()
        )
        steps = next(iter(runs.values()))["steps"]
        return [f"relearning ({steps} steps on {result['train_data']}): {got}"]

    def figures(self, result: Mapping[str, Any], verify: Mapping[str, Any]) -> list[dict]:
        out = []
        for label, r in (result.get("runs") or {}).items():
            m = f"{r.get('metric')}; {r.get('steps')} steps, lr {r.get('lr')}"
            train, ev = result.get("train_data"), result.get("eval_data")
            out.append(figure(f"relearn {label}: recovered dB", r.get("recovered_db"), m, train))
            out.append(figure(f"relearn {label}: final forget PSNR", r.get("final_psnr"), m, ev))
        return out

    def render(self, doc: Any, result: Mapping[str, Any], verify: Mapping[str, Any]) -> None:
        rows = [
            [
                label,
                r.get("steps_run"),
                r.get("lr"),
                fmt(r.get("start_psnr")),
                fmt(r.get("final_psnr")),
                fmt(r.get("recovered_db"), signed=True),
                fmt(r.get("recovered_fraction_of_before_gap")),
            ]
            for label, r in result["runs"].items()
        ]
        header = ["model", "steps", "lr", "start PSNR", "final PSNR", "recovered dB"]
        doc.table(
            [*header, "fraction of BEFORE gap"],
            rows,
            f"Fine-tuning a copy on {result.get('train_data')}; measured on "
            f"{result.get('eval_data')}. BEFORE's forget PSNR: "
            f"{fmt(result.get('before_forget_psnr'))} dB.",
        )
        png = relearn_figure(verify)
        if png is not None:
            doc.image(png, "relearn.png", "Relearning curves (forget PSNR) and AIN curves (L1)")
