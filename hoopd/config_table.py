"""Reading one TOML table of the configuration, collecting every problem.

:class:`Table` getters mark their key as known and, on a bad value, record a
problem naming the file, the key and what is wrong, then return a placeholder, so
that reading goes on and a user sees every problem of a file at once.
:meth:`Table.done` reports the keys nobody asked for as unknown. Values are
quoted only in a shortened, kind-only form (:func:`shown`), never a secret whole.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, cast


def shown(value: object) -> str:
    """A value as it may appear in a message: short, with its TOML kind when not scalar."""
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        text = repr(value)
        return text if len(text) <= 60 else text[:56] + "...'"
    return f"a {type(value).__name__}"


class Problems:
    """The problems found so far, each as ``FILE: KEY: MESSAGE``."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self.lines: list[str] = []

    def add(self, key: str, message: str) -> None:
        self.lines.append(f"{self.source}: {key}: {message}")


ABSENT: Final = object()
"""What :meth:`Table.raw` returns for a key that is not written."""


class Table:
    """One TOML table being read.

    Each getter marks its key as known and, on a bad value, records a problem and
    returns a placeholder so that reading goes on and every problem is collected.
    :meth:`done` reports the keys nobody asked for as unknown. A table standing in for
    one that is missing or of the wrong type is ``silent``: its problems are dropped,
    as the missing table has already been reported.
    """

    def __init__(
        self,
        data: Mapping[str, Any],
        prefix: str,
        problems: Problems,
        base: Path,
        *,
        silent: bool = False,
    ) -> None:
        self.data, self.prefix, self.problems, self.base = data, prefix, problems, base
        self.silent = silent
        self.known: set[str] = set()
        self.failed: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def problem(self, name: str, message: str) -> None:
        self.failed.add(name)
        if not self.silent:
            self.problems.add(self.key(name), message)

    def done(self) -> None:
        for name in self.data:
            if name not in self.known:
                self.problem(name, "unknown key")

    def present(self, name: str) -> bool:
        """Whether the key is written (it then counts as known)."""
        self.known.add(name)
        return name in self.data

    def raw(self, name: str, *, required: bool = False) -> Any:
        self.known.add(name)
        if name in self.data:
            return self.data[name]
        if required:
            self.problem(name, "missing (required)")
        return ABSENT

    def _typed(self, name: str, kind: type | tuple[type, ...], what: str, required: bool) -> Any:
        value = self.raw(name, required=required)
        if value is ABSENT:
            return ABSENT
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            self.problem(name, f"must be {what} (got {shown(value)})")
            return ABSENT
        return value

    def text(self, name: str, *, check: Callable[[str], str | None] | None = None) -> str:
        """A required, non-empty string ("" when absent or bad)."""
        value = self._typed(name, str, "a string", True)
        return self._checked(name, value, check) or ""

    def optional_text(
        self, name: str, *, check: Callable[[str], str | None] | None = None
    ) -> str | None:
        return self._checked(name, self._typed(name, str, "a string", False), check)

    def _checked(
        self, name: str, value: Any, check: Callable[[str], str | None] | None
    ) -> str | None:
        if value is ABSENT:
            return None
        if not value.strip():
            self.problem(name, "must not be empty")
            return None
        error = check(value) if check else None
        if error:
            self.problem(name, error)
            return None
        return cast(str, value)

    def choice(self, name: str, options: Sequence[str], default: str) -> str:
        """One of ``options``; required when ``default`` is not among them."""
        value = self._typed(name, str, "a string", False)
        if value is ABSENT:
            if default not in options and name not in self.failed:
                self.problem(name, f"missing (required; one of {', '.join(options)})")
            return default
        if value not in options:
            self.problem(name, f"must be one of {', '.join(options)} (got {shown(value)})")
            return options[0]
        return cast(str, value)

    def number(self, name: str, default: float, *, allow_zero: bool = False) -> float:
        value = self._typed(name, (int, float), "a number", False)
        if value is ABSENT:
            return default
        if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
            limit = "zero or more" if allow_zero else "more than zero"
            self.problem(name, f"must be a finite number {limit} (got {shown(value)})")
            return default
        return float(value)

    def integer(self, name: str, default: int | None, low: int, high: int | None) -> int:
        """An integer in [low, high]; ``default=None`` makes it required."""
        value = self._typed(name, int, "an integer", default is None)
        if value is ABSENT:
            return default if default is not None else low
        if value < low or (high is not None and value > high):
            bounds = f"from {low} to {high}" if high is not None else f"of at least {low}"
            self.problem(name, f"must be an integer {bounds} (got {shown(value)})")
            return low
        return cast(int, value)

    def boolean(self, name: str, default: bool) -> bool:
        value = self._typed(name, bool, "true or false", False)
        return default if value is ABSENT else cast(bool, value)

    def path(self, name: str, *, required: bool = False) -> Path | None:
        """A path; relative ones are taken from the config file's directory."""
        value = self._typed(name, str, "a string", required)
        if value is ABSENT:
            return None
        if not value:
            self.problem(name, "must not be empty")
            return None
        return self.base / cast(str, value)

    def text_list(self, name: str) -> tuple[str, ...]:
        value = self._typed(name, list, "an array of strings", False)
        if value is ABSENT:
            return ()
        items: list[str] = []
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                self.problem(f"{name}[{i}]", f"must be a non-empty string (got {shown(item)})")
            elif item not in items:
                items.append(item)
        return tuple(items)

    def text_map(self, name: str) -> Mapping[str, str]:
        value = self._typed(name, dict, "a table of strings", False)
        if value is ABSENT:
            return MappingProxyType({})
        for key, item in value.items():
            if not isinstance(item, str):
                self.problem(f"{name}.{key}", f"must be a string (got {shown(item)})")
        return MappingProxyType({k: v for k, v in value.items() if isinstance(v, str)})

    def table(self, name: str, *, required: bool = False) -> Table:
        value = self._typed(name, dict, "a table", required)
        if value is ABSENT:
            silent = self.silent or name in self.failed
            return Table({}, self.key(name), self.problems, self.base, silent=silent)
        return Table(value, self.key(name), self.problems, self.base, silent=self.silent)

    def tables(self, name: str) -> list[Table]:
        value = self._typed(name, list, f"an array of tables, written [[{name}]]", False)
        if value is ABSENT:
            return []
        tables: list[Table] = []
        for i, item in enumerate(value):
            key = f"{self.key(name)}[{i}]"
            if not isinstance(item, dict):
                self.problem(f"{name}[{i}]", f"must be a table (got {shown(item)})")
                item = {}
            tables.append(Table(item, key, self.problems, self.base, silent=self.silent))
        return tables
