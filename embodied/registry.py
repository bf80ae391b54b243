"""One generic name registry: refuses a name twice, lists what exists, answers "did you mean".

Every table of named things in the project (codecs, entropy coders, traces, CLI commands,
benchmarks) is a :class:`Registry` of one spec object per entry (CompressAI's zoo shows what
parallel string tables do: a name spelled two ways silently loads the wrong model). Heavy
entries are string entry points, ``"package.module:attr"``, imported by :func:`load_entry`
only when used (gymnasium's trick), so importing a registry costs nothing::

    COMMANDS: Registry[Command] = Registry("command")
    COMMANDS.add("eval", Command(...))
    COMMANDS.get("evl")   # UnknownName: unknown command 'evl'. Did you mean 'eval'? Valid: ...
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class UnknownName(KeyError, ValueError):
    """No entry of that name; the message lists the valid ones (and the closest one).

    A ``KeyError`` for mapping-style callers and a ``ValueError`` for argument checking;
    ``str()`` is the message itself, not ``KeyError``'s repr of it.
    """

    def __init__(self, message: str, name: str, valid: list[str]) -> None:
        super().__init__(message)
        self.name = name
        self.valid = valid

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class DuplicateName(ValueError):
    """A name registered twice."""


def load_entry(entry: str) -> Any:
    """Import ``"package.module:attr"`` and return the attribute."""
    module, sep, attr = entry.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"entry point {entry!r} must read 'package.module:attr'")
    return getattr(importlib.import_module(module), attr)


class Registry(Generic[T]):
    """Named entries of one kind, in registration order.

    ``kind`` names the entries in messages ("codec", "trace", "benchmark").
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def add(self, name: str, value: T) -> T:
        """Register ``value`` as ``name``; a name already taken raises :class:`DuplicateName`."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")
        if name in self._entries:
            raise DuplicateName(
                f"{self.kind} {name!r} is already registered ({self._entries[name]!r})"
            )
        self._entries[name] = value
        return value

    def get(self, name: str) -> T:
        """The entry called ``name``, or :class:`UnknownName` with the valid names."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            pass
        valid = self.names()
        close = difflib.get_close_matches(str(name), valid, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownName(
            f"unknown {self.kind} {name!r}.{hint} Valid {self.kind}s: {', '.join(valid) or 'none'}",
            str(name),
            valid,
        )

    __getitem__ = get

    def names(self) -> list[str]:
        return list(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())

    def values(self) -> list[T]:
        return list(self._entries.values())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"


__all__ = ["DuplicateName", "Registry", "UnknownName", "load_entry"]
