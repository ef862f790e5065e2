"""Unlearn any restoration model from Python: ``forgetir.unlearn_model(model, forget=...)``.

``model`` is any ``torch.nn.Module`` that maps a degraded (B, 3, H, W) batch in [0, 1] to the
restored batch: one of forgetir's models, a published checkpoint loaded with
:func:`forgetir.load_model`, or your own network. The run is the one ``forgetir unlearn``
makes (same methods, guards, evaluation, verification and run folder); the report is written
into the run folder too.

Your network's weights are saved as the run's BEFORE checkpoint (``before.safetensors``) with a
record of how to rebuild it: ``factory="my_net.py:build"``, or, by default, the model's class
when it is defined in a ``.py`` file and needs no constructor arguments. ``verify``/``report``
rebuild it from that file and refuse if the file has changed. ``encoder="encoder"`` names the
sub-module that ``encoder-noise`` treats as the encoder (image -> features).

Example:
    >>> import tempfile, torch
    >>> from forgetir.models import create_model
    >>> net = create_model("promptir-tiny", dim=8)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     result = unlearn_model(net, "dehaze", method="finetune", out=f"{d}/run", steps=1,
    ...                      batch_size=2, patch_size=16, verify=False, report=False,
    ...                      data={"pool_size": 4, "image_size": 32},
    ...                      options={"grids": False, "test_max_side": 32})
    >>> result.run["forget_tasks"], type(result.model).__name__
    (['dehaze'], 'PromptIR')
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import safetensors.torch
from torch import nn

from forgetir.errors import InvalidInputError
from forgetir.models.external import register_instance, set_condition, set_encoder


@dataclass
class UnlearnResult:
    """What :func:`unlearn` produced: the run folder, its ``run.json``, the unlearned model
    (a copy of yours with the new weights) and the report files (None without a report)."""

    run_dir: Path
    run: dict[str, Any]
    model: nn.Module
    report: dict[str, Path] | None


def unlearn_model(
    model: nn.Module,
    forget: str | list[str] | None = None,
    *,
    split: str | Path | None = None,
    method: str = "accurate-forgetting",
    ut: nn.Module | str | Path | None = None,
    out: str | Path | None = None,
    target: str = "collapse",
    factory: str | None = None,
    encoder: str | None = None,
    condition: dict[str, Any] | None = None,
    steps: int = 60,
    batch_size: int = 8,
    patch_size: int = 64,
    hparams: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    verify: bool = True,
    report: bool = True,
    quiet: bool = True,
    options: dict[str, Any] | None = None,
) -> UnlearnResult:
    """Make ``model`` forget the degradation type(s) ``forget`` (or a ``split`` manifest from
    ``forgetir split``) with ``method``; evaluate, verify against ``ut`` (a model retrained
    without the forget data: a module or a checkpoint; optional) and write the report.

    ``model`` is not modified. ``factory`` (``"FILE.py:FACTORY"``) says how to rebuild your
    network; ``encoder`` names its encoder sub-module for ``encoder-noise``; ``condition``
    (``{"prompt": "restore"}``) feeds a model that takes the task as an input the same value
    for every image and model, UT included (see :func:`~forgetir.models.external.set_condition`);
    ``hparams`` are
    the method's hyperparameters; ``data`` changes the data settings the model is said to
    have been trained on (``{"pool_size": 64}``, see :func:`prepare_checkpoint`); ``options``
    sets any other field of :class:`forgetir.unlearn.UnlearnOptions` (``lr``, ``seed``, ...).
    """
    # Function-level: `import forgetir` re-exports this module and must stay light; the run
    # commands (torch data pipeline, methods, verification, report) load on first use.
    from forgetir.unlearn import UnlearnOptions, run_unlearn

    if not isinstance(model, nn.Module):
        raise InvalidInputError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    valid = {f.name for f in fields(UnlearnOptions)}
    unknown = sorted(set(options or {}) - valid)
    if unknown:
        raise InvalidInputError(f"unknown option(s) {unknown}; valid: {', '.join(sorted(valid))}")
    tasks = [forget] if isinstance(forget, str) else list(forget) if forget else None
    run_dir = Path(out or f"runs/unlearn-{method}-{'-'.join(tasks or ['split'])}")
    own, ut = _own_copies(model, ut, factory, encoder, condition)
    opts = UnlearnOptions(
        method=method,
        target=target,
        hparams=dict(hparams or {}),
        steps=steps,
        batch_size=batch_size,
        patch_size=patch_size,
        verify=verify,
        quiet=quiet,
        **(options or {}),
    )
    # run_unlearn saves the live module into the run (with the data it is said to know).
    run = run_unlearn(
        own, run_dir, opts, forget=tasks, split=split, ut=ut, command="forgetir.unlearn", data=data
    )
    state = safetensors.torch.load_file(str(run_dir / "model.safetensors"))
    own.load_state_dict(state)
    paths = None
    if report:
        from forgetir.report.write import write_report  # function-level: see above

        paths = write_report(run_dir)
    return UnlearnResult(run_dir, run, own.eval(), paths)


def _own_copies(
    model: nn.Module,
    ut: nn.Module | str | Path | None,
    factory: str | None,
    encoder: str | None,
    condition: dict[str, Any] | None,
) -> tuple[nn.Module, nn.Module | str | Path | None]:
    """A copy of ``model`` (never the caller's module) with its encoder, condition and factory
    set, and ``ut`` (a copy with the same condition, when it is a module)."""
    own = copy.deepcopy(model).eval()  # never touch the caller's module
    if encoder is not None:
        set_encoder(own, encoder)
    if condition is not None:
        if len(condition) != 1:
            raise InvalidInputError(f"condition takes one argument=value, got {condition!r}")
        [(argument, value)] = condition.items()
        set_condition(own, argument, value)
        if isinstance(ut, nn.Module):  # every row is fed the same way
            ut = copy.deepcopy(ut)
            set_condition(ut, argument, value)
    register_instance(own, factory)
    return own, ut
