"""One CLI vocabulary: every sub-command of the real ``forgetir`` parser spells a concept the same
way (name, type, metavar, help, default), and every option says what it does.

The table below names each shared concept, its one spelling, and the spellings it replaced
(allowed only as hidden aliases that warn); the walk fails on a missing help text, a visible old
spelling, or one option name that means two things on two commands.
"""

from __future__ import annotations

import argparse
import re
from collections import defaultdict
from pathlib import Path

import pytest

from forgetir.cli.arguments import SHARED_HELP, _ListAction, deprecated_aliases, take_spill
from forgetir.cli.main import _MODEL_COMMANDS, build_parser, main

# concept -> (canonical option, spellings it replaced: never a visible option anywhere)
CONCEPTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "test-photo size": ("--max-side", ("--test-max-side", "--max-size", "--image-max-side")),
    "run seed": ("--seed", ("--run-seed", "--random-seed")),
    "number of seeds": ("--seeds", ("--n-seeds", "--num-seeds")),
    "degradation draw of the test images": ("--degradation-seed", ("--test-seed",)),
    "held-out draw of a split": ("--held-out-seed", ("--split-seed",)),
    "UT model": ("--ut", ("--ut-checkpoint", "--ut-model")),
    "architecture of a published checkpoint": ("--arch", ("--architecture", "--model-arch")),
    "torch threads": ("--threads", ("--num-threads", "--jobs", "--workers")),
    "no progress display": ("--quiet", ("--silent", "--no-progress")),
    "output": ("--out", ("--output", "--out-dir", "--output-dir")),
    "relearning test steps": ("--relearn-steps", ("--relearning-steps",)),
    "anamnesis index steps": ("--ain-max-steps", ("--ain-steps",)),
    "file of image ids to forget": ("--forget-file", ("--id-list", "--ids")),
    # The model a command works on is the positional CHECKPOINT, never an option.
    "model": ("CHECKPOINT", ("--checkpoint", "--model", "--ckpt")),
}

# Defaults that differ on purpose from the other commands' (command, option): why.
DEFAULT_EXCEPTIONS = {
    ("reproduce", "--max-side"): "the published cpu grid is measured at 128",
    ("reproduce", "--seeds"): "the grid's summary is mean ± sd over 3 seeds",
    ("verify", "--relearn-steps"): "default: the run's own setting",
    ("verify", "--ain-max-steps"): "default: the run's own setting",
}

# Options that share a name across commands but whose help is the command's own (they keep one
# type and metavar; the rule below checks that).
# (--batch-size: eval's is images per forward pass, an unlearning run's patches per step.)
# (--method: demo runs several methods side by side, unlearn one.)
OWN_HELP = {"--out", "--root", "--forget", "--tasks", "--batch-size", "--test-set", "--method"}
# Same name, another kind of value on purpose: demo forgets exactly one type (a choice); split
# forgets tasks, classes or images by the kind --by names (metavar NAME, not TASK); demo runs a
# list of methods side by side where unlearn runs one.
KIND_EXCEPTIONS = {("demo", "--forget"), ("split", "--forget"), ("demo", "--method")}


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _visible(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        a
        for a in parser._actions
        if not isinstance(a, argparse._HelpAction) and a.help != argparse.SUPPRESS
    ]


COMMANDS = _commands()


def _occurrences() -> dict[str, list[tuple[str, argparse.Action]]]:
    found: dict[str, list[tuple[str, argparse.Action]]] = defaultdict(list)
    for name, parser in COMMANDS.items():
        for action in _visible(parser):
            for flag in action.option_strings:
                found[flag].append((name, action))
    return found


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_option_and_positional_has_help(command):
    parser = COMMANDS[command]
    hidden = deprecated_aliases(parser)
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        label = "/".join(action.option_strings) or action.dest
        if action.help == argparse.SUPPRESS:
            # Hidden only as the warning alias of a renamed option.
            assert set(action.option_strings) <= set(hidden), f"{command} {label}: hidden"
            continue
        assert action.help and len(action.help) > 8, f"forgetir {command} {label}: no help"


def test_no_concept_is_spelled_the_old_way():
    visible = _occurrences()
    for concept, (canonical, old) in CONCEPTS.items():
        for spelling in old:
            where = [c for c, _ in visible.get(spelling, [])]
            assert not where, f"{concept}: {spelling} on {where}; the one spelling is {canonical}"


def test_one_option_name_is_one_kind_of_value_on_every_command():
    for flag, uses in _occurrences().items():
        kinds = {
            (type(a).__name__, a.type, a.nargs, a.metavar, tuple(a.choices or ()))
            for c, a in uses
            if (c, flag) not in KIND_EXCEPTIONS
        }
        assert len(kinds) <= 1, f"{flag} takes different values: {uses}"


@pytest.mark.parametrize("flag", sorted(SHARED_HELP))
def test_shared_options_have_one_help_and_one_default(flag):
    uses = _occurrences()[flag]
    assert uses, f"{flag} is declared as shared but no command has it"
    defaults = set()
    for command, action in uses:
        assert action.help.startswith(SHARED_HELP[flag]), f"forgetir {command} {flag}: help"
        if (command, flag) not in DEFAULT_EXCEPTIONS:
            defaults.add(repr(action.default))
    assert len(defaults) <= 1, f"{flag} has several defaults: {defaults}"


