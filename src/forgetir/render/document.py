"""The report's document model: HTML and Markdown built side by side, so they never drift.

Each proof check renders itself into a :class:`Doc` (:meth:`forgetir.checks.base.Check.render`);
:mod:`forgetir.report.write` assembles the page.

Example:
    >>> import tempfile, pathlib
    >>> doc = Doc(pathlib.Path(tempfile.mkdtemp()), pathlib.Path("."))
    >>> doc.para("a < b")
    >>> doc.html[-1]
    '<p>a &lt; b</p>'
"""

from __future__ import annotations

import base64
import html
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from forgetir.atomic import atomic_write
from forgetir.render.figures import num

__all__ = ["CSS", "Doc", "esc", "fmt"]

CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;margin:0;
 background:#f6f7f9;color:#1d2330;line-height:1.45}
main{max-width:1180px;margin:0 auto;padding:24px 28px 60px;background:#fff}
h1{font-size:1.6em;margin:.2em 0 .1em}h2{border-bottom:2px solid #e3e6eb;padding-bottom:4px;
 margin-top:2em}h3{margin-top:1.4em}
p.sub{color:#5a6270;margin-top:0}nav{background:#f0f2f5;padding:8px 12px;border-radius:6px}
nav a{margin-right:14px;color:#2456a6;text-decoration:none}
table{border-collapse:collapse;margin:8px 0 14px;font-size:.92em}
th,td{border:1px solid #d5d9e0;padding:4px 9px;text-align:right;white-space:nowrap}
th{white-space:normal}table.wrap td{white-space:normal}table.wrap td:nth-child(n+3),
table.wrap th:nth-child(n+3){text-align:left}
th{background:#eef1f5}td.l,th.l{text-align:left}
.forget{background:#fdecec}th.forget{background:#f8d4d4}
caption{caption-side:top;text-align:left;color:#5a6270;font-size:.9em;padding-bottom:4px;
 white-space:normal}
figure{margin:12px 0;overflow-x:auto}figure img{max-width:100%;height:auto;
 border:1px solid #e3e6eb}figcaption{color:#5a6270;font-size:.9em}
.kv td:first-child{text-align:left;font-weight:600;background:#f8f9fb}.kv td{text-align:left;
 white-space:normal;word-break:break-all}
.bad{color:#b00020;font-weight:700}.ok{color:#1b7f3b;font-weight:600}
code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.88em}
pre{background:#f4f5f7;padding:8px;overflow-x:auto;white-space:pre-wrap}
.scroll{overflow-x:auto}
"""


def fmt(v: Any, digits: int = 2, signed: bool = False, pct: bool = False) -> str:
    """A number for a table or a summary line: "–" when absent, inf/nan spelt out.

    Example:
        >>> fmt(0.1234, 1, pct=True), fmt(None), fmt(1.5, signed=True)
        ('12.3%', '–', '+1.50')
    """
    x = num(v)
    if x is None:
        return "–"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if math.isnan(x):
        return "nan"
    if pct:
        return f"{x:.{digits}%}"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def esc(x: Any) -> str:
    return html.escape("–" if x is None else str(x), quote=True)


def _m(x: Any) -> str:
    # Markdown renderers pass raw HTML through: escape it there too.
    return html.escape(str(x), quote=False)


class Doc:
    """Builds the HTML and Markdown bodies side by side, so they never drift apart."""

    def __init__(self, files_dir: Path, run_dir: Path) -> None:
        self.html: list[str] = []
        self.md: list[str] = []
        self.files_dir = files_dir
        self.run_dir = run_dir
        self.figures: dict[str, str] = {}

    def heading(self, level: int, text: str, anchor: str | None = None) -> None:
        idattr = f' id="{esc(anchor)}"' if anchor else ""
        self.html.append(f"<h{level}{idattr}>{esc(text)}</h{level}>")
        self.md.append(f"\n{'#' * level} {_m(text)}\n")

    def para(self, text: str, cls: str | None = None) -> None:
        c = f' class="{esc(cls)}"' if cls else ""
        self.html.append(f"<p{c}>{esc(text)}</p>")
        self.md.append(f"{_m(text)}\n")

    def table(
        self,
        header: Sequence[str],
        rows: Sequence[Sequence[Any]],
        caption: str | None = None,
        forget_cols: Sequence[int] = (),
        left_cols: int = 1,
        cls: str | None = None,
    ) -> None:
        def cell(tag: str, j: int, v: Any) -> str:
            classes = (["l"] if j < left_cols else []) + (["forget"] if j in forget_cols else [])
            if isinstance(v, str) and v.startswith("MISMATCH"):
                classes.append("bad")
            c = f' class="{" ".join(classes)}"' if classes else ""
            return f"<{tag}{c}>{esc(v)}</{tag}>"

        table_class = f' class="{esc(cls)}"' if cls else ""
        t = [f'<div class="scroll"><table{table_class}>']
        if caption:
            t.append(f"<caption>{esc(caption)}</caption>")
        t.append("<tr>" + "".join(cell("th", j, h) for j, h in enumerate(header)) + "</tr>")
        for r in rows:
            t.append("<tr>" + "".join(cell("td", j, v) for j, v in enumerate(r)) + "</tr>")
        t.append("</table></div>")
        self.html.append("".join(t))

        def md(v: Any) -> str:
            return _m("–" if v is None else v).replace("|", "\\|").replace("\n", " ")

        if caption:
            self.md.append(f"{_m(caption)}\n")
        self.md.append("| " + " | ".join(md(h) for h in header) + " |")
        self.md.append("|" + "---|" * len(header))
        self.md += ["| " + " | ".join(md(v) for v in r) + " |" for r in rows]
        self.md.append("")

    def image(self, png: bytes, name: str, caption: str, existing: Path | None = None) -> None:
        """Embed ``png``; Markdown links ``existing`` (a grid in place) or a new file."""
        if existing is None:
            path = atomic_write(self.files_dir / name, png)
        else:
            path = existing
        rel = os.path.relpath(path, self.run_dir).replace(os.sep, "/")
        self.figures[name] = rel
        data = base64.b64encode(png).decode("ascii")
        self.html.append(
            f'<figure><img alt="{esc(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>"
        )
        alt = _m(caption).replace("[", "(").replace("]", ")")
        self.md.append(f"![{alt}]({rel})\n")

    def pre(self, text: str) -> None:
        self.html.append(f"<pre>{esc(text)}</pre>")
        self.md.append(f"```\n{text}\n```\n")

    def details(self, summary: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.html.append(f"<details><summary>{esc(summary)}</summary>")
        self.md.append(f"{_m(summary)}:\n")
        self.table(header, rows, left_cols=len(header))
        self.html.append("</details>")
