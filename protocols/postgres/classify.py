"""What a piece of SQL text will make PostgreSQL do, told from the text alone.

:func:`classify` parses the text with PostgreSQL's own grammar (libpg_query, through
pglast) and walks every statement's parse tree, subqueries and CTEs included
(:mod:`.tree_walk`, with :mod:`.parse_tree` and :mod:`.statement_kinds`). It
reports the statement kinds, the relations read and written, the functions called
and a few flags policy needs; docs/classification.md defines the vocabulary.

It never raises. Text the grammar rejects comes back as ``kinds={"unparseable"}``
with PostgreSQL's own error message, so that policy can fail closed on it.

Every statement through the gateway is classified, so results are cached twice:

* by exact text, so a repeated statement costs one dictionary lookup;
* by the text with its constants replaced by placeholders (pglast's ``normalize``),
  so statements that differ only in literal values (``... WHERE aid = 4711`` with a
  new number each time) cost one call into C instead of a parse and a tree walk.

The second key is normalised *text*, not libpg_query's 64-bit fingerprint: the
fingerprint deliberately ignores schema names and digits in table names
(``s.a`` and ``a``, ``tmp_1`` and ``tmp_2`` fingerprint alike), and as a
non-cryptographic hash it can be made to collide, which would hand one
statement another's classification. docs/decisions/0002-sql-classification-with-pglast.md
has the reasoning and the measurements.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections import OrderedDict
from typing import Final

from pglast import parser as _pg

from hoopd.events import SqlClassification

from .escapes import as_escape_strings
from .tree_walk import Walk

__all__ = ["KINDS", "classify", "clear_caches"]

KINDS: Final = frozenset(
    {
        "select", "insert", "update", "delete", "merge",
        "copy-in", "copy-out", "copy-program", "copy-file",
        "ddl", "drop", "truncate", "alter", "grant", "revoke", "role",
        "do-block", "call", "prepare", "execute", "deallocate",
        "explain", "explain-analyze-write", "set", "show", "transaction",
        "listen", "notify", "unlisten", "vacuum", "analyze", "lock", "discard",
        "comment", "security-label", "alter-system", "extension",
        "utility", "empty", "unparseable", "function-call", "unknown-portal",
    }
)  # fmt: skip
"""Every kind a classification can hold (docs/classification.md). The last two are
never produced here: the engine uses them for the legacy FunctionCall message and for
an Execute of a portal it never saw bound."""

CACHE_ENTRIES: Final = 10_000
"""Most entries each cache holds."""

CACHE_CHARS: Final = 8 * 1024 * 1024
"""Most characters of key text each cache holds (bounds memory with the entry limit)."""

MAX_CACHED_TEXT: Final = 8 * 1024
"""Texts longer than this are classified every time and never cached."""

NUL_MESSAGE: Final = 'invalid byte sequence for encoding "UTF8": 0x00'
ENCODING_MESSAGE: Final = 'invalid byte sequence for encoding "UTF8"'
TOO_DEEP_MESSAGE: Final = "statement is nested too deeply to classify"
INTERNAL_ERROR_PREFIX: Final = "internal classifier error: "


def classify(sql: str) -> SqlClassification:
    """Classify ``sql``, which may hold any number of statements.

    Guarantees: never raises, for any string; ``kinds`` is never empty; when
    ``parse_error`` is set ``kinds`` is exactly ``{"unparseable"}``; empty,
    whitespace-only and comment-only text gives ``{"empty"}`` with
    ``statement_count == 0``. Equal texts get equal results, and texts that differ
    only in constant values may share one cached result object.

    Text whose ordinary string literals hold backslashes is read both ways PostgreSQL
    may read it (``standard_conforming_strings`` on and off; a client can switch it
    in the same pipeline) and the result covers both: every kind, table and function
    either reading finds. If only the non-standard reading fails to parse, the
    result is marked ``opaque`` (its meaning depends on a setting the gateway does
    not control).
    """
    if "\\" in sql:
        cached = _BY_ESCAPED_TEXT.get(sql)
        if cached is None:
            cached = _both_readings(sql)
            if len(sql) <= MAX_CACHED_TEXT:
                _BY_ESCAPED_TEXT.put(sql, cached)
        return cached
    return _classify_standard(sql)


def _both_readings(sql: str) -> SqlClassification:
    standard = _classify_standard(sql)
    rewritten = as_escape_strings(sql)
    if rewritten is None or standard.parse_error is not None:
        return standard
    other = _classify_standard(rewritten)
    if other.parse_error is not None:
        return dataclasses.replace(standard, opaque=True)
    if other == standard:
        return standard
    return SqlClassification(
        kinds=standard.kinds | other.kinds,
        tables_read=standard.tables_read | other.tables_read,
        tables_written=standard.tables_written | other.tables_written,
        functions=standard.functions | other.functions,
        statement_count=max(standard.statement_count, other.statement_count),
        where_absent=standard.where_absent or other.where_absent,
        opaque=standard.opaque or other.opaque,
    )


def _classify_standard(sql: str) -> SqlClassification:
    """:func:`classify` as PostgreSQL reads text with standard_conforming_strings on."""
    if len(sql) > MAX_CACHED_TEXT:
        return _analyse(sql)[0]
    cached = _BY_TEXT.get(sql)
    if cached is not None:
        return cached
    shape = _shape_key(sql)
    if shape is not None:
        result = _BY_SHAPE.get(shape)
        if result is not None:
            # Not copied into the text cache: texts that vary only in constants
            # (simple-protocol statements) would churn it for nothing.
            return result
    result, shareable = _analyse(sql)
    if shape is not None and shareable:
        _BY_SHAPE.put(shape, result)
    _BY_TEXT.put(sql, result)
    return result


def clear_caches() -> None:
    """Forget every cached classification (for tests and for measuring cold costs)."""
    _BY_TEXT.clear()
    _BY_ESCAPED_TEXT.clear()
    _BY_SHAPE.clear()


class _LruCache:
    """A thread-safe least-recently-used map from text to classification.

    Holds at most ``max_entries`` entries and ``max_chars`` characters of keys;
    the least recently used entries are dropped first.
    """

    def __init__(self, max_entries: int, max_chars: int) -> None:
        self._entries: OrderedDict[str, SqlClassification] = OrderedDict()
        self._chars = 0
        self._max_entries = max_entries
        self._max_chars = max_chars
        # The gateway is trio (one thread), but a lock keeps the never-raise promise
        # if classification is ever moved to worker threads.
        self._lock = threading.Lock()

    def get(self, key: str) -> SqlClassification | None:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: str, value: SqlClassification) -> None:
        with self._lock:
            if self._entries.pop(key, None) is not None:
                self._chars -= len(key)
            self._entries[key] = value
            self._chars += len(key)
            while len(self._entries) > self._max_entries or self._chars > self._max_chars:
                evicted, _ = self._entries.popitem(last=False)
                self._chars -= len(evicted)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._chars = 0

    def __len__(self) -> int:
        return len(self._entries)


_BY_TEXT: Final = _LruCache(CACHE_ENTRIES, CACHE_CHARS)
_BY_SHAPE: Final = _LruCache(CACHE_ENTRIES, CACHE_CHARS)
# Texts with backslashes, classified both ways (rare: kept apart from the hot caches).
_BY_ESCAPED_TEXT: Final = _LruCache(CACHE_ENTRIES // 10, CACHE_CHARS // 10)


def _shape_key(sql: str) -> str | None:
    """``sql`` with its constants replaced by ``$n`` placeholders, or None if unavailable.

    Two texts with the same key are identical outside their constants, so they parse
    to the same tree apart from constant values; classification reads constant values
    only where :class:`Walk` sets ``reads_literals``, and such results are not shared.
    """
    # libpg_query reads a C string: text after a NUL would be silently ignored.
    if "\x00" in sql:
        return None
    try:
        key: str = _pg.normalize(sql)
    except Exception:  # invalid SQL or unencodable text: classify the slow way
        return None
    return key


def _analyse(sql: str) -> tuple[SqlClassification, bool]:
    """Parse and walk ``sql``; the flag says whether literal variants may share the result.

    Never raises: whatever goes wrong is reported as unparseable, so policy fails closed.
    """
    try:
        return _parse_and_walk(sql)
    except RecursionError:  # json.loads or the walk on a very deep expression tree
        return _unparseable(TOO_DEEP_MESSAGE), False
    except Exception as exc:  # a bug here must still fail closed, not reach the relay
        return _unparseable(INTERNAL_ERROR_PREFIX + type(exc).__name__), False


def _parse_and_walk(sql: str) -> tuple[SqlClassification, bool]:
    if "\x00" in sql:
        # PostgreSQL never sees text past a NUL (the wire format ends strings there),
        # and libpg_query would silently drop it: refuse rather than guess.
        return _unparseable(NUL_MESSAGE), False
    try:
        tree_json = _pg.parse_sql_json(sql)
    except _pg.ParseError as exc:
        return _unparseable(_parser_message(exc)), False
    except UnicodeEncodeError:
        # Lone surrogates: how the engine decodes bytes that are not UTF-8. A UTF8
        # server rejects those bytes too.
        return _unparseable(ENCODING_MESSAGE), False
    statements = json.loads(tree_json).get("stmts") or []
    if not statements:
        return _EMPTY, True
    walk = Walk()
    for entry in statements:
        walk.statement(entry.get("stmt"))
    return walk.result(len(statements)), not walk.reads_literals


_EMPTY: Final = SqlClassification(kinds=frozenset({"empty"}), statement_count=0)


def _unparseable(message: str) -> SqlClassification:
    return SqlClassification(
        kinds=frozenset({"unparseable"}), statement_count=0, parse_error=message
    )


def _parser_message(exc: Exception) -> str:
    """PostgreSQL's message without pglast's location suffix."""
    if exc.args and isinstance(exc.args[0], str):
        return exc.args[0]
    return str(exc)
