"""Proof of forgetting: every figure measured against UT, the model retrained without the data.

The seed paper calls "lower PSNR than UT" more forgetting. The unlearning literature's gold
standard is the retrained model itself, so here each figure is read relative to UT (design
notes, section 8):

- :func:`quality_table` and :func:`gaps`: PSNR/SSIM per task, and the unlearned model's gap to
  UT and to BEFORE on forget-test and retain-test tasks;
- :func:`output_gap`: mean per-image L1 between the unlearned and UT outputs on forget-test;
- :func:`relearn`: fine-tune a *copy* on a few forget images for ``k`` steps, report the forget
  PSNR recovered;
- :func:`anamnesis_index`: AIN = steps(unlearned) / steps(UT), each the number of fine-tuning
  steps until the forget-set L1 is within ``tol`` (5%) of BEFORE's. AIN ~ 1 is ideal; AIN << 1
  means the knowledge was only hidden and comes straight back;
- :func:`membership_inference`: a loss-based attack for instance forgetting; forgotten images
  should look like non-members, as they do for UT;
- :func:`cost`: optimizer steps and wall time relative to training from scratch.

:func:`verify_run` runs them all and returns one JSON-serialisable dict in which each figure
names its metric, protocol and data; :func:`write_verification` saves it atomically.

Samples ("pairs") are ``(degraded, clean)`` tuples of (1,3,H,W) or (B,3,H,W) tensors in [0,1];
wherever pairs are expected a :class:`~forgetir.data.testsets.TestSet` also works.

Example:
    >>> import torch
    >>> from forgetir.data.testsets import build_test_sets
    >>> sets = build_test_sets("deadleaves", tasks=("denoise_25",), n=2, size=32)
    >>> output_gap(torch.nn.Identity(), torch.nn.Identity(), sets["denoise_25"])
    0.0
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from forgetir.atomic import atomic_json
from forgetir.evaluate import (
    INPUT_ROW,
    describe_test_sets,
    evaluate_degraded_input,
    evaluate_model,
    restore,
)
from forgetir.metrics import describe_protocol, psnr

__all__ = [
    "BEFORE",
    "FORMAT",
    "UNLEARNED",
    "UT",
    "anamnesis_index",
    "cost",
    "gaps",
    "key_figures",
    "membership_inference",
    "output_gap",
    "pairs_from_dataset",
    "quality_table",
    "relearn",
    "summarize",
    "verify_run",
    "write_verification",
]

FORMAT = "forgetir-verification"
VERSION = 1
BEFORE, UNLEARNED, UT = "BEFORE", "unlearned", "UT"
L1_METRIC = "mean absolute error per image (RGB, range [0,1]), averaged over images"
# AIN below this reads as "the knowledge comes back clearly faster than for UT".
AIN_HIDDEN_BELOW = 0.5

Pair = tuple[torch.Tensor, torch.Tensor]


# ------------------------------------------------------------------------------ helpers


def _pairs(data: Any, what: str) -> list[Pair]:
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


def _single_images(pairs: list[Pair]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Split batched pairs into (1,C,H,W) images: the unit every per-image figure averages."""
    xs, ys = [], []
    for x, y in pairs:
        xs += list(x.split(1))
        ys += list(y.split(1))
    return xs, ys


