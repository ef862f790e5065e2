"""Ship UT reference logs beside the shipped UTs (``src/forgetir/weights/<ut>.reference.json``).

Usage:
    python scripts/ship_ut_references.py [dehaze] [derain] [denoise] [--threads 1]
        [--patch-sizes 128 64 32] [--from-cache ~/.cache/forgetir/ut-reference]

For each forgotten task family it builds exactly what ``forgetir unlearn shipped:before
--forget TASK`` with default options verifies against (the split, the 4 relearning patches, the
forget-test images) at each patch size (by default: 64, the run default; 128, the seed paper's
method's recommended schedule; 32, that of proxy-retrain and proxy-retrain-guarded; so the
demo's two runs both find UT's curves), takes an entry with the very same key from the shipped
log or the cache folder, else fine-tunes a copy of the shipped UT for the relearning test and the
anamnesis index, and stores both curves under the key of :mod:`forgetir.checks.reference`.
A run whose UT, BEFORE, data or settings differ does not match the key and recomputes.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from forgetir.atomic import atomic_json
from forgetir.checkpoint import sha256_file
from forgetir.checkpoint.shipped import WEIGHTS_DIR, resolve_checkpoint, ut_name_for
from forgetir.checks import reference
from forgetir.checks.anamnesis import forget_l1
from forgetir.checks.base import Context
from forgetir.checks.relearning import relearn, truncated
from forgetir.checks.verify import pairs_from_dataset
from forgetir.data.pipeline import resolve_tasks
from forgetir.data.splits import build_split_datasets, make_split
from forgetir.methods.recommend import PAPER_METHOD, SCHEDULE_DEFAULTS, method_and_schedule
from forgetir.provenance import software_versions, utc_now
from forgetir.records import json_safe
from forgetir.runs.testbed import evaluation_sets, load_eval_model, model_meta, parent_data_config
from forgetir.unlearn import UnlearnOptions


def demo_patch_sizes(task: str) -> list[int]:
    """The patch sizes a run of the shipped model forgetting ``task`` relearns on: the default
    run's, the seed paper's method's recommended schedule and the recommended method's, so
    that `forgetir demo` finds UT's curves for both of its runs."""
    sizes = {SCHEDULE_DEFAULTS["patch_size"]}
    for method in (PAPER_METHOD, None):
        sizes.add(method_and_schedule(method, [task])[1]["patch_size"])
    return sorted(sizes, reverse=True)


def references_for(task: str, opts: UnlearnOptions, cache: Path | None = None) -> dict:
    forget = resolve_tasks([task])
    before_path = resolve_checkpoint("shipped:before")
    data = parent_data_config(model_meta(before_path))
    data.patch_size = opts.patch_size
    manifest = make_split(data, "degradation", forget)
    datasets = build_split_datasets(manifest, opts.patch_size, seed=opts.seed)
    test_sets = evaluation_sets(manifest, datasets, opts)
    ut_spec = ut_name_for(forget)
    before, ut = load_eval_model("shipped:before"), load_eval_model(ut_spec)
    ctx = Context(
        before, before, ut, forget, list(manifest["retain"]["tasks"]), test_sets, {},
        opts.protocol, pairs_from_dataset(datasets["forget"], range(4)),
        relearn_steps=opts.relearn_steps, ain_max_steps=opts.ain_max_steps,
        eval_every=opts.verify_eval_every, quiet=False,
    )  # fmt: skip
    args = (ctx.relearn_samples,)
    common = {"lr": ctx.relearn_lr, "eval_set": ctx.forget_pairs, "protocol": ctx.protocol,
              "eval_every": ctx.eval_every, "quiet": False}  # fmt: skip
    keys = {kind: reference.reference_key(ctx, kind) for kind in ("relearn", "anamnesis")}
    # An entry with this very key, already shipped or computed by a verification, is kept.
    store = reference.ReferenceStore.for_ut(resolve_checkpoint(ut_spec))
    store.cache = cache
    found = store.get(keys["anamnesis"][0])
    ain = reference.restore_types(found) if found is not None else None
    if ain is None:
        target = (1.0 + ctx.ain_tol) * forget_l1(before, ctx.forget_pairs)
        ain = relearn(
            ut, *args, steps=ctx.ain_max_steps, stop_l1=target, label="UT anamnesis", **common
        )
    # As in verification: the relearning run is the anamnesis run's prefix when it got that far.
    again = truncated(ain, ctx.relearn_steps)
    if again is None:
        again = relearn(ut, *args, steps=ctx.relearn_steps, label="UT relearning", **common)
    entries = {}
    for kind, run in (("relearn", again), ("anamnesis", ain)):
        key, what = keys[kind]
        entries[key] = {"kind": kind, "hashes": what, "run": run}
    return {"ut": ut_spec, "path": resolve_checkpoint(ut_spec), "entries": entries}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tasks", nargs="*", default=["dehaze", "derain", "denoise"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--from-cache",
        type=Path,
        help="take entries with the very same keys from this UT reference cache folder "
        "(e.g. ~/.cache/forgetir/ut-reference) instead of recomputing them",
    )
    parser.add_argument(
        "--patch-sizes",
        type=int,
        nargs="+",
        help="the relearning patch sizes to cover (default: those of the default run and of "
        "the demo's two methods for the task, e.g. 128 64 32 for dehaze)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for task in args.tasks:
        t0 = time.time()
        entries: dict = {}
        patch_sizes = args.patch_sizes or demo_patch_sizes(task)
        for patch in patch_sizes:
            ref = references_for(task, UnlearnOptions(patch_size=patch), args.from_cache)
            entries.update(ref["entries"])
        name = ref["path"].name.removesuffix(".safetensors")
        out = WEIGHTS_DIR / f"{name}{reference.SUFFIX}"
        atomic_json(
            out,
            json_safe(
                {
                    "format": reference.FORMAT,
                    "version": reference.VERSION,
                    "ut": ref["ut"],
                    "ut_file_sha256": sha256_file(ref["path"]),
                    "made_by": f"python scripts/ship_ut_references.py {task} --patch-sizes "
                    + " ".join(map(str, patch_sizes))
                    + (
                        " --from-cache (entries computed by forgetir verify)"
                        if args.from_cache
                        else ""
                    ),
                    "created": utc_now(),
                    "software": software_versions(),
                    "entries": entries,
                }
            ),
            allow_nan=False,
        )
        print(f"wrote {out} ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
