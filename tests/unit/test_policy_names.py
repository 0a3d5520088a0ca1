"""How name patterns meet names: globs, and SQL's qualified and quoted names."""

from __future__ import annotations

import pytest

from hoopd.policy.names import (
    FUNCTION_SCHEMAS,
    TABLE_SCHEMAS,
    Globs,
    SqlNames,
    check_sql_pattern,
    split_sql_name,
)


@pytest.mark.parametrize(
    ("patterns", "value", "expected"),
    [
        (["prod"], "prod", True),
        (["prod"], "Prod", False),
        (["prod-*"], "prod-", True),
        (["prod-*"], "prod-eu-1", True),
        (["db?"], "db1", True),
        (["db?"], "db12", False),
        (["[ab]"], "a", False),  # only * and ? are special
        (["[ab]"], "[ab]", True),
        (["a.b"], "aXb", False),
        (["x", "y*"], "yes", True),
    ],
)
def test_globs(patterns: list[str], value: str, expected: bool) -> None:
    assert Globs(patterns).matches(value) is expected


def test_globs_say_which_pattern_matched() -> None:
    globs = Globs(["a*", "ab*", "abc"])
    assert globs.first_match("abc") == "a*"
    assert globs.first_match("zzz") is None


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("t", ("t",)),
        ("Public.T", ("public", "t")),
        ('"MyTable"', ("MyTable",)),
        ('"a.b"', ("a.b",)),
        ('s."we""ird"', ("s", 'we"ird')),
        ("db.s.t", ("db", "s", "t")),
    ],
)
def test_sql_names_split_as_postgresql_reads_them(text: str, parts: tuple[str, ...]) -> None:
    assert split_sql_name(text) == (parts, None)


def test_malformed_patterns_are_named() -> None:
    assert check_sql_pattern('"open') == "has an unterminated double quote"
    assert check_sql_pattern("a.") == "has an empty part (two dots in a row, or a dot at an end)"
    assert (
        check_sql_pattern("a.b.c.d") == "has more than three parts (database.schema.name at most)"
    )
    assert check_sql_pattern("app.*") is None


TABLE_CASES = [
    # A pattern without a schema: the name in any schema.
    ("users", "users", True),
    ("users", "public.users", True),
    ("users", "app.users", True),
    ("users", "db.app.users", True),
    ("users", "users_archive", False),
    # A pattern with a schema: written with that schema, or unqualified as if in public.
    ("public.users", "users", True),
    ("public.users", "public.users", True),
    ("public.users", "app.users", False),
    ("app.users", "users", False),
    ("app.*", "app.anything", True),
    ("app.*", "anything", False),
    ("*.users", "users", True),
    # A database part: names without one are in the current database.
    ("db.app.t", "app.t", True),
    ("db.app.t", "other.app.t", False),
    # Quoting: a dot inside quotes is part of the name, case is exact.
    ('"a.b"', '"a.b"', True),
    ('"a.b"', "a.b", False),
    ("a.b", "a.b", True),
    ('"Users"', "users", False),
    ("USERS", "users", True),
    ("drop_*", '"drop_Log"', True),
]


@pytest.mark.parametrize(("pattern", "name", "expected"), TABLE_CASES)
def test_table_patterns(pattern: str, name: str, expected: bool) -> None:
    names = SqlNames([pattern], TABLE_SCHEMAS)
    assert (names.first_match(name) == pattern) is expected
    # Asked again (now from the memo), the answer is the same.
    assert (names.first_match(name) == pattern) is expected


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("pg_read_file", "pg_catalog.pg_read_file", True),
        ("pg_catalog.pg_read_file", "pg_read_file", True),
        ("public.f", "f", True),
        ("ext.f", "f", False),
        ("dblink*", "dblink_exec", True),
    ],
)
def test_function_patterns(pattern: str, name: str, expected: bool) -> None:
    assert (SqlNames([pattern], FUNCTION_SCHEMAS).first_match(name) == pattern) is expected


def test_any_match_reports_the_name_and_pattern() -> None:
    names = SqlNames(["audit.*", "secrets"], TABLE_SCHEMAS)
    assert names.any_match(["t", "vault.secrets"]) == ("vault.secrets", "secrets")
    assert names.any_match(["t", "u"]) is None
    assert names.any_match([]) is None
