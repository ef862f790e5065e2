"""The ``forgetir`` parser and dispatcher: each sub-command is a module of :mod:`forgetir.cli`
with ``HELP``, ``add_arguments(parser)`` and ``run(args)``; this file joins them, turns SIGTERM
into a clean exit and a :class:`~forgetir.errors.ForgetirError` into one line and exit code 2.

Example:
    $ forgetir models
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import signal
import sys
import threading
from collections.abc import Callable, Iterator

from forgetir.cli import demo, report, reproduce, split, train, unlearn, verify
from forgetir.cli import eval as eval_
from forgetir.cli.arguments import add_model_module, take_spill
from forgetir.cli.catalog import (
    DEGRADATIONS_HELP,
    METHODS_HELP,
    MODELS_HELP,
    add_no_arguments,
    degradations,
    methods,
    models,
)
from forgetir.errors import ForgetirError
from forgetir.models.external import register_module_factory
from forgetir.runtime.memory import retain_freed_memory
from forgetir.runtime.progress import quiet_scope
from forgetir.runtime.threads import apply_threads

Command = Callable[[argparse.Namespace], "int | None"]

# name -> (help line, add-arguments function, command function), in the order --help lists them
_COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], object], Command]] = {
    "demo": (demo.HELP, demo.add_arguments, demo.run),
    "models": (MODELS_HELP, add_no_arguments, models),
    "degradations": (DEGRADATIONS_HELP, add_no_arguments, degradations),
    "split": (split.HELP, split.add_arguments, split.run),
    "train": (train.HELP, train.add_arguments, train.run),
    "eval": (eval_.HELP, eval_.add_arguments, eval_.run),
    "methods": (METHODS_HELP, add_no_arguments, methods),
    "unlearn": (unlearn.HELP, unlearn.add_arguments, unlearn.run),
    "reproduce": (reproduce.HELP, reproduce.add_arguments, reproduce.run),
    "verify": (verify.HELP, verify.add_arguments, verify.run),
    "report": (report.HELP, report.add_arguments, report.run),
}


# Commands that run models: their torch thread count is set before they start (see
# forgetir.runtime.threads: default = the cores free now).
_MODEL_COMMANDS = ("demo", "train", "eval", "unlearn", "reproduce", "verify")

# Commands that load checkpoints saved from the user's own model code: they take
# --model-module, the only way such code runs (a checkpoint's sidecar never imports it).
_MODULE_COMMANDS = ("eval", "verify")

# Names of the positional KEY=VALUE lists of sub-commands (train: config, unlearn: method).
_OVERRIDE_DESTS = ("overrides", "hparams")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="forgetir",
        description="Make an image restoration model forget part of its training data, "
        "and prove it.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_line, add_arguments, _) in _COMMANDS.items():
        p = sub.add_parser(name, help=help_line, description=help_line)
        add_arguments(p)
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
    command = _COMMANDS[args.command][2]
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


def _run(args: argparse.Namespace, command: Command) -> int:
    """Run ``command``; a :class:`ForgetirError` becomes one line and exit code 2."""
    try:
        if args.command in _MODEL_COMMANDS:
            apply_threads(getattr(args, "threads", None))
            # Reuse freed activation memory instead of page-faulting ~1 GB per training step.
            retain_freed_memory()
        if args.command in _MODULE_COMMANDS and args.model_module:
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
