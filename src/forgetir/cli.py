"""The ``forgetir`` command line.

Each sub-command's work lives in the module that owns the concern; this file only parses
arguments and dispatches, importing lazily so that ``forgetir --help`` stays fast.

Example:
    $ forgetir models
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator

from forgetir.arguments import add_model_module, take_spill
from forgetir.errors import ForgetirError
from forgetir.progress import quiet_scope

# name -> (module, add-arguments function, command function, help line)
_COMMANDS: dict[str, tuple[str, str, str, str]] = {
    "demo": (
        "forgetir.demo",
        "add_demo_arguments",
        "demo_command",
        "the main job: forget dehaze from the shipped tiny model, verify, write the report",
    ),
    "models": ("forgetir.cli", "_add_nothing", "_models", "list the registered architectures"),
    "degradations": (
        "forgetir.cli",
        "_add_nothing",
        "_degradations",
        "list the degradation families and task names",
    ),
    "split": (
        "forgetir.data.splits",
        "add_split_arguments",
        "split_command",
        "write a forget/retain/test split manifest (paths and SHA-256, no pixels)",
    ),
    "train": (
        "forgetir.train",
        "add_train_arguments",
        "train_command",
        "train (or retrain without some tasks: --exclude) a restoration model",
    ),
    "eval": (
        "forgetir.evaluate",
        "add_eval_arguments",
        "eval_command",
        "evaluate checkpoints on every task: PSNR/SSIM table in the seed paper's layout",
    ),
    "methods": ("forgetir.cli", "_add_nothing", "_methods", "list the unlearning methods"),
    "unlearn": (
        "forgetir.unlearn",
        "add_unlearn_arguments",
        "unlearn_command",
        "make a checkpoint forget a degradation type, a content class or a list of images",
    ),
    "reproduce": (
        "forgetir.reproduce",
        "add_reproduce_arguments",
        "reproduce_command",
        "the seed paper's experiment grid on the embedded default (--scale cpu) or real data",
    ),
    "verify": (
        "forgetir.verify",
        "add_verify_arguments",
        "verify_command",
        "(re)compute the proof of forgetting of a run: gaps to UT, relearning, AIN, MIA, cost",
    ),
    "report": (
        "forgetir.report",
        "add_report_arguments",
        "report_command",
        "write the HTML/Markdown/JSON report (with audit manifest) of an unlearning run",
    ),
}


# Commands that run models: their torch thread count is set before they start (see
# forgetir.threads: default = the cores free now).
_MODEL_COMMANDS = ("demo", "train", "eval", "unlearn", "reproduce", "verify")

# Commands that load checkpoints saved from the user's own model code: they take
# --model-module, the only way such code runs (a checkpoint's sidecar never imports it).
_MODULE_COMMANDS = ("eval", "verify")

# Names of the positional KEY=VALUE lists of sub-commands (train: config, unlearn: method).
_OVERRIDE_DESTS = ("overrides", "hparams")


def _add_nothing(parser: argparse.ArgumentParser) -> None:
    return None


def _models(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from forgetir.models import create_model, get_entry, list_models

    table = Table(title="forgetir models")
    for col in ("name", "parameters", "what it is"):
        table.add_column(col)
    for name in list_models():
        n = sum(p.numel() for p in create_model(name).parameters())
        table.add_row(name, f"{n:,}", get_entry(name).description)
    Console().print(table)
    return 0


def _degradations(args: argparse.Namespace) -> int:
    from forgetir import degradations as d

    print("families:", ", ".join(d.list_degradations()))
    for task in d.list_tasks():
        family, params = d.task_family(task)
        print(f"  {task:<12} {family} {params}")
    return 0


def _methods(args: argparse.Namespace) -> int:
    from forgetir.methods import get_method, list_methods

    names = list_methods()
    width = max(map(len, names), default=0) + 2  # a long name keeps the columns aligned
    for name in names:
        print(f"{name:<{width}}{get_method(name).summary}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="forgetir",
        description="Make an image restoration model forget part of its training data, "
        "and prove it.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, add_fn, _, help_line) in _COMMANDS.items():
        p = sub.add_parser(name, help=help_line, description=help_line)
        getattr(importlib.import_module(module), add_fn)(p)
        if name in _MODULE_COMMANDS:
            add_model_module(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # KEY=VALUE tokens a list option (--forget a b) set aside join the stray ones.
    extra = [*take_spill(args), *extra]
    # argparse cannot take positionals on both sides of an option under sub-commands: collect
    # any stray key=value tokens into the command's override list.
    target = next((k for k in _OVERRIDE_DESTS if hasattr(args, k)), None)
    stray = [t for t in extra if "=" not in t or t.startswith("-")]
    if stray or (extra and target is None):
        parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
    if extra:
        setattr(args, target, [*(getattr(args, target) or []), *extra])
    if args.command is None:
        parser.print_help()
        return 2
    module, _, fn, _ = _COMMANDS[args.command]
    command: Callable[[argparse.Namespace], int | None] = getattr(
        importlib.import_module(module), fn
    )
    try:
        with _terminate_as_interrupt():
            return _run(args, command)
    except (KeyboardInterrupt, Terminated) as e:
        # Ctrl-C or SIGTERM: the command's own clean-up ran on the way out (a run's working
        # folder removed, an atomic write undone); one line, the shell's exit code, no traceback.
        what = "terminated (SIGTERM)" if isinstance(e, Terminated) else "interrupted (Ctrl-C)"
        print(f"forgetir {args.command}: {what}", file=sys.stderr)
        return 143 if isinstance(e, Terminated) else 130


class Terminated(BaseException):
    """SIGTERM, raised where the program is so that clean-up (``finally``) runs as on Ctrl-C."""


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` while a command runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace, command: Callable[[argparse.Namespace], int | None]) -> int:
    """Run ``command``; a :class:`ForgetirError` becomes one line and exit code 2."""
    try:
        if args.command in _MODEL_COMMANDS:
            from forgetir.memory import retain_freed_memory
            from forgetir.threads import apply_threads

            apply_threads(getattr(args, "threads", None))
            # Reuse freed activation memory instead of page-faulting ~1 GB per training step.
            retain_freed_memory()
        if args.command in _MODULE_COMMANDS:
            from forgetir.models.external import register_module_factory

            if args.model_module:
                register_module_factory(args.model_module)
        # --quiet silences every progress display of the command, library calls included.
        with quiet_scope(bool(getattr(args, "quiet", False))):
            return int(command(args) or 0)
    except ForgetirError as e:
        # forgetir's own errors (bad input, bad state) carry a message naming the bad file or
        # option and the valid choices: one line, exit code 2. Anything else is a bug and
        # keeps its traceback.
        message = " ".join(str(e).split("\n"))
        print(f"forgetir {args.command}: error: {message}", file=sys.stderr)
        return 2
    except OSError as e:
        # A full disk is the machine's state, not a bug: one line naming the file. Atomic
        # writes and a run's working folder were already undone on the way out.
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = f" writing {e.filename}" if e.filename else ""
        print(
            f"forgetir {args.command}: error: no space left on the device{where} "
            f"({e.strerror or e}); free some space or write elsewhere (--out)",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