def _l1_per_image(preds: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> list[float]:
    return [
        float((p.float() - t.float()).abs().mean()) for p, t in zip(preds, targets, strict=True)
    ]


def _device_of(model: nn.Module) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else float("nan")


def pairs_from_dataset(dataset: Any, indices: Sequence[int]) -> list[Pair]:
    """(degraded, clean) pairs of items ``indices`` of a dataset whose items are dicts with
    ``degraded`` and ``clean`` (3,P,P) tensors, such as
    :class:`~forgetir.data.pipeline.TaskPatchDataset`.

    Example:
        >>> data = [{"degraded": torch.zeros(3, 8, 8), "clean": torch.ones(3, 8, 8)}]
        >>> pairs_from_dataset(data, [0])[0][0].shape
        torch.Size([1, 3, 8, 8])
    """
    out = []
    for i in indices:
        item = dataset[i]
        out.append((item["degraded"].unsqueeze(0), item["clean"].unsqueeze(0)))
    return out


# ------------------------------------------------------------------------------ quality


def quality_table(
    models: Mapping[str, nn.Module],
    test_sets: Mapping[str, Any],
    protocol: str = "promptir",
    include_input: bool = True,
    device: str | torch.device | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """``{label: {task: {"psnr", "ssim", "n"}}}``; the degraded-input row first by default.

    Example:
        >>> from forgetir.data.testsets import build_test_sets
        >>> sets = build_test_sets("deadleaves", tasks=("dehaze",), n=2, size=32)
        >>> list(quality_table({"BEFORE": torch.nn.Identity()}, sets))
        ['input', 'BEFORE']
    """
    rows: dict[str, dict[str, dict[str, Any]]] = {}
    if include_input:
        rows[INPUT_ROW] = evaluate_degraded_input(test_sets, protocol)
    for label, model in models.items():
        rows[label] = evaluate_model(model, test_sets, protocol, device)
    return rows


def _role(task: str, forget: Sequence[str], retain: Sequence[str]) -> str:
    if task in forget:
        return "forget"
    if task in retain:
        return "retain"
    return "other"


def _diff(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None, key: str) -> float | None:
    if not a or not b or a.get(key) is None or b.get(key) is None:
        return None
    return _finite(float(a[key]) - float(b[key]))


def gaps(
    unlearned: Mapping[str, Mapping[str, Any]],
    before: Mapping[str, Mapping[str, Any]],
    ut: Mapping[str, Mapping[str, Any]] | None = None,
    forget_tasks: Sequence[str] = (),
    retain_tasks: Sequence[str] = (),
) -> dict[str, dict[str, Any]]:
    """Per task: the unlearned model's PSNR (dB) and SSIM minus UT's and minus BEFORE's.

    Each argument is one row of :func:`quality_table` (``{task: {"psnr", "ssim"}}``). On a
    forget task the ideal gap to UT is 0 (negative: worse than UT, which the seed paper calls
    "more forgetting" but is just a different model); on a retain task the ideal gap to BEFORE
    is 0. Without UT its gaps are ``None``.

    Example:
        >>> u = {"dehaze": {"psnr": 12.0, "ssim": 0.5}}
        >>> b = {"dehaze": {"psnr": 28.0, "ssim": 0.9}}
        >>> g = gaps(u, b, {"dehaze": {"psnr": 17.0, "ssim": 0.7}}, forget_tasks=["dehaze"])
        >>> g["dehaze"]["role"], g["dehaze"]["psnr_gap_to_ut"], g["dehaze"]["psnr_gap_to_before"]
        ('forget', -5.0, -16.0)
    """
    out: dict[str, dict[str, Any]] = {}
    for task, m in unlearned.items():
        b = before.get(task)
        u = ut.get(task) if ut is not None else None
        out[task] = {
            "role": _role(task, forget_tasks, retain_tasks),
            "psnr": _finite(float(m["psnr"])),
            "ssim": float(m["ssim"]),
            "psnr_gap_to_ut": _diff(m, u, "psnr"),
            "ssim_gap_to_ut": _diff(m, u, "ssim"),
            "psnr_gap_to_before": _diff(m, b, "psnr"),
            "ssim_gap_to_before": _diff(m, b, "ssim"),
        }
    return out


@torch.no_grad()
def output_gap(
    model: nn.Module,
    ut_model: nn.Module,
    test_set: Any,
    device: str | torch.device | None = None,
) -> float:
    """Mean per-image L1 between ``model``'s and ``ut_model``'s outputs on ``test_set``
    (forget-test): 0 means the unlearned model behaves exactly as the retrained one.

    Example:
        >>> pairs = [(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))]
        >>> output_gap(torch.nn.Identity(), torch.nn.Identity(), pairs)
        0.0
    """
    xs, _ = _single_images(_pairs(test_set, "output_gap test_set"))
    a = restore(model, xs, device)
    b = restore(ut_model, xs, device)
    return _mean(_l1_per_image(a, b))


# ------------------------------------------------------------------------------ relearning


def _measure(
    model: nn.Module, xs: list[torch.Tensor], ys: list[torch.Tensor], protocol: str
) -> tuple[float, float]:
    # Clip as the promptir protocol does, so L1 and PSNR describe the same images. PSNR only:
    # SSIM at every step would cost more than the fine-tuning itself.
    preds = [p.clamp(0, 1) for p in restore(model, xs)]
    psnrs = [float(psnr(p, y.to(p.dtype), protocol)[0]) for p, y in zip(preds, ys, strict=True)]
    return _mean(psnrs), _mean(_l1_per_image(preds, ys))


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
) -> dict[str, Any]:
    """Fine-tune a deep copy of ``model`` on ``forget_samples`` for ``steps`` Adam steps and
    measure the forget PSNR/L1 on ``eval_set`` (default: the samples themselves).

    This is the relearning attack: ``model`` itself is never modified. Each step is one full
    batch over every sample (the official L1 loss; Adam betas (0.9, 0.999)), so the result is
    deterministic and does not depend on sample order. Every parameter is trained, frozen or
    not. ``stop_l1`` ends the run at the first evaluation whose forget L1 is at or below it.

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
    train_pairs = _pairs(forget_samples, "relearn forget_samples")
    eval_pairs = train_pairs if eval_set is None else _pairs(eval_set, "relearn eval_set")
    xs, ys = _single_images(eval_pairs)

    net = copy.deepcopy(model)
    for p in net.parameters():
        p.requires_grad_(True)
    dev = _device_of(net)
    train_pairs = [(x.to(dev), y.to(dev)) for x, y in train_pairs]
    n_images = sum(x.shape[0] for x, _ in train_pairs)
    optim = torch.optim.Adam(net.parameters(), lr=lr, betas=(0.9, 0.999))

    psnr0, l10 = _measure(net, xs, ys, protocol)
    curve: list[tuple[int, float, float]] = [(0, psnr0, l10)]
    reached = 0 if stop_l1 is not None and l10 <= stop_l1 else None
    step = 0
    while step < int(steps) and reached is None:
        net.train()
        optim.zero_grad(set_to_none=True)
        # Weighted by images so batched and single-image samples count alike.
        loss = sum(F.l1_loss(net(x), y) * x.shape[0] for x, y in train_pairs) / n_images
        loss.backward()
        optim.step()
        step += 1
        if step % int(eval_every) == 0 or step == int(steps):
            p, l1 = _measure(net, xs, ys, protocol)
            curve.append((step, p, l1))
            if stop_l1 is not None and l1 <= stop_l1:
                reached = step
    psnrs = [c[1] for c in curve]
    return {
        "steps": int(steps),
        "steps_run": step,
        "lr": float(lr),
        "optimizer": "Adam(0.9, 0.999), full batch, L1 loss",
        "eval_every": int(eval_every),
        "train_images": n_images,
        "eval_images": len(xs),
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
        "stop_l1": stop_l1,
        "reached_step": reached,
    }


def _forget_l1(model: nn.Module, eval_pairs: list[Pair]) -> float:
    xs, ys = _single_images(eval_pairs)
    preds = [p.clamp(0, 1) for p in restore(model, xs)]
    return _mean(_l1_per_image(preds, ys))


def _ain(s_u: int | None, s_ut: int | None, max_steps: int) -> tuple[float | None, str, str]:
    """(value, kind, note): kind is exact, lower_bound, upper_bound or undefined."""
    if s_u is not None and s_ut is not None:
        if s_ut == 0:
            return (
                None,
                "undefined",
                (
                    "UT is already within the tolerance of BEFORE on the forget set without any "
                    "fine-tuning: there is nothing to relearn, so AIN is undefined"
                ),
            )
        return s_u / s_ut, "exact", "both models reached BEFORE's forget L1"
    if s_u is None and s_ut is not None:
        if s_ut == 0:
            return None, "undefined", "UT needs no fine-tuning; the unlearned model did not reach"
        return (
            (max_steps + 1) / s_ut,
            "lower_bound",
            (
                f"the unlearned model did not reach BEFORE's forget L1 within {max_steps} steps: "
                "AIN is at least this value"
            ),
        )
    if s_u is not None and s_ut is None:
        return (
            s_u / (max_steps + 1),
            "upper_bound",
            (
                f"UT did not reach BEFORE's forget L1 within {max_steps} steps: AIN is at most "
                "this value"
            ),
        )
    return (
        None,
        "undefined",
        (f"neither model reached BEFORE's forget L1 within {max_steps} steps: raise max_steps"),
    )


def anamnesis_index(
    unlearned: nn.Module,
    ut: nn.Module,
    before: nn.Module,
    forget_train_samples: Any,
    forget_eval: Any,
    max_steps: int = 100,
    tol: float = 0.05,
    lr: float = 2e-4,
    *,
    protocol: str = "promptir",
    eval_every: int = 1,
) -> dict[str, Any]:
    """Anamnesis index AIN = steps(unlearned) / steps(UT) (design notes, section 8).

    Each count is the number of :func:`relearn` steps (same samples, lr and optimizer) until
    the forget L1 on ``forget_eval`` is within ``tol`` of BEFORE's, i.e. at most
    ``(1 + tol) * L1(BEFORE)``; counts are multiples of ``eval_every``. AIN ~ 1 is ideal;
    AIN << 1 means the knowledge was only hidden. A model that does not get there within
    ``max_steps`` is reported as not reached, and AIN becomes a bound: ``ain_kind`` says
    ``lower_bound`` (AIN >= value) or ``upper_bound`` (AIN <= value), or ``undefined``.
    None of the three models is modified.

    Example:
        >>> pairs = [(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))]
        >>> r = anamnesis_index(torch.nn.Conv2d(3, 3, 1), torch.nn.Conv2d(3, 3, 1),
        ...                     torch.nn.Identity(), pairs, pairs, max_steps=2)
        >>> r["ain_kind"] in ("exact", "lower_bound", "upper_bound", "undefined")
        True
    """
    if not tol >= 0:
        raise ValueError(f"anamnesis tol must be >= 0, got {tol}")
    if int(max_steps) < 1:
        raise ValueError(f"anamnesis max_steps must be >= 1, got {max_steps}")
    eval_pairs = _pairs(forget_eval, "anamnesis forget_eval")
    before_l1 = _forget_l1(before, eval_pairs)
    target = (1.0 + tol) * before_l1
    runs = {
        name: relearn(
            m,
            forget_train_samples,
            steps=max_steps,
            lr=lr,
            eval_set=eval_pairs,
            protocol=protocol,
            eval_every=eval_every,
            stop_l1=target,
        )
        for name, m in ((UNLEARNED, unlearned), (UT, ut))
    }
    s_u, s_ut = runs[UNLEARNED]["reached_step"], runs[UT]["reached_step"]
    value, kind, note = _ain(s_u, s_ut, int(max_steps))
    if value is None:
        verdict = "undetermined"
    elif s_u == 0:
        verdict = "the unlearned model already matches BEFORE on the forget set: nothing forgotten"
    elif value < AIN_HIDDEN_BELOW and kind in ("exact", "upper_bound"):
        verdict = (
            f"AIN < {AIN_HIDDEN_BELOW}: the forgotten skill comes back much faster than it is "
            "learnt by UT; it was hidden rather than removed"
        )
    elif kind == "upper_bound":
        verdict = "undetermined (upper bound only)"
    else:
        verdict = (
            f"AIN >= {AIN_HIDDEN_BELOW}: relearning takes at least half as many steps as for "
            "UT; no sign of hidden knowledge"
        )
    return {
        "ain": value,
        "ain_kind": kind,
        "note": note,
        "verdict": verdict,
        "steps_unlearned": s_u,
        "steps_ut": s_ut,
        "reached_unlearned": s_u is not None,
        "reached_ut": s_ut is not None,
        "max_steps": int(max_steps),
        "tol": float(tol),
        "before_l1": before_l1,
        "target_l1": target,
        "lr": float(lr),
        "eval_every": int(eval_every),
        "metric": f"optimizer steps until forget L1 ({L1_METRIC}) <= (1 + tol) x BEFORE's",
        "curves": {name: r["curve"] for name, r in runs.items()},
        "curve_columns": ["step", "psnr", "l1"],
        "protocol": protocol,
    }


# ------------------------------------------------------------------------------ membership


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score(pos) > score(neg)) + 0.5 P(tie): the Mann-Whitney form of ROC AUC."""
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def _fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, iters: int = 50) -> np.ndarray:
    """Newton's method for 1-feature logistic regression (weight, bias); the small L2 penalty
    keeps it finite when the classes separate perfectly."""
    w = np.zeros(2)
    design = np.stack([x, np.ones_like(x)], axis=1)
    reg = np.diag([l2, 0.0])
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ w, -50, 50)))
        grad = design.T @ (p - y) / len(y) + reg @ w
        hess = (design.T * (p * (1 - p))) @ design / len(y) + reg + 1e-9 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return w


