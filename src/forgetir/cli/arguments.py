"""The command-line vocabulary every ``forgetir`` sub-command shares: one declaration per concept.

A concept that several commands take (the model, UT, the test-photo size, the seeds, threads,
quiet, lists, output) is added with the helper below, so it has the same name, type, metavar and
help on every command (:data:`SHARED_HELP` holds each shared help text; a command may append a
clause of its own). ``tests/test_cli_vocabulary.py`` walks the real parser and fails on a missing
help text or a concept spelled two ways.

Conventions:

- the model a command works on is positional (``CHECKPOINT``); ``--ut CHECKPOINT`` is the model
  retrained without the forget data;
- a list option takes one or more values and may be repeated (``--tasks dehaze derain`` is
  ``--tasks dehaze --tasks derain``); a ``KEY=VALUE`` token after a list of names belongs to the
  command's own ``KEY=VALUE`` list (``forgetir unlearn --forget dehaze w_adv=0.5``);
- ``--seed`` is the run seed; other draws have their own names (``--degradation-seed``,
  ``--held-out-seed``, ``--pool-seed``);
- a renamed option keeps its old spelling as a hidden alias that warns (:func:`add_deprecated`).

Example:
    >>> import argparse
    >>> p = argparse.ArgumentParser()
    >>> add_max_side(p)
    >>> add_list(p, "--tasks", "TASK", "tasks to evaluate")
    >>> add_deprecated(p, "--test-max-side", "--max-side", dest="max_side")
    >>> a = p.parse_args(["--tasks", "dehaze", "derain", "--tasks", "denoise_25"])
    >>> a.tasks, a.max_side
    (['dehaze', 'derain', 'denoise_25'], 256)
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from forgetir.models.tiling import DEFAULT_OVERLAP

# The help text of each shared option (commands append a clause of their own after it).
SHARED_HELP: dict[str, str] = {
    "--arch": "architecture of a published .ckpt/.pth checkpoint (e.g. promptir, adair)",
    "--ut": "UT: the model retrained without the forget data, to compare with",
    "--max-side": "shrink the test photos to this longest side in pixels (0: full size)",
    "--seed": "run seed: seeds every random draw of the run",
    "--seeds": "run N seeds (--seed, --seed+1, ...) and report every figure as mean ± sd",
    "--degradation-seed": "seed of the synthetic degradations applied to the test images",
    "--threads": "torch CPU threads (default: the cores free right now)",
    "--quiet": "no progress bars or progress lines",
    "--relearn-steps": "fine-tuning steps of the relearning test",
    "--ain-max-steps": "most fine-tuning steps of the anamnesis index (AIN)",
    "--model-module": "your own model code: FACTORY() in FILE.py returns the nn.Module, "
    "registered as FILE.FACTORY (a checkpoint saved from it names the file but never runs it: "
    "loading it needs this option)",
}

# What the model positional of a command accepts.
CHECKPOINT_FORMS = (
    "shipped:NAME (e.g. shipped:before), a .safetensors with its sidecar, a run folder, "
    "or a published .ckpt/.pth with --arch"
)

# Where KEY=VALUE tokens that followed a list of names wait for cli.main to hand them to the
# command's own KEY=VALUE list (argparse lets a list option swallow every token up to the next
# option).
SPILL_DEST = "_key_value_spill"


def _help(flag: str, extra: str | None, default_text: str | None = None) -> str:
    text = SHARED_HELP[flag]
    if extra:
        text += f"; {extra}"
    if default_text is not None:
        text += f" (default: {default_text})"
    return text


def add_checkpoint(
    parser: argparse.ArgumentParser, help: str, *, dest: str = "checkpoint", nargs: str = "?"
) -> None:
    """The model the command works on, positional: ``CHECKPOINT`` (``nargs="+"``: several)."""
    parser.add_argument(dest, nargs=nargs, metavar="CHECKPOINT", help=help)


def add_arch(parser: argparse.ArgumentParser) -> None:
    """``--arch NAME``: the architecture of a published checkpoint."""
    parser.add_argument("--arch", metavar="NAME", help=SHARED_HELP["--arch"])


def add_ut(parser: argparse.ArgumentParser, default_text: str) -> None:
    """``--ut CHECKPOINT``: the model retrained without the forget data."""
    parser.add_argument(
        "--ut", metavar="CHECKPOINT", help=_help("--ut", None, default_text=default_text)
    )


def add_model_module(parser: argparse.ArgumentParser, extra: str | None = None) -> None:
    """``--model-module FILE.py:FACTORY``: the only way forgetir runs the user's model code."""
    parser.add_argument(
        "--model-module", metavar="FILE.py:FACTORY", help=_help("--model-module", extra)
    )


