"""``forgetir unlearn``: the command line of an unlearning run, and each option of
:class:`~forgetir.options.UnlearnOptions` declared once (:func:`add_options`, reused by
``demo`` and ``reproduce``).

Example:
    $ forgetir unlearn shipped:before --forget dehaze --steps 2 --threads 1
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from forgetir.cli.arguments import (
    CHECKPOINT_FORMS,
    add_arch,
    add_checkpoint,
    add_int,
    add_list,
    add_max_side,
    add_model_module,
    add_out,
    add_precision_argument,
    add_quiet,
    add_threads,
    add_tiling_arguments,
    add_ut,
    max_side_or_none,
)
from forgetir.config import parse_override
from forgetir.data.manifest import load_manifest
from forgetir.methods import TARGETS
from forgetir.methods.recommend import SCHEDULE_DEFAULTS, method_and_schedule
from forgetir.models.external import register_module_factory
from forgetir.options import UnlearnOptions, option_name
from forgetir.unlearn import run_unlearn, run_unlearn_seeds

HELP = "make a checkpoint forget a degradation type, a content class or a list of images"

# Each command-line option of UnlearnOptions, declared once: its argparse settings (the default
# comes from the dataclass). unlearn, demo and reproduce take the ones they offer from here
# with add_options, and options_from_args reads them back. The options every command shares
# (seed, threads, quiet, test-photo size, relearning/AIN steps) come from forgetir.cli.arguments.
_CLI_OPTIONS: dict[str, dict[str, Any]] = {
    "method": {"metavar": "NAME", "help": "unlearning method, see `forgetir methods`"},
    "target": {"help": "what forgetting aims at: the paper's collapse, or behave like UT"},
    "steps": {"type": int, "metavar": "N", "help": "unlearning steps"},
    "batch_size": {"type": int, "metavar": "N", "help": "patches per step"},
    "patch_size": {"type": int, "metavar": "N", "help": "side of the training patches"},
    "lr": {"type": float, "help": "learning rate (default: the method's)"},
    "retain_budget": {"type": float, "metavar": "DB", "help": "max dB a retained task may lose"},
    "forget_floor": {"type": float, "metavar": "DB", "help": "stop at this forget PSNR (dB)"},
    "mia_reference": {
        "metavar": "CHECKPOINT",
        "help": "a model that never saw the split's images (e.g. the parent of a memorising "
        "BEFORE): calibrates the per-example membership attack of an instance split "
        "(default: none, uncalibrated)",
    },
}
_SHARED_INTS = {
    "seed": "--seed",
    "relearn_steps": "--relearn-steps",
    "ain_max_steps": "--ain-max-steps",
}
# Every field add_options knows (options_from_args reads these back from the namespace).
_FIELDS = (
    *_CLI_OPTIONS,
    *_SHARED_INTS,
    "threads",
    "quiet",
    "test_max_side",
    "tile",
    "tile_overlap",
    "precision",
)


def add_options(
    parser: argparse.ArgumentParser, names: Sequence[str], **changes: dict[str, Any]
) -> None:
    """Add the options ``names`` (fields of :class:`UnlearnOptions`) to ``parser`` as declared
    in one place; ``changes`` adjusts a command's copy (``steps={"default": None}``; for the
    shared options ``default``, ``extra`` and ``default_text``)."""
    defaults = {f.name: f.default for f in dataclasses.fields(UnlearnOptions)}
    for name in names:
        change = changes.get(name, {})
        default = change.get("default", defaults[name])
        if name == "threads":
            add_threads(parser)
        elif name == "quiet":
            add_quiet(parser, change.get("extra", "no result tables either"))
        elif name == "test_max_side":
            add_max_side(parser, default, dest=name, extra=change.get("extra"))
        elif name in _SHARED_INTS:
            text = change.get("default_text")
            add_int(parser, _SHARED_INTS[name], default, dest=name, default_text=text)
        else:
            kwargs = {**_CLI_OPTIONS[name], **change}
            kwargs.setdefault("default", defaults[name])
            if name == "target":
                kwargs.setdefault("choices", TARGETS)
            if kwargs.get("default") is not None:
                kwargs["help"] += f" (default: {kwargs['default']})"
            parser.add_argument(option_name(name), dest=name, **kwargs)


def options_from_args(args: argparse.Namespace, **fixed: Any) -> UnlearnOptions:
    """The :class:`UnlearnOptions` of a parsed command line: the options :func:`add_options`
    added, then ``fixed`` (fields the command sets itself)."""
    given = {name: getattr(args, name) for name in _FIELDS if hasattr(args, name)}
    if "test_max_side" in given:  # --max-side 0: full size
        given["test_max_side"] = max_side_or_none(given["test_max_side"])
    return UnlearnOptions(**{**given, **fixed})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``forgetir unlearn``."""
    add_checkpoint(
        parser,
        f"model to unlearn from: {CHECKPOINT_FORMS}; also fresh:MODEL, a newly initialised "
        "registered model (the default with --model-module) (default: shipped:before)",
    )
    add_arch(parser)
    add_list(
        parser,
        "--data",
        "KEY=VALUE",
        "data settings of a fresh model (fresh:MODEL, --model-module), e.g. pool_size=64",
    )
    add_model_module(parser, "a .pth checkpoint of it then needs no --arch")
    add_list(parser, "--forget", "TASK", "degradation types to forget", spill=True)
    parser.add_argument(
        "--split",
        metavar="MANIFEST",
        help="a split manifest from `forgetir split` (not with --forget)",
    )
    add_ut(parser, "the shipped one")
    schedule = "default: the method's recommended schedule, else %s"
    add_options(
        parser,
        ("method", "target", "steps", "batch_size", "patch_size", "lr", "seed", "threads"),
        method={"default": None, "help": "unlearning method, see `forgetir methods` (default: "
                "the one recommended for the request, printed with the reason)"},
        **{name: {"default": None, "help": f"{_CLI_OPTIONS[name]['help']} ({schedule % value})"}
           for name, value in SCHEDULE_DEFAULTS.items()},
    )  # fmt: skip
    add_options(parser, ("retain_budget", "forget_floor", "mia_reference"))
    add_options(parser, ("test_max_side", "relearn_steps", "ain_max_steps"))
    add_tiling_arguments(parser)  # the same two options as eval's and verify's
    # unlearning's steps and every test-image restoration of the run
    add_precision_argument(parser, UnlearnOptions.precision, UnlearnOptions.precision)
    parser.add_argument("--no-verify", action="store_true", help="skip relearning/AIN/MIA")
    add_int(parser, "--seeds", 1, extra="seed-<s>/ folders")
    parser.add_argument(
        "--clean-source",
        metavar="deadleaves|FOLDER",
        help="data-free mode: synthesise forget/retain data on these clean images instead of "
        "the checkpoint's training data",
    )
    add_out(parser, "run folder", "runs/unlearn-<method>-<tasks>")
    add_options(parser, ("quiet",))
    parser.add_argument(
        "hparams", nargs="*", metavar="KEY=VALUE", help="method hyperparameters, e.g. w_adv=0.5"
    )


