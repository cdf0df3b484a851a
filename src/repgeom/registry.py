"""One generic registry: name → implementation, for every pluggable kind of thing.

Model sources, corpus kinds, embedding runtimes, sequence families, merge methods, STS heads and pretraining
kinds each keep one :class:`Registry`; the config schema's allowed names are tested against its keys, so a name
is written in one place. An unknown name raises :class:`UnknownNameError` with "did you mean …?".
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(ValueError, KeyError):
    """A name no registry entry has; a ValueError for callers and a KeyError for mapping users."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Registry(Mapping[str, T], Generic[T]):
    """A read-only mapping filled by :meth:`register`; ``kind`` names the thing in error messages."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: T | None = None) -> Callable[[T], T] | T:
        """Add ``obj`` under ``name``; without ``obj``, a decorator that does so. A name is registered once."""

        def add(o: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = o
            return o

        return add if obj is None else add(obj)

    def get_or_raise(self, name: str, where: str = "") -> T:
        """The entry for ``name``, or an error naming ``where`` (e.g. a config key), the known names and the
        closest ones."""
        try:
            return self._items[name]
        except (KeyError, TypeError):
            raise UnknownNameError(self.unknown(name, where)) from None

    def unknown(self, name: object, where: str = "") -> str:
        """The message for an unknown ``name``."""
        close = difflib.get_close_matches(str(name), list(self._items), n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        at = f"{where} = " if where else ""
        return f"{at}{name!r}: unknown {self.kind} (known: {', '.join(self._items)}){hint}"

    def __getitem__(self, name: str) -> T:
        return self.get_or_raise(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self._items)})"
