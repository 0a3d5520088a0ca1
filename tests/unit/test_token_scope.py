"""Token scopes: the grammar a scope must follow, and that narrowing can never widen."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hoopd.identity.scope import (
    ACTIONS,
    MAX_ITEMS,
    ScopeError,
    ScopeItem,
    format_scope,
    granted_level,
    parse_scope,
    split_scope,
    uncovered,
)


def test_items_are_normalised_in_order_without_duplicates() -> None:
    assert parse_scope(["db:read", "pg-*:*", "db:read", " db:write "]) == (
        ScopeItem("db", "read"),
        ScopeItem("pg-*", "admin"),
        ScopeItem("db", "write"),
    )


def test_oauth_style_text_splits_on_spaces_and_commas() -> None:
    items = split_scope("  db:read,pg-eu:write   *:read ")
    assert format_scope(items) == "db:read pg-eu:write *:read"
    assert split_scope(format_scope(items)) == items
    assert split_scope("") == ()


@pytest.mark.parametrize(
    ("item", "complaint"),
    [
        ("db", "CONNECTION:ACTION"),
        ("db:delete", "CONNECTION:ACTION"),
        ("db:", "CONNECTION:ACTION"),
        (":read", "the connection must be"),
        ("db/x:read", "the connection must be"),
        ("d b:read", "the connection must be"),
        ("[ab]:read", "the connection must be"),
        ("x" * 129 + ":read", "the connection must be"),
    ],
)
def test_anything_outside_the_grammar_is_refused_naming_the_item(item: str, complaint: str) -> None:
    with pytest.raises(ScopeError, match=complaint) as caught:
        parse_scope([item])
    assert repr(item)[:40] in str(caught.value)


def test_a_scope_holds_a_bounded_number_of_items() -> None:
    parse_scope([f"c{i}:read" for i in range(MAX_ITEMS)])
    with pytest.raises(ScopeError, match="at most"):
        parse_scope([f"c{i}:read" for i in range(MAX_ITEMS + 1)])


@pytest.mark.parametrize(
    ("wider", "narrower", "widening"),
    [
        ("db:write", "db:read", ""),
        ("db:read", "db:write", "db:write"),
        ("pg-*:admin", "pg-eu:write", ""),
        ("pg-*:read", "pg-*:read", ""),
        ("*:read", "pg-*:read", ""),
        ("pg-*:read", "pg-eu*:read", "pg-eu*:read"),  # a glob is only covered by itself or *
        ("pg-?:read", "pg-1:read", ""),
        ("db:admin", "other:read", "other:read"),
        ("a:read b:write", "b:read a:read c:read", "c:read"),
    ],
)
def test_narrowing_is_checked_item_by_item(wider: str, narrower: str, widening: str) -> None:
    assert format_scope(uncovered(split_scope(wider), split_scope(narrower))) == widening


def test_an_unrestricted_scope_covers_anything() -> None:
    assert uncovered(None, split_scope("*:admin pg-*:write")) == []


NAME_CHARS = "ab-"
LITERALS = st.text(NAME_CHARS, min_size=1, max_size=3)
PATTERNS = st.text(NAME_CHARS + "*?", min_size=1, max_size=3)
ITEMS = st.builds(ScopeItem, st.one_of(LITERALS, PATTERNS), st.sampled_from(ACTIONS))
SCOPES = st.lists(ITEMS, max_size=5).map(tuple)


@settings(max_examples=500)
@given(wider=SCOPES, narrower=SCOPES, connections=st.lists(LITERALS, max_size=10))
def test_a_covered_scope_grants_nothing_the_wider_does_not(
    wider: tuple[ScopeItem, ...], narrower: tuple[ScopeItem, ...], connections: list[str]
) -> None:
    if uncovered(wider, narrower):
        return
    # Every connection the narrower scope names literally, plus arbitrary ones that
    # its globs may match.
    candidates = {item.connection for item in narrower if "*" not in item.connection} | set(
        connections
    )
    for connection in candidates:
        granted = granted_level(narrower, connection)
        if granted is not None:
            have = granted_level(wider, connection)
            assert have is not None and have >= granted, (connection, granted, have)


@given(scope=SCOPES)
def test_a_scope_covers_itself(scope: tuple[ScopeItem, ...]) -> None:
    assert uncovered(scope, scope) == []
