"""SQL text as PostgreSQL reads it with ``standard_conforming_strings = off``.

With that setting off (a client can turn it off with ``SET``, in the same pipeline
as the statement that exploits it), a backslash inside an ordinary ``'...'``
literal is an escape, exactly as in ``E'...'``. The same text can then end a
literal somewhere else and hide a statement from a parser that reads it the
standard way. PostgreSQL's own parser as the classifier uses it (pglast) only reads
the standard way, so :func:`as_escape_strings` rewrites the text so that the
standard reading of the result is the non-standard reading of the original: each
ordinary literal gains an ``E`` prefix. Classifying both texts and joining the
results judges what PostgreSQL would run under either setting.

Guarantees: never raises; returns None when the text has no ordinary literal with a
backslash (then both readings are the same); returns the text unchanged in every
byte outside the ``E`` prefixes it inserts, so positions in messages still line up
with what the client sent except for those prefixes; an unterminated literal under
the non-standard reading gives the rewritten text as far as it goes (the parser
then reports it unparseable, which fails closed).
"""

from __future__ import annotations

import re
from typing import Final

_DOLLAR_TAG: Final = re.compile(r"\$([A-Za-z_\x80-\U0010ffff][A-Za-z_0-9\x80-\U0010ffff]*)?\$")
_IDENTIFIER_CHAR: Final = re.compile(r"[A-Za-z_0-9$\x80-\U0010ffff]")


def as_escape_strings(sql: str) -> str | None:
    """``sql`` with every ordinary string literal read as an escape string; None when
    no ordinary literal holds a backslash."""
    if "\\" not in sql:
        return None
    out: list[str] = []
    changed = False
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end < 0 else end + 1
        elif ch == "/" and sql.startswith("/*", i):
            end = _block_comment_end(sql, i)
        elif ch == '"':
            end = _quoted_end(sql, i + 1, '"', escapes=False)
        elif ch == "$" and (i == 0 or not _IDENTIFIER_CHAR.match(sql[i - 1])):
            end = _dollar_quote_end(sql, i)
        elif ch == "'":
            prefix = _literal_prefix(sql, i)
            if prefix in ("", "n"):  # ordinary (or national) literal: escapes apply when off
                end = _quoted_end(sql, i + 1, "'", escapes=True)
                literal = sql[i:end]
                if "\\" in literal:
                    out.append("E")
                    changed = True
                out.append(literal)
                i = end
                continue
            end = _quoted_end(sql, i + 1, "'", escapes=prefix == "e")
        else:
            end = i + 1
        out.append(sql[i:end])
        i = end
    return "".join(out) if changed else None


def _literal_prefix(sql: str, quote: int) -> str:
    """What the identifier-ish text before a quote makes of it: ``""`` (ordinary),
    ``"e"``, ``"n"``, ``"b"``, ``"x"``, ``"u&"``, or ``"?"`` (part of a longer word,
    which PostgreSQL's grammar rejects anyway)."""
    start = quote
    while start > 0 and _IDENTIFIER_CHAR.match(sql[start - 1]):
        start -= 1
    word = sql[start:quote].lower()
    if word == "&" or (word == "" and quote >= 2 and sql[quote - 2 : quote].lower() == "u&"):
        return "u&"
    if word in ("", "e", "n", "b", "x"):
        return word
    return "?"


def _quoted_end(sql: str, start: int, quote: str, *, escapes: bool) -> int:
    """Index just past the closing ``quote`` (doubled quotes and, with ``escapes``,
    backslash escapes stay inside); the text's end when it never closes."""
    i, n = start, len(sql)
    while i < n:
        ch = sql[i]
        if escapes and ch == "\\":
            i += 2
            continue
        if ch == quote:
            if i + 1 < n and sql[i + 1] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    return n


def _block_comment_end(sql: str, start: int) -> int:
    depth, i, n = 0, start, len(sql)
    while i < n:
        if sql.startswith("/*", i):
            depth += 1
            i += 2
        elif sql.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    return n


def _dollar_quote_end(sql: str, start: int) -> int:
    tag = _DOLLAR_TAG.match(sql, start)
    if tag is None:
        return start + 1  # a parameter ($1) or a lone dollar
    close = sql.find(tag.group(0), tag.end())
    return len(sql) if close < 0 else close + len(tag.group(0))
