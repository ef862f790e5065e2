"""``forgetir report RUN_DIR``: write the HTML, Markdown and JSON reports of a run folder.

Example:
    $ forgetir report runs/demo
"""

from __future__ import annotations

import argparse

from forgetir.report.write import write_report

HELP = "write the HTML/Markdown/JSON report (with audit manifest) of an unlearning run"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``forgetir report``."""
    parser.add_argument(
        "run_dir", metavar="RUN_DIR", help="a run directory (see forgetir.report.write)"
    )


def run(args: argparse.Namespace) -> int:
    """Write the three reports; print their paths."""
    paths = write_report(args.run_dir)
    for key in ("html", "md", "json"):
        print(f"wrote {paths[key]}")
    return 0
