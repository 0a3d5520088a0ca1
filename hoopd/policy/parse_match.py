"""A rule's ``match`` block, from YAML to a compiled :class:`~hoopd.policy.checks.Match`."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Final

from yaml.nodes import Node, ScalarNode

from hoopd.config import KNOWN_PROTOCOLS
from hoopd.events import HOST_KINDS, HostClassification, SqlClassification
from hoopd.policy import checks
from hoopd.policy.checks import Check, Match
from hoopd.policy.names import (
    FUNCTION_SCHEMAS,
    TABLE_SCHEMAS,
    Globs,
    SqlNames,
    check_sql_pattern,
    has_wildcard,
)
from hoopd.policy.verdict import Subject
from hoopd.policy.yamlread import INT, STR, Reader, shown
from hoopd.protocols.postgres.classify import KINDS

IDENTITY_KEYS: Final = ("subject", "groups", "actor_chain", "actor", "depth", "issuer")

# "2", ">= 2", "<1": an optional comparison, then a whole number.
_DEPTH = re.compile(r"\s*(==|!=|<=|>=|<|>)?\s*([0-9]+)\s*")

MATCH_KEYS: Final = (
    "identity",
    "connection",
    "labels",
    "protocol",
    "kinds",
    "only_kinds",
    "tables_read",
    "tables_written",
    "tables",
    "functions",
    "where_absent",
    "multi_statement",
    "opaque",
    "command",
    "program",
    "paths",
    "destination",
)

_HINTS: Final = {
    **{f"identity.{k}": f"write identity: {{{k}: ...}}" for k in IDENTITY_KEYS},
    "groups": "write identity: {groups: [...]}",
    "subject": "write identity: {subject: ...}",
    "root_subject": "write subject: it is already the root of the delegation chain",
}

_TABLE_VALUES: Final[dict[str, Callable[[SqlClassification], Iterable[str]]]] = {
    checks.TABLES_READ: checks.tables_read,
    checks.TABLES_WRITTEN: checks.tables_written,
    checks.TABLES: checks.tables_any,
}

_HOST_VALUES: Final[dict[str, Callable[[HostClassification], Iterable[str]]]] = {
    "command": checks.command_line_of,
    "program": checks.program_of,
    "paths": checks.paths_of,
    "destination": checks.destination_of,
}

_FLAGS: Final[dict[str, Callable[[SqlClassification], bool]]] = {
    "where_absent": checks.where_absent,
    "multi_statement": checks.multi_statement,
    "opaque": checks.opaque,
}


def parse_match(reader: Reader, node: Node | None, what: str) -> Match | None:
    """The compiled match, or ``None`` with every problem recorded. No node (the
    key left out) is a match that always holds."""
    if node is None:
        return Match(())
    fields = reader.fields(node, f"{what}: match", MATCH_KEYS, _HINTS)
    if fields is None:
        return None
    found: list[Check] = []
    ok = True
    for key in fields:  # in the order written, which explain follows
        value = fields.get(key)
        assert value is not None
        parsed = _parse_key(reader, key, value, f"{what}: match.{key}")
        if parsed is None:
            ok = False
        else:
            found.extend(parsed)
    return Match(found) if ok else None


def _parse_key(reader: Reader, key: str, node: Node, what: str) -> list[Check] | None:
    if key == "identity":
        return _identity(reader, node, what)
    if key == "connection":
        globs = _globs(reader, node, what)
        return None if globs is None else [checks.GlobCheck(key, globs, checks.connection_of)]
    if key == "protocol":
        return _protocol(reader, node, what)
    if key == "labels":
        labels = reader.text_map(node, what)
        return None if labels is None else [checks.LabelsCheck(labels)]
    if key in ("kinds", "only_kinds"):
        kinds = _kinds(reader, node, what)
        if kinds is None:
            return None
        return [checks.KindsCheck(kinds) if key == "kinds" else checks.OnlyKindsCheck(kinds)]
    if key in _TABLE_VALUES:
        names = _sql_names(reader, node, what, TABLE_SCHEMAS)
        return None if names is None else [checks.NamesCheck(key, names, _TABLE_VALUES[key])]
    if key in _HOST_VALUES:
        globs = _globs(reader, node, what)
        return None if globs is None else [checks.HostGlobCheck(key, globs, _HOST_VALUES[key])]
    if key == "functions":
        names = _sql_names(reader, node, what, FUNCTION_SCHEMAS)
        return None if names is None else [checks.NamesCheck(key, names, checks.functions)]
    flag = reader.boolean(node, what)
    return None if flag is None else [checks.FlagCheck(key, flag, _FLAGS[key])]


_IDENTITY_ONE: Final[dict[str, Callable[[Subject], str]]] = {
    "subject": checks.subject_of,
    "actor": checks.actor_of,
    "issuer": checks.issuer_of,
}
_IDENTITY_ANY: Final[dict[str, Callable[[Subject], Sequence[str]]]] = {
    "groups": checks.groups_of,
    "actor_chain": checks.actors_of,
}


def _identity(reader: Reader, node: Node, what: str) -> list[Check] | None:
    fields = reader.fields(node, what, IDENTITY_KEYS, _HINTS)
    if fields is None:
        return None
    found: list[Check] = []
    ok = True
    for key in fields:
        value = fields.get(key)
        assert value is not None
        if key == "depth":
            depth = _depth(reader, value, f"{what}.depth")
            if depth is None:
                ok = False
            else:
                found.append(depth)
            continue
        globs = _globs(reader, value, f"{what}.{key}")
        if globs is None:
            ok = False
        elif key in _IDENTITY_ONE:
            found.append(checks.GlobCheck(f"identity.{key}", globs, _IDENTITY_ONE[key]))
        else:
            found.append(checks.GlobsAnyCheck(f"identity.{key}", globs, _IDENTITY_ANY[key]))
    if not list(fields):
        reader.problem(node, f"{what} must name at least one of {', '.join(IDENTITY_KEYS)}")
        ok = False
    return found if ok else None


def _depth(reader: Reader, node: Node, what: str) -> checks.DepthCheck | None:
    """A whole number (exact), or a comparison such as ``">= 2"``."""
    usage = 'a whole number or a comparison such as ">= 2"'
    if isinstance(node, ScalarNode) and node.tag == INT:
        bound = reader.integer(node, what)
        if bound is not None and bound < 0:
            reader.problem(node, f"{what} must not be negative (got {shown(node)})")
        return None if bound is None or bound < 0 else checks.DepthCheck("==", bound)
    if isinstance(node, ScalarNode) and node.tag == STR:
        found = _DEPTH.fullmatch(str(node.value))
        if found is not None:
            return checks.DepthCheck(found.group(1) or "==", int(found.group(2)))
    reader.problem(node, f"{what} must be {usage}, with ==, !=, <, <=, > or >= (got {shown(node)})")
    return None


def _globs(reader: Reader, node: Node, what: str) -> Globs | None:
    values = reader.texts(node, what)
    return None if values is None else Globs(value for value, _ in values)


def _protocol(reader: Reader, node: Node, what: str) -> list[Check] | None:
    values = reader.texts(node, what)
    if values is None:
        return None
    ok = True
    for value, item in values:
        if not has_wildcard(value) and value not in KNOWN_PROTOCOLS:
            known = ", ".join(sorted(KNOWN_PROTOCOLS))
            reader.problem(item, f"{what}: unknown protocol {value!r} (known: {known})")
            ok = False
    if not ok:
        return None
    globs = Globs(value for value, _ in values)
    return [checks.GlobCheck("protocol", globs, checks.protocol_of)]


def _kinds(reader: Reader, node: Node, what: str) -> list[str] | None:
    values = reader.texts(node, what)
    if values is None:
        return None
    ok = True
    for value, item in values:
        if value not in KINDS and value not in HOST_KINDS:
            close = difflib.get_close_matches(value, sorted(KINDS | HOST_KINDS), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            reader.problem(
                item, f"{what}: unknown kind {value!r} ({hint}see docs/classification.md)"
            )
            ok = False
    return [value for value, _ in values] if ok else None


def _sql_names(reader: Reader, node: Node, what: str, implicit: tuple[str, ...]) -> SqlNames | None:
    values = reader.texts(node, what)
    if values is None:
        return None
    ok = True
    for value, item in values:
        problem = check_sql_pattern(value)
        if problem is not None:
            reader.problem(item, f"{what}: {value!r} {problem}")
            ok = False
    return SqlNames([value for value, _ in values], implicit) if ok else None