def add_max_side(
    parser: argparse.ArgumentParser,
    default: int = 256,
    *,
    dest: str = "max_side",
    extra: str | None = None,
) -> None:
    """``--max-side N``: the longest side of the test photos (0: full size)."""
    parser.add_argument(
        "--max-side",
        type=int,
        default=default,
        dest=dest,
        metavar="N",
        help=_help("--max-side", extra, str(default)),
    )


def max_side_or_none(value: int | None) -> int | None:
    """``--max-side``'s value as the library takes it: 0 (or None) means full size (None).

    Example:
        >>> max_side_or_none(0), max_side_or_none(128)
        (None, 128)
    """
    return value if value else None


def add_int(
    parser: argparse.ArgumentParser,
    flag: str,
    default: int | None,
    *,
    dest: str | None = None,
    extra: str | None = None,
    default_text: str | None = None,
) -> None:
    """A shared integer option of :data:`SHARED_HELP` (``--seed``, ``--seeds``, ``--threads``,
    ``--degradation-seed``, ``--relearn-steps``, ``--ain-max-steps``)."""
    shown = default_text if default_text is not None else default
    parser.add_argument(
        flag,
        type=int,
        default=default,
        dest=dest or flag[2:].replace("-", "_"),
        metavar="N",
        help=_help(flag, extra, None if shown is None else str(shown)),
    )


def add_threads(parser: argparse.ArgumentParser) -> None:
    """``--threads N``: torch CPU threads (cli.main applies it before the command runs)."""
    add_int(parser, "--threads", None)


def add_quiet(parser: argparse.ArgumentParser, extra: str | None = None) -> None:
    """``--quiet``: silence progress displays (cli.main wraps the command in quiet_scope)."""
    parser.add_argument("--quiet", action="store_true", help=_help("--quiet", extra))


def add_out(
    parser: argparse.ArgumentParser, what: str, default_text: str | None, required: bool = False
) -> None:
    """``--out PATH``: where the command writes (``what``: a run folder, a JSON file, ...)."""
    text = what if default_text is None else f"{what} (default: {default_text})"
    parser.add_argument("--out", metavar="PATH", required=required, help=text)


