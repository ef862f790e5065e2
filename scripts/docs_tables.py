"""Regenerate the result tables in docs/ from the committed results files, or check them.

Every generated table in a Markdown file under ``docs/`` sits between two markers::

    <!-- BEGIN GENERATED bench-forgetting-promptir -->
    ...
    <!-- END GENERATED bench-forgetting-promptir -->

and its text is what the benchmark script prints with ``--table-only`` on its results file
(``benchmarks/results/*.jsonl``), preceded by one line naming the command and the SHA-256 of
the results file it was read from. The hash, not a git commit, names the data: a commit that
changes a results file cannot know its own id, and the hash still holds in a copy without git.

Usage:
    python scripts/docs_tables.py --check   # exit 1, naming the block, if a table has drifted
    python scripts/docs_tables.py --write   # rewrite the blocks from the results files

``tests/test_docs_tables.py`` runs the check, so ``make test`` fails on a table edited by hand
or a results file changed without regenerating the docs.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import re
import runpy
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
RESULTS = BENCH / "results"
MARK = re.compile(
    r"(<!-- BEGIN GENERATED (?P<id>[\w.-]+) -->\n)(?P<body>.*?)(<!-- END GENERATED (?P=id) -->)",
    re.S,
)


@dataclass(frozen=True)
class Block:
    """One generated table: its id, the benchmark script and its arguments (``--table-only``
    and ``--results`` are added)."""

    id: str
    script: str
    results: str  # relative to benchmarks/results/
    args: tuple[str, ...] = ()

    def command(self) -> str:
        argv = [f"benchmarks/{self.script}", *self.args, "--results"]
        argv += [f"benchmarks/results/{self.results}", "--table-only"]
        return "PYTHONPATH=src python " + " ".join(shlex.quote(a) for a in argv)


_SCREEN = ("--tuning", "--types", "dehaze")
_BUDGET = ("--tuning", "--types", "denoise", "--methods", "proxy-retrain (ours)")
_BUDGET += ("finetune control",)

BLOCKS: tuple[Block, ...] = (
    Block("bench-verdicts", "bench_verdicts.py", "bench_verdicts.jsonl"),
    Block("bench-forgetting-promptir", "bench_forgetting.py", "bench_forgetting.jsonl"),
    Block(
        "bench-forgetting-adair",
        "bench_forgetting.py",
        "bench_forgetting_adair.jsonl",
        ("--testbed", "adair"),
    ),
    Block(
        "relearning-attacks-promptir",
        "bench_relearning_attacks.py",
        "bench_relearning_attacks.jsonl",
    ),
    Block(
        "relearning-attacks-adair",
        "bench_relearning_attacks.py",
        "bench_relearning_attacks_adair.jsonl",
        ("--testbed", "adair"),
    ),
    Block("guard-screen-promptir", "bench_forgetting.py", "guard_screen_promptir.jsonl", _SCREEN),
    Block(
        "guard-screen-adair",
        "bench_forgetting.py",
        "guard_screen_adair.jsonl",
        (*_SCREEN, "--testbed", "adair"),
    ),
    *(
        Block(
            f"denoise-budget-{n}",
            "bench_forgetting.py",
            f"denoise_budget/steps{n}.jsonl",
            (*_BUDGET, "--steps", str(n)),
        )
        for n in (30, 60, 120, 240)
    ),
)


def _drop_empty_tables(text: str) -> str:
    """Remove tables that have a header and no rows (a comparison with nothing to pair)."""
    out: list[str] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        header = lines[i].startswith("| ") and i + 1 < len(lines)
        if header and lines[i + 1].startswith("|---"):
            j = i + 2
            while j < len(lines) and lines[j].startswith("|"):
                j += 1
            if j == i + 2:  # header and separator only
                i = j
                continue
        out.append(lines[i])
        i += 1
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out))


def render(block: Block) -> str:
    """The block's Markdown: a provenance line, then what the benchmark prints."""
    results = RESULTS / block.results
    if not results.is_file():
        raise FileNotFoundError(f"{block.id}: results file {results} not found")
    digest = hashlib.sha256(results.read_bytes()).hexdigest()[:16]
    # The benchmark scripts import each other (bench_relearning_attacks <- bench_forgetting).
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    module = runpy.run_path(str(BENCH / block.script), run_name="docs_tables")
    argv = [*block.args, "--results", str(results), "--table-only"]
    buf = io.StringIO()
    threads = torch.get_num_threads()  # main() sets --threads; give the caller its own back
    try:
        with contextlib.redirect_stdout(buf):
            rc = module["main"](argv)
    finally:
        torch.set_num_threads(threads)
    if rc:
        raise RuntimeError(f"{block.id}: {block.command()} exited with {rc}")
    printed = _drop_empty_tables(buf.getvalue().strip())
    head = (
        f"*Generated by `python scripts/docs_tables.py --write` from "
        f"`benchmarks/results/{block.results}` (SHA-256 {digest}…): `{block.command()}`.*"
    )
    return f"{head}\n\n{printed}\n"


def _docs() -> list[Path]:
    return sorted((ROOT / "docs").glob("*.md"))


def sync(write: bool) -> list[str]:
    """Compare (or rewrite) every generated block; return the problems found."""
    known = {b.id: b for b in BLOCKS}
    problems: list[str] = []
    seen: set[str] = set()
    for path in _docs():
        text = path.read_text(encoding="utf-8")

        def replace(m: re.Match[str], path: Path = path) -> str:
            bid = m.group("id")
            if bid not in known:
                problems.append(f"{path.name}: unknown generated block {bid!r}")
                return m.group(0)
            seen.add(bid)
            fresh = render(known[bid])
            if m.group("body") != fresh:
                problems.append(f"{path.name}: block {bid!r} differs from the results file")
            return m.group(1) + fresh + m.group(4)

        new = MARK.sub(replace, text)
        if write and new != text:
            path.write_text(new, encoding="utf-8")
    problems += [f"block {b!r} appears in no docs/*.md file" for b in known if b not in seen]
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="fail if a block has drifted")
    mode.add_argument("--write", action="store_true", help="rewrite the blocks")
    args = p.parse_args(argv)
    problems = sync(write=args.write)
    if args.write:
        problems = [p for p in problems if "differs" not in p]
    for line in problems:
        print(f"docs_tables: {line}", file=sys.stderr)
    if not problems:
        print("docs_tables: every generated table matches its results file")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
