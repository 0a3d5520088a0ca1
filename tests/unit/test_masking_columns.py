"""Which result columns a column rule covers: names, tables, schemas, globs, case."""

from __future__ import annotations

import pytest

from hoopd.masking import Column, Masker, MaskRule

KEY = b"0123456789abcdef"


def covered(pattern: str, name: str, table: str | None) -> bool:
    """Whether a rule with this one pattern masks a text column ``name`` of ``table``."""
    masker = Masker([MaskRule("r", columns=(pattern,))], KEY)
    plan = masker.plan([Column(name, table, True)])
    if plan is None:
        return False
    masked, _ = masker.mask_row(plan, [b"secret"])
    return masked == [b"[redacted]"]


@pytest.mark.parametrize(
    ("pattern", "name", "table", "expected"),
    [
        # A bare column name: that column from any table, and expressions named so.
        ("email", "email", "public.users", True),
        ("email", "email", "crm.contacts", True),
        ("email", "email", None, True),
        ("email", "email2", "public.users", False),
        ("email", "e", "public.users", False),
        # table.column: that table in any schema.
        ("users.email", "email", "public.users", True),
        ("users.email", "email", "crm.users", True),
        ("users.email", "email", "public.contacts", False),
        ("users.email", "name", "public.users", False),
        # schema.table.column: only there.
        ("crm.users.email", "email", "crm.users", True),
        ("crm.users.email", "email", "public.users", False),
        # Case never matters.
        ("Users.EMAIL", "email", "PUBLIC.users", True),
        ("users.email", "Email", "public.Users", True),
        ("PUBLIC.USERS.EMAIL", "email", "public.users", True),
        # Globs in any part.
        ("*email*", "work_email_address", "public.users", True),
        ("*email*", "mail", "public.users", False),
        ("users.*", "anything", "public.users", True),
        ("users.*", "anything", "public.orders", False),
        ("*.*.ssn", "ssn", "hr.people", True),
        ("user?.email", "email", "public.users", True),
        ("user?.email", "email", "public.user", False),
        ("pub*.users.e*", "email", "public.users", True),
        ("pub*.users.e*", "email", "private.users", False),
        ("*", "x", None, True),
    ],
)
def test_patterns(pattern: str, name: str, table: str | None, expected: bool) -> None:
    assert covered(pattern, name, table) is expected


def test_unknown_table_fails_closed_on_the_column_part() -> None:
    # `SELECT email || '' AS email FROM users` arrives with no table: the value may
    # well be users.email, so the qualified pattern still covers it.
    assert covered("users.email", "email", None)
    assert covered("crm.users.email", "email", None)
    assert not covered("users.email", "total", None)


def test_table_wide_pattern_does_not_cover_every_expression() -> None:
    assert not covered("users.*", "count", None)


def test_table_without_schema_fails_closed() -> None:
    assert covered("crm.users.email", "email", "users")
    assert not covered("crm.users.email", "email", "contacts")


def test_dots_and_brackets_in_globs_are_literal() -> None:
    assert covered("a[1]", "a[1]", None)
    assert not covered("a[1]", "a1", None)


@pytest.mark.parametrize("pattern", ["", "a..b", "users.", ".email", "a.b.c.d"])
def test_malformed_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(ValueError, match="mask rule 'r': column pattern"):
        Masker([MaskRule("r", columns=(pattern,))], KEY)


def test_first_matching_rule_decides_the_column() -> None:
    masker = Masker(
        [
            MaskRule("cards", columns=("users.card",), style="keep-last"),
            MaskRule("everything", columns=("users.*",)),
        ],
        KEY,
    )
    columns = [Column("card", "public.users", True), Column("name", "public.users", True)]
    plan = masker.plan(columns)
    assert plan is not None
    row, rules = masker.mask_row(plan, [b"4111111111111111", b"Alice"])
    assert row == [b"************1111", b"[redacted]"]
    assert rules == ["cards", "everything"]


def test_an_alias_is_covered_through_the_source_column() -> None:
    # `SELECT email AS contact FROM crm.users`: the client sees `contact`; the
    # protocol tells the table column it comes from.
    masker = Masker([MaskRule("m", columns=("users.email",))], b"k" * 32)
    aliased = Column("contact", "crm.users", True, source="email")
    assert masker.plan([aliased]) is not None
    other = Column("contact", "crm.users", True, source="phone")
    assert masker.plan([other]) is None
    elsewhere = Column("contact", "crm.orders", True, source="email")
    assert masker.plan([elsewhere]) is None


def test_the_catalog_query_escapes_every_glob() -> None:
    from hoopd.protocols.postgres.masking import _column_names_sql

    sql = _column_names_sql(["e?ail*", "50%_off", "it's\\odd"])
    assert "E'e_ail%'" in sql
    assert "E'50\\\\%\\\\_off'" in sql  # LIKE's own escapes, then the string's
    assert "E'it\\'s\\\\\\\\odd'" in sql
