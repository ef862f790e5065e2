"""``forgetir split``: write a split manifest (:mod:`forgetir.data.splits`).

Example:
    $ forgetir split --by degradation --forget dehaze --out split.json
"""

from __future__ import annotations

import argparse
import dataclasses

from forgetir.atomic import check_output_file
from forgetir.cli.arguments import add_deprecated, add_list, add_out
from forgetir.config import AT_LEAST_ONE, NON_NEGATIVE, RANGES, UNIT, DataConfig, check_range
from forgetir.data.deadleaves import CONTENT_CLASSES
from forgetir.data.manifest import PARTS
from forgetir.data.pipeline import SOURCES
from forgetir.data.splits import (
    SPLIT_KINDS,
    make_split,
    manifest_sha256,
    read_id_list,
    save_manifest,
)
from forgetir.data.testsets import TEST_SOURCES
from forgetir.errors import InvalidInputError

HELP = "write a forget/retain/test split manifest (paths and SHA-256, no pixels)"


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Options of ``forgetir split`` (run it with :func:`run`)."""
    parser.add_argument("--by", required=True, choices=SPLIT_KINDS, help="kind of split")
    add_list(
        parser,
        "--forget",
        "NAME",
        "tasks (degradation: dehaze, derain, denoise_15/25/50 or the family denoise), "
        "classes (class) or image ids/paths (instances) to forget",
    )
    parser.add_argument(
        "--forget-file",
        dest="id_list",
        metavar="FILE",
        help="instances: a file of image ids or paths to forget, one per line",
    )
    add_deprecated(parser, "--list", "--forget-file", dest="id_list")
    parser.add_argument("--source", choices=SOURCES, default=None, help="training data source")
    parser.add_argument(
        "--root", metavar="FOLDER", default=None, help="dataset folder (non-synthetic sources)"
    )
    add_list(parser, "--tasks", "TASK", "trained tasks", default_text="the data config's")
    parser.add_argument(
        "--pool-size", type=int, metavar="N", default=None, help="dead-leaves pool size"
    )
    parser.add_argument(
        "--pool-seed", type=int, metavar="N", default=None, help="dead-leaves pool seed"
    )
    parser.add_argument(
        "--image-size", type=int, metavar="N", default=None, help="dead-leaves image side"
    )
    add_list(
        parser,
        "--content-classes",
        "CLASS",
        f"dead-leaves content classes of the training data ({', '.join(CONTENT_CLASSES)})",
        default_text="the data config's",
    )
    parser.add_argument(
        "--test-set",
        choices=TEST_SOURCES,
        default=None,
        help="test images recorded in the manifest: photos (shipped), deadleaves (synthetic) "
        "or promptir (the official test sets under --root) (default: the data config's)",
    )
    parser.add_argument(
        "--held-out",
        type=int,
        metavar="N",
        default=32,
        help="class/instances on dead leaves: number of held-out test images",
    )
    parser.add_argument(
        "--held-out-fraction",
        type=float,
        metavar="F",
        default=0.1,
        help="class/instances on image files: share of files held out for testing",
    )
    parser.add_argument(
        "--held-out-seed",
        type=int,
        default=0,
        metavar="N",
        help="seed of the held-out draw (default: 0)",
    )
    add_deprecated(parser, "--seed", "--held-out-seed", dest="held_out_seed", type=int)
    add_out(parser, "where to write the manifest (JSON)", None, required=True)
    return parser


def run(args: argparse.Namespace, base: DataConfig | None = None) -> int:
    """Build the manifest the options describe and save it.

    ``base`` is the run's data config (a preset); options given on the command line override
    its fields.
    """
    cfg = base or DataConfig()
    overrides = {
        "source": args.source,
        "root": args.root,
        "tasks": args.tasks,
        "pool_size": args.pool_size,
        "pool_seed": args.pool_seed,
        "image_size": args.image_size,
        "content_classes": args.content_classes,
        "test_set": args.test_set,
    }
    for key, value in overrides.items():
        check_range("--" + key.replace("_", "-"), value, RANGES.get(f"data.{key}"))
    check_range("--held-out", args.held_out, AT_LEAST_ONE)
    check_range("--held-out-fraction", args.held_out_fraction, UNIT)
    check_range("--held-out-seed", args.held_out_seed, NON_NEGATIVE)
    check_output_file(args.out)
    cfg = dataclasses.replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    forget = list(args.forget or [])
    if args.id_list:
        if args.by != "instances":
            raise InvalidInputError("--forget-file is for --by instances (a deletion request)")
        forget += read_id_list(args.id_list)
    manifest = make_split(
        cfg,
        args.by,
        forget,
        seed=args.held_out_seed,
        held_out=args.held_out,
        held_out_fraction=args.held_out_fraction,
    )
    path = save_manifest(manifest, args.out)
    counts = ", ".join(f"{p} {manifest[p]['count']}" for p in PARTS)
    print(f"wrote {path} ({args.by} split: {counts}; sha256 {manifest_sha256(path)[:16]}...)")
    return 0
