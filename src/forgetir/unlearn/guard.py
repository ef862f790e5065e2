"""The guards of an unlearning run: a retain budget and a forget floor, checked every
``guard_every`` steps on a small held-out dead-leaves set (never the test photos)."""

from __future__ import annotations

import copy
from typing import Any

from torch import nn

from forgetir.data.testsets import build_test_sets
from forgetir.options import UnlearnOptions
from forgetir.scoring.evaluate import evaluate_degraded_input, evaluate_model


def _guard_sets(tasks: list[str], seed: int) -> dict[str, Any]:
    # Held-out dead-leaves images (the test namespace): cheap, and not the reported test set.
    return build_test_sets("deadleaves", tasks, None, None, seed=seed + 99, n=6, size=64)


def _psnr_by_task(model: nn.Module, sets: dict[str, Any], protocol: str) -> dict[str, float]:
    res = evaluate_model(model, sets, protocol, next(model.parameters()).device)
    return {t: float(m["psnr"]) for t, m in res.items()}


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def needs_guard(opts: UnlearnOptions, forget_tasks: list[str]) -> bool:
    """A degradation split with a retain budget, a forget floor or the retrain-like target."""
    return bool(forget_tasks) and (
        opts.retain_budget is not None
        or opts.forget_floor is not None
        or opts.target == "retrain-like"
    )


class Guard:
    """Retain budget and forget floor, evaluated on a held-out guard set every few steps."""

    def __init__(
        self,
        model: nn.Module,
        before: nn.Module,
        method: Any,
        forget_tasks: list[str],
        retain_tasks: list[str],
        opts: UnlearnOptions,
    ) -> None:
        self.model, self.method, self.opts = model, method, opts
        self.forget_tasks, self.retain_tasks = forget_tasks, retain_tasks
        self.sets = _guard_sets(forget_tasks + retain_tasks, opts.seed)
        self.before = _psnr_by_task(before, self.sets, opts.protocol)
        inputs = evaluate_degraded_input(self.sets, opts.protocol)
        self.input_forget = _mean([inputs[t]["psnr"] for t in forget_tasks])
        self.good_state = copy.deepcopy(model.state_dict())
        self.good_step = 0
        self.reason: str | None = None
        self.history: list[dict[str, float]] = []

    def __call__(self, step: int, logs: dict[str, float]) -> bool:
        if step % self.opts.guard_every and step != self.opts.steps:
            return False
        was_training = self.model.training
        self.model.eval()
        psnr = _psnr_by_task(self.model, self.sets, self.opts.protocol)
        self.model.train(was_training)
        forget = _mean([psnr[t] for t in self.forget_tasks])
        drops = {t: self.before[t] - psnr[t] for t in self.retain_tasks}
        worst = max(drops.values(), default=0.0)
        self.history.append({"step": step, "forget_psnr": forget, "worst_retain_drop": worst})
        logs["guard/forget_psnr"], logs["guard/worst_retain_drop_db"] = forget, worst
        budget = self.opts.retain_budget
        if budget is not None and worst > budget:
            self.model.load_state_dict(self.good_state)
            self.reason = (
                f"retain budget: a retained task dropped {worst:.2f} dB > {budget} dB at step "
                f"{step}; rolled back to step {self.good_step}"
            )
            return True
        self.good_state, self.good_step = copy.deepcopy(self.model.state_dict()), step
        floor = self.opts.forget_floor
        if self.opts.target == "retrain-like" and floor is None:
            # Behaving like UT on a forgotten degradation means returning the input unchanged.
            floor = self.input_forget + 0.1
        if floor is not None and forget <= floor:
            self.reason = f"forget floor: forget PSNR {forget:.2f} dB <= {floor:.2f} dB at {step}"
            return True
        stop = self.method.should_stop({"forget_psnr": forget, **logs})
        if stop:
            self.reason = stop
            return True
        return False