def run(args: argparse.Namespace) -> int:
    """Parse the options, pick the method's schedule, run (one seed or several)."""
    hparams = dict(parse_override(h) for h in args.hparams)
    given = {name: getattr(args, name) for name in SCHEDULE_DEFAULTS}
    # A deletion request and a content class get different methods: the manifest says which.
    kind = load_manifest(args.split).get("kind") if args.split and args.method is None else None
    args.method, schedule, why = method_and_schedule(args.method, args.forget, given, kind)
    if why is not None and not args.quiet:
        print(f"forgetir unlearn: no --method given: using {args.method} ({why})")
    opts = options_from_args(
        args,
        hparams=hparams,
        verify=not args.no_verify,
        clean_source=args.clean_source,
        **schedule,
    )
    what = "-".join(args.forget or [Path(args.split or "split").stem])
    out = args.out or f"runs/unlearn-{args.method}-{what}"
    checkpoint, arch = args.checkpoint or "shipped:before", args.arch
    if args.model_module:
        name = register_module_factory(args.model_module)
        checkpoint, arch = args.checkpoint or f"fresh:{name}", arch or name
    kwargs = {
        "forget": args.forget,
        "split": args.split,
        "ut": args.ut,
        "arch": arch,
        "command": " ".join(["forgetir", *sys.argv[1:]]),
        "data": dict(parse_override(d) for d in args.data) if args.data else None,
    }
    if args.seeds == 1:
        run_unlearn(checkpoint, out, opts, **kwargs)
    else:
        run_unlearn_seeds(checkpoint, out, opts, args.seeds, **kwargs)
    return 0