def test_an_option_on_several_commands_has_one_help_unless_listed():
    # A name several commands share either has one help (SHARED_HELP, or the same words on
    # each), or is listed in OWN_HELP: adding a shared name forces that choice.
    assert not OWN_HELP & set(SHARED_HELP)
    for flag, uses in _occurrences().items():
        if len(uses) < 2 or flag in SHARED_HELP or flag in OWN_HELP:
            continue
        helps = {re.sub(r" \(default: [^)]*\)$", "", a.help) for _, a in uses}
        assert len(helps) == 1, f"{flag}: {[(c, a.help) for c, a in uses]}"


def test_the_options_every_model_command_needs_are_there():
    for command in _MODEL_COMMANDS:
        flags = {f for a in _visible(COMMANDS[command]) for f in a.option_strings}
        assert {"--threads", "--quiet"} <= flags, command
        # verify writes into the run folder it is given
        assert "--out" in flags or command == "verify", command
    for command in ("demo", "eval", "unlearn", "reproduce"):
        assert "--max-side" in {f for a in _visible(COMMANDS[command]) for f in a.option_strings}
    for command in ("demo", "unlearn", "verify"):
        flags = {f for a in _visible(COMMANDS[command]) for f in a.option_strings}
        assert {"--relearn-steps", "--ain-max-steps"} <= flags, command


def test_the_model_is_the_positional_checkpoint():
    for command in ("unlearn", "eval", "reproduce"):
        positionals = [a for a in _visible(COMMANDS[command]) if not a.option_strings]
        assert positionals[0].metavar == "CHECKPOINT", command


def test_list_options_take_one_or_more_values_and_repeat():
    for command, parser in COMMANDS.items():
        for action in _visible(parser):
            takes_many = action.nargs in ("+", "*") or isinstance(
                action, argparse._AppendAction | argparse._ExtendAction
            )
            if action.option_strings and takes_many:
                assert isinstance(action, _ListAction), f"{command} {action.option_strings}"
    args = COMMANDS["eval"].parse_args(
        ["shipped:before", "--tasks", "dehaze", "derain", "--tasks", "denoise_25"]
    )
    assert args.tasks == ["dehaze", "derain", "denoise_25"]
    # A KEY=VALUE token after a list of names is the command's own KEY=VALUE list.
    args = COMMANDS["unlearn"].parse_args(["--forget", "dehaze", "w_adv=0.5"])
    assert args.forget == ["dehaze"] and take_spill(args) == ["w_adv=0.5"]


@pytest.mark.parametrize(
    ("command", "argv", "dest", "value"),
    [
        ("eval", ["x", "--seed", "7"], "degradation_seed", 7),
        ("split", ["--by", "class", "--out", "s.json", "--seed", "3"], "held_out_seed", 3),
        (
            "split",
            ["--by", "instances", "--out", "s.json", "--list", "ids.txt"],
            "id_list",
            "ids.txt",
        ),
        ("reproduce", ["--test-max-side", "64"], "test_max_side", 64),
        ("reproduce", ["--checkpoint", "b.ckpt"], "checkpoint_option", "b.ckpt"),
        ("reproduce", ["--ut", "dehaze=u.ckpt"], "ut_pairs", ["dehaze=u.ckpt"]),
    ],
)
def test_old_spellings_still_work_and_warn(capsys, command, argv, dest, value):
    args = COMMANDS[command].parse_args(argv)
    assert getattr(args, dest) == value
    old = next(a for a in argv if a.startswith("--") and a in deprecated_aliases(COMMANDS[command]))
    assert f"{old} is deprecated; use" in capsys.readouterr().err


def test_reproduce_takes_the_old_and_new_ut_spellings_alike(tmp_path):
    from forgetir.cli.reproduce import options_from_args

    parser = COMMANDS["reproduce"]
    new = options_from_args(parser.parse_args(["b.ckpt", "--ut-dehaze", "u.ckpt"]))
    old = options_from_args(parser.parse_args(["--checkpoint", "b.ckpt", "--ut", "dehaze=u.ckpt"]))
    assert (new.checkpoint, new.ut) == (old.checkpoint, old.ut) == ("b.ckpt", {"dehaze": "u.ckpt"})
    zero = options_from_args(parser.parse_args(["--max-side", "0"]))
    assert zero.test_max_side is None  # 0: full size, as on eval


def test_methods_keeps_its_columns(capsys):
    from forgetir.methods import get_method, list_methods

    assert main(["methods"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = list_methods()
    starts = {line.index(get_method(n).summary) for n, line in zip(names, lines, strict=True)}
    assert len(starts) == 1 and starts.pop() > max(map(len, names))


def test_the_renamed_options_page_matches_the_parser():
    # docs/cli.md's "Renamed options" table: each old spelling is a warning alias of the new.
    text = (Path(__file__).parents[1] / "docs" / "cli.md").read_text()
    rows = re.findall(r"^\| `(--[a-z-]+)[^`]*` \| ([^|]+) \| (\w+) \|$", text, re.M)
    assert len(rows) >= 6
    for old, new, command in rows:
        aliases = deprecated_aliases(COMMANDS[command])
        assert old in aliases, f"docs/cli.md: {old} is no alias on {command}"
        assert aliases[old].split()[-1].strip("`") in new, (old, new, aliases[old])
