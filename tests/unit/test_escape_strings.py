"""Reading SQL text as PostgreSQL does with standard_conforming_strings off."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hoopd.protocols.postgres.classify import classify
from hoopd.protocols.postgres.escapes import as_escape_strings

HIDDEN_DROP = "SELECT 'x\\' , $$' ; DROP TABLE victim; -- $$"


@pytest.mark.parametrize(
    ("sql", "rewritten"),
    [
        ("select 1", None),
        ("select 'a\\b'", "select E'a\\b'"),
        ("select E'a\\'b'", None),  # already an escape string
        ("select $$a\\b$$", None),  # dollar quotes have no escapes
        ('select "a\\b" from t', None),  # nor do quoted identifiers
        ("select 1 -- it's a\\b\n", None),  # nor comments
        ("select 1 /* 'a\\b' /* nested */ */", None),
        ("select x'0f', b'01', 'a\\b'", "select x'0f', b'01', E'a\\b'"),
        ("select n'a\\b'", "select nE'a\\b'"),
        (HIDDEN_DROP, "SELECT E'x\\' , $$' ; DROP TABLE victim; -- $$"),
        ("select $1, 'a\\b'", "select $1, E'a\\b'"),
    ],
)
def test_ordinary_literals_with_backslashes_become_escape_strings(
    sql: str, rewritten: str | None
) -> None:
    assert as_escape_strings(sql) == rewritten


def test_a_statement_hidden_by_a_backslash_is_found() -> None:
    # Read the standard way this is one SELECT of two literals; with the setting off
    # PostgreSQL ends the first literal later and runs a DROP.
    result = classify(HIDDEN_DROP)
    assert {"select", "drop"} <= result.kinds
    assert "victim" in result.tables_written
    assert result.statement_count == 2


def test_a_backslash_that_only_breaks_the_other_reading_marks_the_text_opaque() -> None:
    result = classify("select 'C:\\'")
    assert result.kinds == {"select"} and result.opaque


def test_harmless_backslashes_change_nothing() -> None:
    assert classify("select 'a\\nb'") == classify("select 'anb'")


@given(st.text(alphabet=st.sampled_from(list("ab'\\$\"-/*\n E;x"))))
def test_the_rewrite_only_inserts_prefixes(sql: str) -> None:
    rewritten = as_escape_strings(sql)
    if rewritten is None:
        return
    assert "\\" in sql
    # Removing the inserted E's (each directly before a quote) gives the text back.
    assert "E'" in rewritten
    assert _strip_inserted(rewritten, sql)


def _strip_inserted(rewritten: str, original: str) -> bool:
    """Whether ``original`` is ``rewritten`` with some ``E`` characters before quotes
    removed (a subsequence check that only skips such E's)."""
    i = j = 0
    while i < len(rewritten):
        if j < len(original) and rewritten[i] == original[j]:
            i += 1
            j += 1
        elif rewritten[i] == "E" and rewritten[i + 1 : i + 2] == "'":
            i += 1
        else:
            return False
    return j == len(original)


@given(st.text())
def test_any_text_is_read_without_raising(sql: str) -> None:
    as_escape_strings(sql)
    classify(sql)
