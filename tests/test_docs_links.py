"""Every relative link and #anchor in README.md and docs/*.md resolves.

Anchors are GitHub's: the heading text lower-cased, punctuation other than ``-`` and ``_``
removed, spaces turned into ``-``, and ``-1``, ``-2``, ... appended to repeats. Links and
headings inside fenced code blocks and inline code are not links, so they are skipped.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")


def prose_lines(text: str) -> list[str]:
    """The page's lines outside fenced code blocks, with inline code spans blanked out."""
    lines, fenced = [], False
    for line in text.split("\n"):
        if FENCE.match(line):
            fenced = not fenced
            lines.append("")
            continue
        lines.append("" if fenced else re.sub(r"`[^`]*`", "``", line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text (links reduced to their text, code to its text)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)  # \w keeps letters and digits of any script, and _
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown page, repeats numbered as GitHub numbers them."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    fenced = False
    for line in path.read_text(encoding="utf-8").split("\n"):
        if FENCE.match(line):
            fenced = not fenced
            continue
        m = None if fenced else HEADING.match(line)
        if m:
            base = slug(m.group(2))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of every Markdown link and image on the page, in prose."""
    found = []
    for no, line in enumerate(prose_lines(path.read_text(encoding="utf-8")), 1):
        found += [(no, m.group(1)) for m in LINK.finditer(line)]
    return found


def broken(path: Path) -> list[str]:
    """The page's links that do not resolve, one message each."""
    problems = []
    for no, target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
            continue
        file_part, _, fragment = target.partition("#")
        dest = (path.parent / unquote(file_part)).resolve() if file_part else path
        where = f"{path.relative_to(ROOT)}:{no}: {target}"
        if not dest.is_relative_to(ROOT):
            problems.append(f"{where}: leaves the repository")
        elif not dest.exists():
            problems.append(f"{where}: {dest.relative_to(ROOT)} does not exist")
        elif fragment:
            if dest.suffix != ".md":
                problems.append(f"{where}: an anchor into a file that is not Markdown")
            elif unquote(fragment) not in anchors(dest):
                problems.append(f"{where}: no heading with anchor #{fragment} in {dest.name}")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    assert broken(page) == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_page_cites_a_file_outside_the_repository(page: Path) -> None:
    # The design notes the project started from are not in the repository: docs/design.md
    # says what they said, in our words, and pages cite that.
    text = page.read_text(encoding="utf-8").lower()
    assert "design notes" not in text


def test_the_checker_catches_a_broken_link_and_anchor(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "a.md").write_text("# A `b` title, (x)!\n\n## Repeat\n\n## Repeat\n")
    page = tmp_path / "p.md"
    page.write_text(
        "[ok](a.md#a-b-title-x) [ok](a.md#repeat-1) [ok](#here) ![img](a.md)\n"
        "# Here\n"
        "[bad](missing.md) [bad](a.md#repeat-2) [bad](#nowhere) [out](../x.md)\n"
        "`[in code](missing.md)`\n"
        "```\n[in a fence](missing.md)\n# not a heading\n```\n"
        "[web](https://example.org/x#y)\n"
    )
    problems = broken(page)
    assert len(problems) == 4, problems
    assert [p.split(": ")[1] for p in problems] == [
        "missing.md",
        "a.md#repeat-2",
        "#nowhere",
        "../x.md",
    ]
