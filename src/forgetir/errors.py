"""forgetir's own error types: one per kind of fault, all under :class:`ForgetirError`.

The CLI catches :class:`ForgetirError` (and only it) and prints one line naming the culprit with
exit code 2; anything else is a bug and keeps its traceback. Each type also subclasses the
built-in it refines (``ValueError``, ``FileNotFoundError``...) so that library callers who catch
the built-in keep working.

Example:
    >>> from forgetir.errors import ForgetirError, UnknownNameError
    >>> try:
    ...     raise UnknownNameError("model", "nope", ["promptir", "adair"])
    ... except ForgetirError as e:
    ...     print(e)
    unknown model 'nope'; valid choices: adair, promptir
"""

from __future__ import annotations

from collections.abc import Iterable


class ForgetirError(Exception):
    """Base of every error forgetir raises on purpose (bad input, bad state)."""


class UnknownNameError(ForgetirError, KeyError, ValueError):
    """A registry lookup with a name that is not registered; lists the valid names.

    Both a ``KeyError`` (a failed lookup) and a ``ValueError`` (a bad option value), so callers
    written against either keep working.
    """

    def __init__(self, kind: str, name: str, choices: Iterable[str]) -> None:
        self.kind, self.name, self.choices = kind, name, sorted(choices)
        super().__init__(f"unknown {kind} {name!r}; valid choices: {', '.join(self.choices)}")

    def __str__(self) -> str:  # KeyError's str() would quote the whole message
        return str(self.args[0])


class InvalidInputError(ForgetirError, ValueError):
    """An option, hyperparameter, manifest or value that is out of range or contradictory."""


class InputFileError(ForgetirError, ValueError):
    """A file or folder given as input is missing, unreadable, corrupt or of the wrong kind."""


class MissingInputError(InputFileError, FileNotFoundError):
    """A file or folder given as input does not exist (also a ``FileNotFoundError``)."""


class OutputPathError(ForgetirError, OSError):
    """An output path that cannot be written (a file where a folder is needed, no permission...)."""


class RunExistsError(OutputPathError, FileExistsError):
    """The output folder already holds a run (or other files) that a new run would overwrite."""


class IntegrityError(ForgetirError, ValueError):
    """A file whose recorded SHA-256 no longer matches: the run folder changed after the fact."""


class DeviceError(ForgetirError, ValueError):
    """A device that is unknown or not available here (``--device cuda`` on a CPU-only torch)."""
