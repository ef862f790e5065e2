"""The result tables in docs/ are what the benchmark scripts print from the committed results.

``scripts/docs_tables.py`` regenerates each marked block from ``benchmarks/results/*.jsonl``
(``--write``); this test fails, naming the block, when the committed text differs: a table
edited by hand, or a results file changed without regenerating the docs.
"""

from __future__ import annotations

import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
docs_tables = runpy.run_path(str(ROOT / "scripts" / "docs_tables.py"), run_name="docs_tables")


def test_generated_tables_match_the_committed_results() -> None:
    assert docs_tables["sync"](write=False) == []


def test_the_check_catches_an_edited_table(tmp_path: Path, monkeypatch) -> None:
    block = docs_tables["BLOCKS"][0]
    fresh = docs_tables["render"](block)
    assert "| forget | method |" in fresh and block.results in fresh
    edited = fresh.replace("| dehaze |", "| dehaze (edited) |", 1)
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "page.md"
    page.write_text(
        f"<!-- BEGIN GENERATED {block.id} -->\n{edited}<!-- END GENERATED {block.id} -->\n"
    )
    sync = docs_tables["sync"]
    monkeypatch.setitem(sync.__globals__, "ROOT", tmp_path)
    problems = sync(write=False)
    assert f"page.md: block {block.id!r} differs from the results file" in problems
    sync(write=True)
    assert fresh in page.read_text()
    assert not [p for p in sync(write=False) if "differs" in p]
