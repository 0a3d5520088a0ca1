"""Column patterns: ``column``, ``table.column``, ``schema.table.column``, with globs.

Each part is a glob (``*`` any run of characters, ``?`` exactly one; nothing else is
special) compared case-insensitively. A pattern is split at every dot, so names
that themselves contain dots cannot be written.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from hoopd.masking.rules import Column

PartMatcher = Callable[[str], bool]


def _part(glob: str) -> PartMatcher:
    folded = glob.casefold()
    if "*" not in folded and "?" not in folded:
        return folded.__eq__
    regex = re.compile(
        "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in folded),
        re.DOTALL,
    )
    return lambda value: regex.fullmatch(value) is not None


class ColumnPattern:
    """One compiled pattern.

    ``column`` matches a column of that name (or alias) wherever it comes from.
    ``table.column`` also needs the column's table to be that table in any schema,
    ``schema.table.column`` in that schema. When the table is not known (the column
    is an expression, such as ``email || '' AS email``) a qualified pattern is
    judged by its column part alone, failing closed, unless that part is a bare
    ``*``: ``users.*`` covers every column of ``users``, not every expression.
    """

    __slots__ = ("_any_column", "_column", "_schema", "_table", "pattern")

    def __init__(self, pattern: str) -> None:
        parts = pattern.split(".")
        if len(parts) > 3 or not all(parts):
            raise ValueError(
                f"column pattern {pattern!r} is not column, table.column or schema.table.column"
            )
        self.pattern = pattern
        *qualifiers, column = parts
        self._column = _part(column)
        self._any_column = column == "*"
        self._table = _part(qualifiers[-1]) if qualifiers else None
        self._schema = _part(qualifiers[0]) if len(qualifiers) == 2 else None

    def matches(self, column: Column) -> bool:
        # The name the client sees, or the table column it comes from: an alias does
        # not hide a column from a rule that names it.
        source = column.source
        if not self._column(column.name.casefold()) and not (
            source is not None and self._column(source.casefold())
        ):
            return False
        if self._table is None:
            return True
        if column.table is None:
            return not self._any_column
        schema, dot, table = column.table.casefold().partition(".")
        if not dot:
            schema, table = "", schema
        if not self._table(table):
            return False
        # A table given without its schema could live in any: fail closed.
        return self._schema is None or not schema or self._schema(schema)