def _per_image_losses(model: nn.Module, data: Any, what: str) -> list[float]:
    xs, ys = _single_images(_pairs(data, what))
    preds = [p.clamp(0, 1) for p in restore(model, xs)]
    return _l1_per_image(preds, ys)


def membership_inference(
    model: nn.Module,
    members: Any,
    nonmembers: Any,
    forgotten: Any,
    *,
    train_fraction: float = 0.5,
    seed: int = 0,
) -> dict[str, Any]:
    """Loss-based membership inference for instance forgetting.

    Per-image L1 losses of ``members`` (training images still retained), ``nonmembers``
    (held-out images never trained on) and ``forgotten`` (the deletion request). A logistic
    attack on the feature ``-log(loss)`` is fitted (numpy, Newton) on a balanced, seeded subset
    of members and non-members (``train_fraction`` of the smaller group from each) and scored
    on the rest, also balanced: ``attack_accuracy`` and ``attack_auc`` there. Then
    ``forgotten_member_rate`` is the fraction of forgotten images the attack calls "member":
    after good forgetting it is like the non-members' rate, as for UT.
    ``forgotten_vs_nonmembers_auc`` ~ 0.5 says the attack cannot tell them apart.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> mk = lambda n: [(torch.rand(1, 3, 8, 8, generator=g),) * 2 for _ in range(n)]
        >>> r = membership_inference(torch.nn.Identity(), mk(4), mk(4), mk(2))
        >>> r["member_loss_mean"]
        0.0
    """
    if not 0 < train_fraction < 1:
        raise ValueError(f"membership train_fraction must be in (0, 1), got {train_fraction}")
    loss_m = np.array(_per_image_losses(model, members, "membership members"))
    loss_n = np.array(_per_image_losses(model, nonmembers, "membership nonmembers"))
    loss_f = np.array(_per_image_losses(model, forgotten, "membership forgotten"))
    k = min(len(loss_m), len(loss_n))
    n_fit = int(round(k * train_fraction))
    if n_fit < 1 or k - n_fit < 1:
        raise ValueError(
            f"membership inference needs at least 2 members and 2 non-members to fit and test "
            f"an attack; got {len(loss_m)} members and {len(loss_n)} non-members"
        )
    rng = np.random.default_rng(seed)
    pm, pn = rng.permutation(len(loss_m)), rng.permutation(len(loss_n))

    def feature(losses: np.ndarray) -> np.ndarray:
        return -np.log(losses + 1e-12)  # members: low loss -> high score

    fit_x = np.concatenate([feature(loss_m[pm[:n_fit]]), feature(loss_n[pn[:n_fit]])])
    fit_y = np.concatenate([np.ones(n_fit), np.zeros(n_fit)])
    mu, sd = fit_x.mean(), fit_x.std() + 1e-12
    w = _fit_logistic((fit_x - mu) / sd, fit_y)

    def score(losses: np.ndarray) -> np.ndarray:
        return w[0] * (feature(losses) - mu) / sd + w[1]

    test_m, test_n = loss_m[pm[n_fit:k]], loss_n[pn[n_fit:k]]
    s_m, s_n, s_f = score(test_m), score(test_n), score(loss_f)
    fit_hits = (score(loss_m[pm[:n_fit]]) > 0).sum() + (score(loss_n[pn[:n_fit]]) <= 0).sum()
    return {
        "metric": f"per-image L1 loss ({L1_METRIC.split(',')[0]}); attack: logistic on -log(loss)",
        "n_members": len(loss_m),
        "n_nonmembers": len(loss_n),
        "n_forgotten": len(loss_f),
        "n_fit_per_class": n_fit,
        "n_test_per_class": k - n_fit,
        "seed": int(seed),
        "attack_fit_accuracy": float(fit_hits) / (2 * n_fit),
        "attack_accuracy": float(((s_m > 0).sum() + (s_n <= 0).sum()) / (2 * len(s_m))),
        "attack_auc": _auc(s_m, s_n),
        "forgotten_member_rate": float((s_f > 0).mean()) if len(s_f) else float("nan"),
        "nonmember_member_rate": float((s_n > 0).mean()),
        "member_member_rate": float((s_m > 0).mean()),
        "forgotten_vs_nonmembers_auc": _auc(s_f, s_n),
        "member_loss_mean": float(loss_m.mean()),
        "nonmember_loss_mean": float(loss_n.mean()),
        "forgotten_loss_mean": float(loss_f.mean()) if len(loss_f) else float("nan"),
        "losses": {
            "members": loss_m.tolist(),
            "nonmembers": loss_n.tolist(),
            "forgotten": loss_f.tolist(),
        },
    }


