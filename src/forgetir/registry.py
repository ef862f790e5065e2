"""One :class:`Registry` type for models, methods, degradations and proof checks.

Example:
    >>> from forgetir.registry import Registry
    >>> colours = Registry("colour")
    >>> @colours.register("red")
    ... def red():
    ...     return (1, 0, 0)
    >>> colours.get("red")()
    (1, 0, 0)
    >>> colours.names()
    ['red']
    >>> colours.get("blue")
    Traceback (most recent call last):
    ...
    forgetir.errors.UnknownNameError: unknown colour 'blue'; valid choices: red
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from forgetir.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> object, in registration order; an unknown name lists the valid ones."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def add(self, name: str, obj: T) -> T:
        """Register ``obj`` under ``name``; a name registered twice is a programming error."""
        if name in self._items:
            raise ValueError(f"{self.kind} name {name!r} registered twice")
        self._items[name] = obj
        return obj

    def remove(self, name: str) -> T:
        """Unregister ``name`` (a test's temporary entry); an unknown name lists the valid ones."""
        obj = self.get(name)
        del self._items[name]
        return obj

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of :meth:`add`."""
        return lambda obj: self.add(name, obj)

    def get(self, name: str) -> T:
        if name not in self._items:
            raise UnknownNameError(self.kind, name, self._items)
        return self._items[name]

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
