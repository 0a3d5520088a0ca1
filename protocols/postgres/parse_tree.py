"""Reading libpg_query's JSON parse tree, for the classifier's walk (:mod:`.tree_walk`).

A node is written as ``{"TypeName": {fields}}`` where its C field is a generic
``Node *`` or a list element, but as the bare ``{fields}`` where the C field names a
specific struct (``RangeVar *relation``, ``SelectStmt *larg``). pglast records each
field's C type; :data:`EMBEDDED` is derived from it so the walker knows what a bare
struct is.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Final

import pglast.ast

Fields = dict[str, Any]
"""A parse node's fields, as libpg_query's JSON has them."""


def _node_types() -> frozenset[str]:
    """The names of every parse node type pglast knows."""
    return frozenset(
        name
        for name in dir(pglast.ast)
        if isinstance(cls := getattr(pglast.ast, name), type) and issubclass(cls, pglast.ast.Node)
    )


NODE_TYPES: Final = _node_types()


def _embedded_struct_fields() -> dict[str, dict[str, str]]:
    """Map node type, then field name, to the struct type the field's JSON value holds bare."""
    generic = {"Node", "Expr", "List"}
    embedded: dict[str, dict[str, str]] = {}
    for name in dir(pglast.ast):
        cls = getattr(pglast.ast, name)
        slots = getattr(cls, "__slots__", None)
        if not (isinstance(cls, type) and issubclass(cls, pglast.ast.Node)):
            continue
        if not isinstance(slots, dict):
            continue
        for field, info in slots.items():
            c_type = str(getattr(info, "c_type", "")).rstrip("*")
            target = getattr(pglast.ast, c_type, None)
            if c_type in generic or not isinstance(target, type):
                continue
            if issubclass(target, pglast.ast.Node):
                embedded.setdefault(name, {})[field] = c_type
    return embedded


EMBEDDED: Final = _embedded_struct_fields()
NOTHING_EMBEDDED: Final[dict[str, str]] = {}

# Nodes that cannot hold a relation, a function call or a statement. Not descending
# into them is purely for speed: they are most of the nodes in a typical tree.
LEAVES: Final = frozenset(
    {
        "A_Const", "String", "Integer", "Float", "Boolean", "BitString",
        "A_Star", "ColumnRef", "ParamRef", "TypeName", "Alias", "CurrentOfExpr",
    }
)  # fmt: skip


def nodes_in(value: Any) -> Iterator[tuple[str, Fields]]:
    """The (type, fields) pairs of a wrapped node; nothing for anything else."""
    if isinstance(value, dict):
        for node_type, fields in value.items():
            if isinstance(fields, dict):
                yield node_type, fields


# An identifier PostgreSQL would accept unquoted, in its folded (lower-case) form.
# Bytes >= 0x80 are identifier characters to PostgreSQL, hence the non-ASCII range.
_PLAIN_IDENTIFIER: Final = re.compile(r"[a-z_\x80-\U0010ffff][a-z0-9_$\x80-\U0010ffff]*")


def _quote(part: str) -> str:
    """The identifier as it would have to be written: quoted only when it needs to be."""
    if _PLAIN_IDENTIFIER.fullmatch(part):
        return part
    return '"' + part.replace('"', '""') + '"'


def qualified(parts: list[str]) -> str:
    return ".".join(_quote(part) for part in parts)


def string_parts(items: Any) -> list[str]:
    """The names in a list of String nodes (``funcname``, a ``DROP`` object)."""
    parts: list[str] = []
    for item in items if isinstance(items, list) else []:
        for node_type, fields in nodes_in(item):
            if node_type == "String" and isinstance(fields.get("sval"), str):
                parts.append(fields["sval"])
    return parts


def relation_name(range_var: Fields) -> str | None:
    """``catalog.schema.name`` with only the parts that were written; None if malformed."""
    if not isinstance(range_var.get("relname"), str):
        return None
    parts = [range_var.get(key) for key in ("catalogname", "schemaname", "relname")]
    return qualified([part for part in parts if isinstance(part, str)])


def range_vars(value: Any) -> Iterator[Fields]:
    """RangeVars held by a field: one bare struct, or a list of wrapped nodes."""
    if isinstance(value, list):
        for item in value:
            for node_type, fields in nodes_in(item):
                if node_type == "RangeVar":
                    yield fields
    elif isinstance(value, dict) and "relname" in value:
        yield value


def nodes_in_list(value: Any) -> Iterator[tuple[str, Fields]]:
    """The (type, fields) pairs of every wrapped node in a list; nothing for anything else."""
    for item in value if isinstance(value, list) else []:
        yield from nodes_in(item)
