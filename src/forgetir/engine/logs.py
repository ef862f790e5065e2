"""The engine's logs: ``log.csv``, TensorBoard, and the scalars a loss dict holds."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from forgetir.atomic import atomic_write

LOG_NAME = "log.csv"


def scalars(logs: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Scalar entries of a loss dict, detached (tensors stay on the device: no sync per step)."""
    out: dict[str, Any] = {}
    for key, value in logs.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(scalars(value, f"{name}/"))
        elif isinstance(value, torch.Tensor) and value.numel() == 1:
            out[name] = value.detach().float().reshape(())
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = float(value)
    return out


def flat_floats(logs: Mapping[str, Any]) -> dict[str, float]:
    """:func:`scalars` as Python floats (one device sync per value: for logged steps only)."""
    return {k: float(v) for k, v in scalars(logs).items()}


class CsvLog:
    """``log.csv``: one row per logged step; columns step, loss, lr, ..., time.

    A new column rewrites the file (atomically) with the wider header; otherwise rows are
    appended. On resume, rows past the checkpoint's step are dropped: they will be logged again.
    """

    HEAD = ("step", "loss", "lr")
    TAIL = ("time",)

    def __init__(self, path: Path, resume_step: int | None = None) -> None:
        self.path = path
        self.rows: list[dict[str, str]] = []
        self.middle: list[str] = []
        if resume_step is not None and path.is_file():
            with open(path, newline="") as f:
                reader = csv.DictReader(f)
                for row in reader:
                    if row.get("step", "").isdigit() and int(row["step"]) <= resume_step:
                        self.rows.append(row)
                self.middle = [c for c in reader.fieldnames or [] if c not in self.fields()]
        self._rewrite()

    def fields(self) -> list[str]:
        return [*self.HEAD, *self.middle, *self.TAIL]

    def _rewrite(self) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, self.fields(), restval="")
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write(self.path, buf.getvalue())

    def write(self, values: Mapping[str, float | int]) -> None:
        row = {k: (str(v) if isinstance(v, int) else f"{v:.6g}") for k, v in values.items()}
        new = [k for k in row if k not in self.fields()]
        self.rows.append(row)
        if new:
            self.middle.extend(new)
            self._rewrite()
            return
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.fields(), restval="").writerow(row)


def tb_tag(key: str) -> str:
    return key if "/" in key else f"train/{key}"


def tensorboard(folder: Path, rows: list[dict[str, str]]) -> Any:
    """A TensorBoard writer on ``folder`` holding one event file: a resumed run's earlier
    values are replayed from ``log.csv`` (``rows``, already cut at the resumed step) into it
    and the event files of earlier segments removed, so no step is ever recorded twice."""
    # Function-level: TensorBoard is an optional dependency, imported only when logging to it.
    from torch.utils.tensorboard import SummaryWriter

    for old in folder.glob("events.out.tfevents.*"):
        old.unlink()
    writer = SummaryWriter(str(folder))
    for row in rows:
        for key, value in row.items():
            if key not in ("step", "time") and value not in ("", None):
                writer.add_scalar(tb_tag(key), float(value), int(row["step"]))
    return writer


class RunLogs:
    """``log.csv`` and (optionally) TensorBoard of one ``fit`` call; inert when ``out`` is None
    (no output folder, or a rank other than 0)."""

    def __init__(self, out: Path | None, resume_step: int | None, use_tensorboard: bool) -> None:
        self.csv: CsvLog | None = None
        self.writer: Any = None
        if out is not None:
            self.csv = CsvLog(out / LOG_NAME, resume_step=resume_step)
            if use_tensorboard:
                self.writer = tensorboard(out / "tb", self.csv.rows)

    def write(self, step: int, row: Mapping[str, float], time: float, tb: bool = True) -> None:
        """One logged step: a ``log.csv`` row, and its scalars in TensorBoard when ``tb``."""
        if self.csv is not None:
            self.csv.write({"step": step, **row, "time": time})
        if tb and self.writer is not None:
            for k, v in row.items():
                self.writer.add_scalar(tb_tag(k), v, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
