"""``forgetir demo``: the main job on the embedded default, in a few minutes on 2 CPU cores.

It takes the shipped tiny all-in-one model (``shipped:before``) and forgets one degradation type
(dehaze by default) twice, side by side: with the seed paper's method and with the method
recommended for that request (:mod:`forgetir.methods.recommend`). BEFORE and UT (the shipped
model retrained without that task) are evaluated once for both, on the shipped photos and
held-out dead leaves; each run is verified (paired verdict, output gap, relearning, anamnesis
index, cost) and gets its report. One table with a verdict per method closes it. Nothing is
downloaded.

Example:
    $ forgetir demo --forget derain --out runs/demo-derain
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from forgetir.degradations import forget_types
from forgetir.options import UnlearnOptions
from forgetir.unlearn import run_unlearn

DEMO_FORGET = forget_types()


def _fresh(base: Path) -> Path:
    if not base.exists():
        return base
    i = 2
    while Path(f"{base}-{i}").exists():
        i += 1
    return Path(f"{base}-{i}")


def demo_methods(forget: str, given: Sequence[str] | None) -> list[tuple[str, str]]:
    """(method, why) of each run: the given methods, else the seed paper's and the
    recommended one.

    Example:
        >>> [m for m, _ in demo_methods("dehaze", None)]
        ['accurate-forgetting', 'proxy-retrain-guarded']
    """
    from forgetir.methods import get_method
    from forgetir.methods.recommend import PAPER_METHOD, recommended_method

    if given:
        for name in given:
            get_method(name)  # an unknown name fails now, listing the valid ones
        return [(name, "given with --method") for name in dict.fromkeys(given)]
    best, why = recommended_method([forget])
    runs = [(PAPER_METHOD, "the seed paper's method")]
    return runs + ([(best, f"recommended: {why}")] if best != PAPER_METHOD else [])


def run_demo(
    forget: str,
    base: UnlearnOptions,
    out: str | Path | None = None,
    methods: Sequence[str] | None = None,
) -> dict[str, Path]:
    """Forget ``forget`` from ``shipped:before`` with each of ``methods`` (default: the seed
    paper's and the recommended one, :func:`demo_methods`), each run verified and reported into
    ``out/METHOD``; print the side-by-side table; return the run folders by method. ``base``
    holds the options every run shares (``base.steps`` None: each method's recommended steps).
    """
    import torch

    from forgetir.scoring.inference import reuse_outputs

    root = Path(out) if out else _fresh(Path("runs") / "demo")
    runs_of = demo_methods(forget, methods)
    t0 = time.time()
    print(
        f"forgetir demo: forgetting {forget} from the shipped promptir-tiny with "
        f"{', '.join(m for m, _ in runs_of)}; writing {root} "
        f"(torch threads: {torch.get_num_threads()})"
    )
    runs: dict[str, Path] = {}
    with reuse_outputs():  # BEFORE and UT restore each test image once for all the runs
        for method, why in runs_of:
            runs[method] = _demo_run(forget, base, method, why, root / method)
    print("\n" + side_by_side(runs, forget))
    print(f"done in {time.time() - t0:.0f} s. Reports:")
    for method, folder in runs.items():
        print(f"  {method}: {(folder / 'report.html').resolve()}")
    return runs


def _demo_run(forget: str, base: UnlearnOptions, method: str, why: str, out: Path) -> Path:
    """One method's run of the demo into ``out``, with its report."""
    from forgetir.methods.recommend import method_and_schedule
    from forgetir.report.write import write_report

    print(f"\n== {method} ({why})")
    # A method's own recommended budget (e.g. proxy-retrain: 30 steps at 32x32) unless given.
    _, schedule, _ = method_and_schedule(method, [forget], {"steps": base.steps})
    steps, patch = schedule["steps"], schedule["patch_size"]
    opts = dataclasses.replace(base, method=method, **schedule)
    run_unlearn(
        "shipped:before",
        out,
        opts,
        forget=[forget],
        command=f"forgetir unlearn shipped:before --forget {forget} --method {method} "
        f"--target {base.target} --steps {steps} --batch-size {schedule['batch_size']} "
        f"--patch-size {patch} --max-side "
        f"{base.test_max_side or 0} --relearn-steps {base.relearn_steps} --ain-max-steps "
        f"{base.ain_max_steps}",
    )
    write_report(out)
    return out


def side_by_side(runs: dict[str, Path], forget: str) -> str:
    """One table of the runs' quality rows (input, BEFORE, UT once; one row per method) and a
    verdict line per method, with the protocol and test data they rest on."""
    from forgetir.scoring.evaluate import format_table

    rows: dict[str, Any] = {}
    verdicts: list[str] = []
    source = protocol = ""
    for method, out in runs.items():
        quality = json.loads((out / "quality.json").read_text())
        protocol, source = quality.get("protocol", ""), quality.get("test_set", "")
        got = quality["rows"]
        for label in ("input", "BEFORE", "UT"):
            if label in got:
                rows.setdefault(label, got[label])
        rows[method] = got["unlearned"]
        verdict = json.loads((out / "verify.json").read_text()).get("verdict") or {}
        verdicts.append(f"{method}: {verdict.get('line', 'no verdict (verification skipped)')}")
    table = format_table(rows, protocol, source)
    return f"Forgetting {forget}, side by side:\n{table}\n" + "\n".join(verdicts)