# ------------------------------------------------------------------------------ cost


def cost(
    unlearn_steps: int,
    unlearn_seconds: float,
    train_steps: int | None = None,
    train_seconds: float | None = None,
    unlearn_batch: int | None = None,
    train_batch: int | None = None,
) -> dict[str, Any]:
    """Unlearning cost as fractions of training from scratch (``None`` where unknown).

    ``sample_fraction`` (steps x batch) is given when both batch sizes are: the paper's
    "5% of training" compares epochs, not steps.

    Example:
        >>> cost(100, 5.0, 2000, 200.0)["step_fraction"]
        0.05
    """

    def frac(a: float | None, b: float | None) -> float | None:
        return float(a) / float(b) if a is not None and b else None

    out: dict[str, Any] = {
        "metric": "unlearning / training from scratch: optimizer steps, wall seconds, samples",
        "unlearn_steps": int(unlearn_steps),
        "unlearn_seconds": float(unlearn_seconds),
        "train_steps": None if train_steps is None else int(train_steps),
        "train_seconds": None if train_seconds is None else float(train_seconds),
        "step_fraction": frac(unlearn_steps, train_steps),
        "time_fraction": frac(unlearn_seconds, train_seconds),
        "sample_fraction": None,
    }
    if unlearn_batch and train_batch and train_steps:
        out["sample_fraction"] = (unlearn_steps * unlearn_batch) / (train_steps * train_batch)
    return out


