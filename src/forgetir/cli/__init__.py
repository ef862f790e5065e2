"""The ``forgetir`` command line: one thin module per command, each parsing its arguments into
typed options and calling the library (no argparse below this package).

Example:
    >>> from forgetir.cli import build_parser
    >>> build_parser().parse_args(["models"]).command
    'models'
"""

from forgetir.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
