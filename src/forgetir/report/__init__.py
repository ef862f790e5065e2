"""The report of one unlearning run: :mod:`.write` reads the run folder and writes
``report.html``, ``report.md`` and ``report.json``; :mod:`.sections` renders each section.

Example:
    >>> from forgetir.report import write_report
    >>> callable(write_report)
    True
"""

from forgetir.report.write import write_report

__all__ = ["write_report"]