# ------------------------------------------------------------------------------ orchestration


def _concat_test_pairs(test_sets: Mapping[str, Any], tasks: Sequence[str]) -> list[Pair]:
    pairs: list[Pair] = []
    for t in tasks:
        pairs += _pairs(test_sets[t], f"test set {t!r}")
    return pairs


def verify_run(
    unlearned: nn.Module,
    before: nn.Module,
    ut: nn.Module | None,
    forget_tasks: Sequence[str],
    retain_tasks: Sequence[str],
    test_sets: Mapping[str, Any],
    protocol: str = "promptir",
    relearn_samples: Any = None,
    *,
    relearn_steps: int = 20,
    relearn_lr: float = 2e-4,
    ain_max_steps: int = 100,
    ain_tol: float = 0.05,
    eval_every: int = 1,
    membership: Mapping[str, Any] | None = None,
    cost_info: Mapping[str, Any] | None = None,
    relearn_description: str | None = None,
    membership_description: str | None = None,
    seed: int = 0,
    rows: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Every verification figure for one unlearned model, as a JSON-serialisable dict.

    ``rows``: the quality table of these models on ``test_sets`` if the caller already has it
    (labels ``BEFORE``, ``unlearned``, ``UT``), so that it is not computed twice.

    ``forget_tasks``/``retain_tasks`` name the test sets that are forget-test/retain-test (for
    class or instance forgetting pass the tasks that hold the forget-test images).
    ``relearn_samples``: a few forget-train pairs for :func:`relearn` and
    :func:`anamnesis_index` (skipped when None; AIN also needs ``ut`` and
    ``ain_max_steps > 0``). ``membership``: ``{"members", "nonmembers", "forgotten"}`` pairs
    for :func:`membership_inference`, run on the unlearned model and on UT side by side (and
    on BEFORE, which shows what the attack sees when nothing was forgotten).
    ``cost_info``: keyword arguments of :func:`cost`.

    Example:
        >>> from forgetir.data.testsets import build_test_sets
        >>> sets = build_test_sets("deadleaves", tasks=("dehaze", "denoise_25"), n=2, size=32)
        >>> ident = torch.nn.Identity()
        >>> r = verify_run(ident, ident, ident, ["dehaze"], ["denoise_25"], sets)
        >>> r["output_gap"]["value"], r["gaps"]["tasks"]["dehaze"]["role"]
        (0.0, 'forget')
    """
    missing = [t for t in [*forget_tasks, *retain_tasks] if t not in test_sets]
    if missing:
        raise ValueError(
            f"verify_run: no test set for task(s) {', '.join(missing)}; test sets: "
            f"{', '.join(test_sets)}"
        )
    if not forget_tasks:
        raise ValueError("verify_run: forget_tasks is empty: name the forget-test task(s)")
    source = describe_test_sets(test_sets)
    models = {BEFORE: before, UNLEARNED: unlearned}
    if ut is not None:
        models[UT] = ut
    rows = dict(rows) if rows is not None else quality_table(models, test_sets, protocol)
    forget_pairs = _concat_test_pairs(test_sets, forget_tasks)
    forget_data = f"forget-test: {', '.join(forget_tasks)} of {source}"
    result: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "protocol": protocol,
        "protocol_description": describe_protocol(protocol),
        "test_set": source,
        "forget_tasks": list(forget_tasks),
        "retain_tasks": list(retain_tasks),
        "reference": "UT (retrained without the forget data)" if ut is not None else None,
        "quality": {
            "metric": "PSNR (dB) / SSIM, averaged per image",
            "protocol": protocol,
            "data": source,
            "rows": rows,
        },
        "gaps": {
            "metric": "unlearned minus reference: PSNR (dB) and SSIM",
            "protocol": protocol,
            "data": source,
            "tasks": gaps(rows[UNLEARNED], rows[BEFORE], rows.get(UT), forget_tasks, retain_tasks),
        },
        "output_gap": {
            "metric": "mean per-image L1 between unlearned and UT outputs",
            "data": forget_data,
            "value": output_gap(unlearned, ut, forget_pairs) if ut is not None else None,
            "before_value": output_gap(before, ut, forget_pairs) if ut is not None else None,
        },
        "relearn": None,
        "anamnesis": None,
        "membership": None,
        "cost": dict(cost(**cost_info)) if cost_info else None,
    }
    if relearn_samples is not None:
        n = len(_single_images(_pairs(relearn_samples, "relearn_samples"))[0])
        train_data = relearn_description or f"{n} forget-train samples"
        runs = {
            UNLEARNED: relearn(
                unlearned,
                relearn_samples,
                relearn_steps,
                relearn_lr,
                forget_pairs,
                protocol=protocol,
                eval_every=eval_every,
            )
        }
        if ut is not None:
            runs[UT] = relearn(
                ut,
                relearn_samples,
                relearn_steps,
                relearn_lr,
                forget_pairs,
                protocol=protocol,
                eval_every=eval_every,
            )
        before_psnr = _mean([float(rows[BEFORE][t]["psnr"]) for t in forget_tasks])
        for r in runs.values():
            lost = before_psnr - r["start_psnr"]
            r["recovered_fraction_of_before_gap"] = r["recovered_db"] / lost if lost > 0 else None
        result["relearn"] = {
            "train_data": train_data,
            "eval_data": forget_data,
            "before_forget_psnr": before_psnr,
            "runs": runs,
        }
        if ut is not None and ain_max_steps > 0:
            ain = anamnesis_index(
                unlearned,
                ut,
                before,
                relearn_samples,
                forget_pairs,
                ain_max_steps,
                ain_tol,
                relearn_lr,
                protocol=protocol,
                eval_every=eval_every,
            )
            ain.update(train_data=train_data, eval_data=forget_data)
            result["anamnesis"] = ain
    if membership is not None:
        need = ("members", "nonmembers", "forgotten")
        lacking = [k for k in need if k not in membership]
        if lacking:
            raise ValueError(
                f"verify_run membership lacks {', '.join(lacking)}; give {', '.join(need)}"
            )
        attack = {
            label: membership_inference(
                m,
                membership["members"],
                membership["nonmembers"],
                membership["forgotten"],
                seed=seed,
            )
            for label, m in models.items()
        }
        result["membership"] = {
            "data": membership_description
            or "members: retained training images; "
            "non-members: held-out images; forgotten: the deletion request",
            "models": attack,
        }
    return _json_safe(result)


def key_figures(verify: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every figure of a :func:`verify_run` result as ``{figure, value, metric, data}``.

    The flat list is the audit manifest's summary (each figure with its metric and data).

    Example:
        >>> figs = key_figures({"cost": cost(10, 1.0, 100, 50.0)})
        >>> {f["figure"]: f["value"] for f in figs}["cost step_fraction"]
        0.1
    """
    out: list[dict[str, Any]] = []
    proto = f"{verify.get('protocol', 'promptir')} protocol (see the quality caption)"
    source = verify.get("test_set")

    def add(figure: str, value: Any, metric: Any, data: Any) -> None:
        out.append({"figure": figure, "value": value, "metric": metric, "data": data})

    gaps = (verify.get("gaps") or {}).get("tasks") or {}
    for task, g in gaps.items():
        for key in ("psnr", "psnr_gap_to_ut", "psnr_gap_to_before", "ssim_gap_to_ut"):
            unit = "dB" if key.startswith("psnr") else "SSIM"
            add(
                f"{task} ({g.get('role')}): unlearned {key}", g.get(key), f"{unit}, {proto}", source
            )
    og = verify.get("output_gap") or {}
    add("output gap (unlearned vs UT)", og.get("value"), og.get("metric"), og.get("data"))
    rel = verify.get("relearn") or {}
    for label, r in (rel.get("runs") or {}).items():
        m = f"{r.get('metric')}; {r.get('steps')} steps, lr {r.get('lr')}"
        add(f"relearn {label}: recovered dB", r.get("recovered_db"), m, rel.get("train_data"))
        add(f"relearn {label}: final forget PSNR", r.get("final_psnr"), m, rel.get("eval_data"))
    ain = verify.get("anamnesis") or {}
    if ain:
        add(f"AIN ({ain.get('ain_kind')})", ain.get("ain"), ain.get("metric"), ain.get("eval_data"))
        data = f"{ain.get('train_data')} -> {ain.get('eval_data')}; tol {ain.get('tol')}"
        for label in ("unlearned", "ut"):
            steps = ain.get(f"steps_{label}")
            if steps is None:
                steps = f"not reached within {ain.get('max_steps')}"
            add(f"AIN steps {label.replace('ut', 'UT')}", steps, ain.get("metric"), data)
    mia = verify.get("membership") or {}
    for label, r in (mia.get("models") or {}).items():
        for key in ("attack_auc", "attack_accuracy", "forgotten_member_rate"):
            add(f"MIA {label}: {key}", r.get(key), r.get("metric"), mia.get("data"))
    c = verify.get("cost") or {}
    for key in ("step_fraction", "time_fraction", "sample_fraction"):
        if key in c:
            add(f"cost {key}", c.get(key), "unlearning / training from scratch", None)
    return out


def _f(x: Any, fmt: str = "{:.2f}") -> str:
    return "–" if x is None or isinstance(x, str) else fmt.format(x)


def summarize(result: Mapping[str, Any]) -> str:
    """A :func:`verify_run` result as a few lines of text, each naming its metric and data.

    Example:
        >>> summarize({"cost": cost(10, 1.0, 100, 50.0)})[-38:]
        'optimizer steps, 2.0% of the wall time'
    """
    lines = []
    if result.get("gaps"):
        g = result["gaps"]
        lines.append(f"quality: PSNR (dB), {g['protocol']} protocol, on {g['data']}")
        for task, r in g["tasks"].items():
            lines.append(
                f"  {r['role']:<7} {task:<11} unlearned {_f(r['psnr'])}: "
                f"{_f(r['psnr_gap_to_ut'], '{:+.2f}')} vs UT, "
                f"{_f(r['psnr_gap_to_before'], '{:+.2f}')} vs BEFORE"
            )
    og = result.get("output_gap") or {}
    if og.get("value") is not None:
        lines.append(
            f"output gap to UT (mean per-image L1, {og['data']}): {_f(og['value'], '{:.4f}')} "
            f"(BEFORE's: {_f(og.get('before_value'), '{:.4f}')})"
        )
    rel = result.get("relearn") or {}
    if rel:
        runs = rel["runs"]
        got = ", ".join(
            f"{k} {_f(r['start_psnr'])} -> {_f(r['final_psnr'])} dB" for k, r in runs.items()
        )
        steps = next(iter(runs.values()))["steps"]
        lines.append(f"relearning ({steps} steps on {rel['train_data']}): {got}")
    ain = result.get("anamnesis") or {}
    if ain:
        bound = {"lower_bound": ">= ", "upper_bound": "<= "}.get(ain.get("ain_kind"), "")
        lines.append(f"anamnesis index AIN: {bound}{_f(ain.get('ain'))} ({ain.get('verdict')})")
    mia = result.get("membership") or {}
    for label, r in (mia.get("models") or {}).items():
        lines.append(
            f"membership attack on {label}: {r['forgotten_member_rate']:.0%} of the forgotten "
            f"images called members ({r['nonmember_member_rate']:.0%} of non-members; attack "
            f"AUC {r['attack_auc']:.2f})"
        )
    c = result.get("cost") or {}
    if c:
        lines.append(
            f"cost (unlearning / training from scratch): "
            f"{_f(c.get('step_fraction'), '{:.1%}')} of the optimizer steps, "
            f"{_f(c.get('time_fraction'), '{:.1%}')} of the wall time"
        )
    return "\n".join(lines)


def _json_safe(value: Any) -> Any:
    """Plain JSON: tuples become lists, inf/nan become the strings "inf"/"nan"."""
    if isinstance(value, float | np.floating):
        v = float(value)
        return v if math.isfinite(v) else str(v)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def write_verification(path: str | Path, result: Mapping[str, Any]) -> Path:
    """Write a :func:`verify_run` result as JSON, atomically; return the path.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     write_verification(f"{d}/verify.json", {"ain": float("inf")}).read_text()[:18]
        '{\\n  "ain": "inf"\\n}'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_json(path, _json_safe(result), allow_nan=False)
