"""``forgetir eval``: PSNR/SSIM of checkpoints on every task (:mod:`forgetir.scoring.evaluate`).

Example:
    $ forgetir eval shipped:before shipped:ut-dehaze --threads 1
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from forgetir.atomic import check_output_file
from forgetir.checkpoint import load_model, weights_file
from forgetir.checkpoint.shipped import resolve_checkpoint
from forgetir.cli.arguments import (
    CHECKPOINT_FORMS,
    add_arch,
    add_checkpoint,
    add_deprecated,
    add_int,
    add_list,
    add_max_side,
    add_out,
    add_precision_argument,
    add_quiet,
    add_threads,
    add_tiling_arguments,
)
from forgetir.config import AT_LEAST_ONE, NON_NEGATIVE, check_range
from forgetir.data.testsets import MIXED, TEST_SOURCES, build_test_sets, check_max_side
from forgetir.degradations import TASKS
from forgetir.metrics import PROTOCOLS
from forgetir.runtime.process import resolve_device
from forgetir.scoring.evaluate import (
    INPUT_ROW,
    Metrics,
    describe_test_sets,
    evaluate_degraded_input,
    evaluate_model,
    format_table,
    write_results,
)
from forgetir.scoring.footprint import check_fits, test_image_shapes
from forgetir.scoring.inference import autocast_dtype, tiling_options

HELP = "evaluate checkpoints on every task: PSNR/SSIM table in the seed paper's layout"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``forgetir eval``."""
    add_checkpoint(parser, f"models to evaluate: {CHECKPOINT_FORMS}", dest="checkpoints", nargs="+")
    add_arch(parser)
    add_list(parser, "--tasks", "TASK", "tasks or families to evaluate", default_text="all five")
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="promptir",
        help="how PSNR/SSIM are computed: promptir (the seed paper's test code, RGB, SSIM 7x7 "
        "uniform), pyiqa (SSIM on Y, 11x11 Gaussian) or gaussian (RGB, 11x11 Gaussian, 5-px "
        "border excluded) (default: promptir)",
    )
    parser.add_argument(
        "--test-set",
        choices=TEST_SOURCES,
        default="photos",
        dest="test_set",
        help="test images: photos (shipped), deadleaves (synthetic) or promptir (the official "
        "test sets under --root) (default: photos)",
    )
    parser.add_argument(
        "--root", metavar="FOLDER", help="dataset folder for --test-set promptir (holds test/)"
    )
    add_max_side(parser)
    add_int(parser, "--degradation-seed", 1234)
    add_deprecated(parser, "--seed", "--degradation-seed", dest="degradation_seed", type=int)
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=8,
        dest="batch_size",
        metavar="N",
        help="test images per forward pass (default: 8)",
    )
    add_tiling_arguments(parser)
    add_precision_argument(parser, "fp32", "fp32")
    add_out(parser, "also write the rows as JSON here", None)
    add_threads(parser)
    add_quiet(parser)


def _row_names(paths: Sequence[str]) -> list[str]:
    names = []
    for p in paths:
        if p.startswith("shipped:"):
            names.append(p.removeprefix("shipped:"))
            continue
        path = Path(p)
        name = path.parent.name if path.stem == "model" else path.stem
        names.append(name or str(path))
    if len(set(names)) < len(names):  # ambiguous short names: show the paths
        return list(paths)
    return names


def run(args: argparse.Namespace) -> int:
    """Print the table (degraded-input row first); ``--out`` writes JSON."""
    # Every option is checked before any model is loaded or image read.
    check_range("--batch-size", args.batch_size, AT_LEAST_ONE)
    check_range("--max-side", args.max_side, NON_NEGATIVE)
    if args.test_set in ("photos", MIXED):
        check_max_side(args.max_side, "--max-side")
    tile, overlap = tiling_options(args.tile, args.tile_overlap)
    device = resolve_device(args.device, option="--device")
    paths = [resolve_checkpoint(c) for c in args.checkpoints]
    for path in paths:
        weights_file(path)  # a missing checkpoint is named before any work
    if args.out:
        check_output_file(args.out)
    max_side = args.max_side if args.max_side and args.max_side > 0 else None
    tasks = args.tasks or list(TASKS)
    amp = autocast_dtype(args.precision, device)  # fp16 on a CPU: refused before any work
    sets = build_test_sets(args.test_set, tasks, max_side, args.root, seed=args.degradation_seed)
    rows: dict[str, dict[str, Metrics]] = {
        INPUT_ROW: evaluate_degraded_input(sets, args.protocol, args.batch_size)
    }
    for name, path in zip(_row_names(args.checkpoints), paths, strict=True):
        model = load_model(path, arch=args.arch, map_location=device)
        if tile is not None:
            tiling_options(tile, overlap, [model])  # the tile fits this model's size multiple
        check_fits([model], test_image_shapes(sets), tile, device)  # before any restoring
        rows[name] = evaluate_model(
            model, sets, args.protocol, device, args.batch_size, label=f"evaluate {name}",
            tile=tile, tile_overlap=overlap, precision=args.precision,
        )  # fmt: skip
        del model
    source = describe_test_sets(sets)
    print(format_table(rows, args.protocol, source))
    if amp is not None:
        print(f"Model forwards in {str(amp).removeprefix('torch.')} autocast (--precision "
              f"{args.precision}); metrics in fp32.")  # fmt: skip
    if tile is not None:
        print(f"Restored in {tile}x{tile} tiles (snapped to the model's size multiple), "
              f"{overlap}-pixel overlaps blended.")  # fmt: skip
    if args.out:
        names = list(rows)[1:]
        extra: dict[str, Any] = {
            "checkpoints": {n: str(p) for n, p in zip(names, args.checkpoints, strict=True)}
        }
        if tile is not None:
            extra["tiling"] = {"tile": tile, "overlap": overlap}
        if amp is not None:
            extra["precision"] = str(amp).removeprefix("torch.")
        print(f"wrote {write_results(args.out, rows, args.protocol, source, extra)}")
    return 0
