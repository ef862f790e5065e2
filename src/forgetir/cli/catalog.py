"""``forgetir models``, ``forgetir degradations`` and ``forgetir methods``: what is registered.

Example:
    $ forgetir methods
"""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from forgetir import degradations as d
from forgetir.methods import get_method, list_methods
from forgetir.models import create_model, get_entry, list_models

MODELS_HELP = "list the registered architectures"
DEGRADATIONS_HELP = "list the degradation families and task names"
METHODS_HELP = "list the unlearning methods"


def add_no_arguments(parser: argparse.ArgumentParser) -> None:
    """The listing commands take no arguments."""
    return None


def models(args: argparse.Namespace) -> int:
    """A table of the registered architectures, with their parameter counts."""
    table = Table(title="forgetir models")
    for col in ("name", "parameters", "what it is"):
        table.add_column(col)
    for name in list_models():
        n = sum(p.numel() for p in create_model(name).parameters())
        table.add_row(name, f"{n:,}", get_entry(name).description)
    Console().print(table)
    return 0


def degradations(args: argparse.Namespace) -> int:
    """The degradation families, then each task with its family and parameters."""
    print("families:", ", ".join(d.list_degradations()))
    for task in d.list_tasks():
        family, params = d.task_family(task)
        print(f"  {task:<12} {family} {params}")
    return 0


def methods(args: argparse.Namespace) -> int:
    """Each registered unlearning method with its one-line summary."""
    names = list_methods()
    width = max(map(len, names), default=0) + 2  # a long name keeps the columns aligned
    for name in names:
        print(f"{name:<{width}}{get_method(name).summary}")
    return 0
