"""Token scopes: which connections a token may use, and for which actions.

A scope is a list of ``CONNECTION:ACTION`` items. ``CONNECTION`` is a connection
name from the configuration or a glob over names (``*``, ``pg-*``); ``ACTION`` is
``read``, ``write`` or ``admin`` (``*`` means ``admin``). Each action includes the
ones before it: ``write`` allows everything ``read`` does. What each command needs
is decided by :mod:`hoopd.actions`.

Guarantees: :func:`parse_scope` accepts only that grammar; :func:`uncovered`
returns nothing only when every item of the narrower scope is provably within the
wider one (a glob in the narrower scope is only covered by the identical glob or
by ``*``), so delegation can narrow a scope and never widen it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Final

ACTIONS: Final = ("read", "write", "admin")
"""The actions, narrowest first."""

_ALIASES: Final = {"*": "admin"}
_CONNECTION = re.compile(r"[A-Za-z0-9_.*?-]{1,128}")
MAX_ITEMS: Final = 64


class ScopeError(ValueError):
    """A scope item that does not follow the grammar; the message says which and why."""


@dataclass(frozen=True, slots=True)
class ScopeItem:
    """One ``connection:action`` item, normalised (``*`` spelled ``admin``)."""

    connection: str
    action: str

    @property
    def level(self) -> int:
        return ACTIONS.index(self.action)

    def __str__(self) -> str:
        return f"{self.connection}:{self.action}"


def parse_scope(items: Iterable[str]) -> tuple[ScopeItem, ...]:
    """The items of a scope, in order, duplicates dropped; raises ScopeError."""
    parsed: dict[ScopeItem, None] = {}
    for raw in items:
        if not isinstance(raw, str):
            raise ScopeError(f"scope item {raw!r} is not text")
        connection, colon, action = raw.strip().rpartition(":")
        action = _ALIASES.get(action, action)
        if not colon or action not in ACTIONS:
            raise ScopeError(
                f"scope item {raw!r} is not CONNECTION:ACTION with ACTION one of"
                f" {', '.join(ACTIONS)} or *"
            )
        if not _CONNECTION.fullmatch(connection):
            raise ScopeError(
                f"scope item {raw!r}: the connection must be a name or glob of letters,"
                " digits, '_', '.', '-', '*' and '?'"
            )
        parsed[ScopeItem(connection, action)] = None
    if len(parsed) > MAX_ITEMS:
        raise ScopeError(f"a scope holds at most {MAX_ITEMS} items")
    return tuple(parsed)


def split_scope(text: str) -> tuple[ScopeItem, ...]:
    """A scope written as one string, items separated by spaces or commas (as in
    OAuth's ``scope`` parameter); raises ScopeError."""
    return parse_scope(item for item in re.split(r"[\s,]+", text) if item)


def format_scope(items: Iterable[ScopeItem]) -> str:
    """The space-separated form, as OAuth writes a scope."""
    return " ".join(str(item) for item in items)


def granted_level(scope: Sequence[ScopeItem] | None, connection: str) -> int | None:
    """The widest action index the scope grants on ``connection``; None if none.

    An unrestricted identity (``scope is None``) is granted ``admin`` everywhere.
    """
    if scope is None:
        return len(ACTIONS) - 1
    levels = [item.level for item in scope if fnmatchcase(connection, item.connection)]
    return max(levels) if levels else None


def identity_level(scope: Sequence[str] | None, connection: str) -> int | None:
    """:func:`granted_level` for an identity's scope as it carries it (strings).

    A scope that does not parse grants nothing: verifiers only hand out parsed
    scopes, so this is a defence, not a path users meet.
    """
    if scope is None:
        return len(ACTIONS) - 1
    try:
        return granted_level(parse_scope(scope), connection)
    except ScopeError:
        return None


def uncovered(wider: Sequence[ScopeItem] | None, narrower: Sequence[ScopeItem]) -> list[ScopeItem]:
    """The items of ``narrower`` that ``wider`` does not provably include."""
    if wider is None:
        return []
    return [item for item in narrower if not _covered(wider, item)]


def _covered(wider: Sequence[ScopeItem], item: ScopeItem) -> bool:
    literal = not any(ch in item.connection for ch in "*?")
    for have in wider:
        if have.level < item.level:
            continue
        if have.connection == "*" or have.connection == item.connection:
            return True
        if literal and fnmatchcase(item.connection, have.connection):
            return True
    return False
