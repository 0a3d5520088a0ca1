"""Name patterns: globs over plain names, and over SQL's schema-qualified names.

A glob is literal text in which ``*`` stands for any run of characters (none
included) and ``?`` for exactly one; no other character is special, so names
may contain ``[``, ``.`` or ``\\`` without escaping.

SQL names are compared as PostgreSQL reads them: a pattern is split at dots
outside double quotes, unquoted parts are folded to lower case, quoted parts are
taken exactly (``"MyTable"``). docs/policy.md explains how qualified and
unqualified names meet.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Final

_CACHE_ENTRIES: Final = 4096

TABLE_SCHEMAS: Final = ("public",)
"""Where an unqualified table name is taken to live: PostgreSQL's default search_path
(apart from ``"$user"``)."""

FUNCTION_SCHEMAS: Final = ("pg_catalog", "public")
"""Where an unqualified function name is taken to live: ``pg_catalog`` is searched
first even when search_path does not name it."""

_ASCII_LOWER: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def has_wildcard(pattern: str) -> bool:
    return "*" in pattern or "?" in pattern


def _glob_regex(pattern: str) -> str:
    return "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)


def _part_matcher(pattern: str) -> Callable[[str], bool]:
    if not has_wildcard(pattern):
        return pattern.__eq__
    regex = re.compile(_glob_regex(pattern) + r"\Z", re.DOTALL)
    return lambda value: regex.match(value) is not None


class Globs:
    """Any-of globs over plain names (connections, subjects, groups, protocols).

    Matching is exact and case-sensitive apart from the wildcards.
    """

    __slots__ = ("_exact", "_regex", "patterns")

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns: tuple[str, ...] = tuple(patterns)
        self._exact = frozenset(p for p in self.patterns if not has_wildcard(p))
        wild = [p for p in self.patterns if has_wildcard(p)]
        self._regex = (
            re.compile("(?:" + "|".join(_glob_regex(p) for p in wild) + r")\Z", re.DOTALL)
            if wild
            else None
        )

    def matches(self, value: str) -> bool:
        if value in self._exact:
            return True
        return self._regex is not None and self._regex.match(value) is not None

    def first_match(self, value: str) -> str | None:
        """The first pattern (in the order written) that ``value`` matches."""
        if not self.matches(value):
            return None
        for pattern in self.patterns:
            if _part_matcher(pattern)(value):
                return pattern
        return None  # pragma: no cover - matches() said one does


def split_sql_name(text: str) -> tuple[tuple[str, ...], str | None]:
    """The parts of a dotted SQL name, unquoted, unquoted parts folded to lower case.

    Returns the parts and ``None``, or a best-effort split and what is wrong with
    the text (an unterminated quote, an empty part). Never raises.
    """
    parts: list[str] = []
    current: list[str] = []
    quoted = was_quoted = False
    problem: str | None = None
    i = 0
    while i < len(text):
        ch = text[i]
        if quoted:
            if ch == '"' and text[i + 1 : i + 2] == '"':
                current.append('"')
                i += 1
            elif ch == '"':
                quoted = False
            else:
                current.append(ch)
        elif ch == '"':
            quoted = was_quoted = True
        elif ch == ".":
            parts.append(_finish(current, was_quoted))
            current, was_quoted = [], False
        else:
            current.append(ch)
        i += 1
    parts.append(_finish(current, was_quoted))
    if quoted:
        problem = "has an unterminated double quote"
    elif any(part == "" for part in parts):
        problem = "has an empty part (two dots in a row, or a dot at an end)"
    return tuple(parts), problem


def _finish(chars: list[str], quoted: bool) -> str:
    text = "".join(chars)
    return text if quoted else text.translate(_ASCII_LOWER)


def check_sql_pattern(pattern: str) -> str | None:
    """What is wrong with a table or function pattern, or ``None``."""
    parts, problem = split_sql_name(pattern)
    if problem is not None:
        return problem
    if len(parts) > 3:
        return "has more than three parts (database.schema.name at most)"
    return None


class SqlNames:
    """Any-of globs over schema-qualified SQL names (tables or functions).

    A pattern of one part matches a name's last part, whatever schema is written.
    A pattern with a schema matches names written with a matching schema, and
    unqualified names as if written in one of ``implicit_schemas``. A pattern's
    database part matches any name written without one (the current database).
    Patterns must have passed :func:`check_sql_pattern`.
    """

    __slots__ = ("_cache", "_compiled", "_implicit", "patterns")

    def __init__(self, patterns: Sequence[str], implicit_schemas: tuple[str, ...]) -> None:
        self.patterns: tuple[str, ...] = tuple(patterns)
        self._compiled = tuple(
            tuple(_part_matcher(part) for part in split_sql_name(p)[0]) for p in self.patterns
        )
        self._implicit = implicit_schemas
        # Names repeat from statement to statement; a bounded memo keeps judge cheap.
        # Plain dict operations are atomic, so sharing it between threads is safe.
        self._cache: dict[str, str | None] = {}

    def first_match(self, name: str) -> str | None:
        """The first pattern ``name`` matches, or ``None``."""
        try:
            return self._cache[name]
        except KeyError:
            pass
        result = self._search(name)
        if len(self._cache) >= _CACHE_ENTRIES:
            self._cache.clear()
        self._cache[name] = result
        return result

    def any_match(self, names: Iterable[str]) -> tuple[str, str] | None:
        """The first ``(name, pattern)`` pair that matches, or ``None``."""
        for name in names:
            pattern = self.first_match(name)
            if pattern is not None:
                return name, pattern
        return None

    def _search(self, name: str) -> str | None:
        parts = split_sql_name(name)[0]
        for pattern, matchers in zip(self.patterns, self._compiled, strict=True):
            if self._matches(matchers, parts):
                return pattern
        return None

    def _matches(self, matchers: tuple[Callable[[str], bool], ...], parts: tuple[str, ...]) -> bool:
        if len(matchers) == 1:
            return matchers[0](parts[-1])
        candidates = [parts] if len(parts) > 1 else [(s, *parts) for s in self._implicit]
        for candidate in candidates:
            # Align from the right: a name without a database part is in the current one.
            k = min(len(matchers), len(candidate))
            pairs = zip(matchers[len(matchers) - k :], candidate[len(candidate) - k :], strict=True)
            if all(match(part) for match, part in pairs):
                return True
        return False