class _ListAction(argparse._ExtendAction):
    """One or more values, the option repeatable; KEY=VALUE tokens are set aside (see
    :data:`SPILL_DEST`) when the command also takes a KEY=VALUE list (``spill``)."""

    def __init__(self, *args: Any, spill: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spill = spill

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        items = list(values)
        if self.spill:
            spill = [v for v in items if "=" in v]
            items = [v for v in items if "=" not in v]
            if spill:
                setattr(namespace, SPILL_DEST, [*getattr(namespace, SPILL_DEST, []), *spill])
            if not items:
                parser.error(f"argument {option_string}: expected at least one {self.metavar}")
        super().__call__(parser, namespace, items, option_string)


def add_list(
    parser: argparse.ArgumentParser,
    flag: str,
    metavar: str,
    help: str,
    *,
    dest: str | None = None,
    default_text: str | None = None,
    spill: bool = False,
) -> None:
    """A list option: one or more values after the flag, the flag repeatable; default None
    (the command applies its default, ``default_text`` says what it is). ``spill``: on a command
    that takes KEY=VALUE positionals, such tokens after the list are not its items."""
    shown = "" if default_text is None else f"; default: {default_text}"
    parser.add_argument(
        flag,
        action=_ListAction,
        nargs="+",
        default=None,
        dest=dest or flag[2:].replace("-", "_"),
        metavar=metavar,
        spill=spill,
        help=f"{help} (one or more, repeatable{shown})",
    )


class _DeprecatedAction(argparse.Action):
    def __init__(self, *args: Any, new: str, parse: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.new, self.parse = new, parse

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        print(
            f"{parser.prog}: warning: {option_string} is deprecated; use {self.new}",
            file=sys.stderr,
        )
        if self.nargs == 0:
            setattr(namespace, self.dest, self.const)
        elif self.parse is not None:
            self.parse(parser, namespace, values)
        else:
            setattr(namespace, self.dest, self.type(values) if self.type else values)


def add_deprecated(
    parser: argparse.ArgumentParser,
    old: str,
    new: str,
    *,
    dest: str,
    flag: bool = False,
    type: Any = None,
    parse: Any = None,
) -> None:
    """Keep ``old`` as a hidden alias of ``new`` (same ``dest``) that warns when used.
    ``parse(parser, namespace, value)`` handles an alias whose value has another form."""
    parser.add_argument(
        old,
        action=_DeprecatedAction,
        dest=dest,
        new=new,
        parse=parse,
        nargs=0 if flag else None,
        const=True if flag else None,
        type=type,
        default=argparse.SUPPRESS,
        help=argparse.SUPPRESS,
    )


def deprecated_aliases(parser: argparse.ArgumentParser) -> dict[str, str]:
    """``{old: new}`` of the hidden aliases :func:`add_deprecated` added to ``parser``."""
    return {
        s: a.new
        for a in parser._actions
        if isinstance(a, _DeprecatedAction)
        for s in a.option_strings
    }


def take_spill(args: argparse.Namespace) -> list[str]:
    """The ``KEY=VALUE`` tokens list options set aside (removed from ``args``): they belong to
    the command's own ``KEY=VALUE`` list.

    Example:
        >>> p = argparse.ArgumentParser()
        >>> add_list(p, "--exclude", "TASK", "tasks to leave out", spill=True)
        >>> a = p.parse_args(["--exclude", "dehaze", "train.steps=5"])
        >>> a.exclude, take_spill(a)
        (['dehaze'], ['train.steps=5'])
    """
    return list(vars(args).pop(SPILL_DEST, []))


def add_tiling_arguments(parser: argparse.ArgumentParser, default: str = "whole images") -> None:
    """``--tile N`` and ``--tile-overlap M`` (both default None: see
    :func:`forgetir.scoring.inference.tiling_options`);
    ``default`` says what no ``--tile`` means."""
    parser.add_argument(
        "--tile",
        type=int,
        metavar="N",
        help="restore each image in N x N tiles with blended overlaps (N snapped down to the "
        f"model's size multiple): memory bounded by the tile (default: {default})",
    )
    parser.add_argument(
        "--tile-overlap",
        type=int,
        metavar="M",
        dest="tile_overlap",
        help=f"pixels neighbouring tiles share (default: {DEFAULT_OVERLAP}, a quarter of a "
        "tile below 128)",
    )


def add_precision_argument(parser: argparse.ArgumentParser, default: str | None, text: str) -> None:
    """``--precision`` (one of :data:`forgetir.scoring.inference.PRECISIONS`), with one help
    on every command; ``text`` says what the default is."""
    from forgetir.scoring.inference import PRECISIONS

    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=default,
        help="autocast of the model's forwards (auto: bf16 on a GPU that has it, fp32 on a "
        f"CPU; fp16 needs a GPU); weights and metrics stay fp32 (default: {text})",
    )
