"""The walk over a parse tree that accumulates one classification: every statement,
subquery, CTE and expression, with a handler for each node type that contributes
relations, functions or kinds wherever it appears."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from hoopd.events import SqlClassification

from .parse_tree import (
    EMBEDDED,
    LEAVES,
    NODE_TYPES,
    NOTHING_EMBEDDED,
    Fields,
    nodes_in,
    nodes_in_list,
    qualified,
    range_vars,
    relation_name,
    string_parts,
)
from .statement_kinds import (
    GRANTABLE_RELATIONS,
    OPAQUE_STATEMENTS,
    RELATION_OBJECTS,
    ROLE_PARAMETERS,
    statement_kinds,
)


class Walk:
    """Accumulates one classification over the statements of one text.

    ``record`` is False under a plain EXPLAIN: the statement is planned, not run, so
    its kinds, ``where_absent`` and ``opaque`` are not reported; the relations and
    functions it names still are (PostgreSQL checks privileges on them, and the
    planner may evaluate immutable functions).
    """

    def __init__(self, record: bool = True) -> None:
        self.record = record
        self.kinds: set[str] = set()
        self.read: set[str] = set()
        self.written: set[str] = set()
        self.functions: set[str] = set()
        self.where_absent = False
        self.opaque = False
        self.reads_literals = False
        self._cte_scopes: list[set[str]] = []

    def result(self, statement_count: int) -> SqlClassification:
        return SqlClassification(
            kinds=frozenset(self.kinds),
            tables_read=frozenset(self.read),
            tables_written=frozenset(self.written),
            functions=frozenset(self.functions),
            statement_count=statement_count,
            where_absent=self.where_absent,
            opaque=self.opaque,
        )

    def absorb(self, other: Walk) -> None:
        self.kinds |= other.kinds
        self.read |= other.read
        self.written |= other.written
        self.functions |= other.functions
        self.where_absent |= other.where_absent
        self.opaque |= other.opaque
        self.reads_literals |= other.reads_literals

    def statement(self, value: Any) -> None:
        """Walk a wrapped node that PostgreSQL runs as a statement: its own kind counts."""
        for node_type, fields in nodes_in(value):
            if self.record:
                self.kinds |= statement_kinds(node_type, fields)
                if node_type in OPAQUE_STATEMENTS:
                    self.opaque = True
            self.node(node_type, fields)

    def wrapped(self, value: Any) -> None:
        """Walk a wrapped node found inside another (a subquery, an expression, ...)."""
        if type(value) is dict:
            for node_type, fields in value.items():
                if type(fields) is dict and node_type not in LEAVES:
                    self.node(node_type, fields)

    def node(self, node_type: str, fields: Fields) -> None:
        handler = _HANDLERS.get(node_type)
        if type(fields.get("withClause")) is dict:
            self._enter_with(fields["withClause"])
            try:
                self._dispatch(handler, node_type, fields)
            finally:
                self._cte_scopes.pop()
        elif handler is None:
            self.children(node_type, fields)
        else:
            handler(self, node_type, fields)

    def _dispatch(self, handler: _Handler | None, node_type: str, fields: Fields) -> None:
        if handler is None:
            self.children(node_type, fields)
        else:
            handler(self, node_type, fields)

    def children(self, node_type: str, fields: Fields, skip: tuple[str, ...] = ()) -> None:
        """Walk every field of a node except ``skip`` (and ``withClause``, done by node)."""
        # The hot loop of classification, hence the inlined checks: it runs for every
        # field of every node, and most fields are scalars or leaves.
        embedded = EMBEDDED.get(node_type, NOTHING_EMBEDDED)
        node = self.node
        for key, value in fields.items():
            if type(value) is list:
                if key in skip:
                    continue
                for item in value:
                    if type(item) is dict:
                        for item_type, item_fields in item.items():
                            if type(item_fields) is dict and item_type not in LEAVES:
                                node(item_type, item_fields)
            elif type(value) is dict:
                if key in skip or key == "withClause":
                    continue
                struct = embedded.get(key)
                if struct is not None:
                    node(struct, value)
                    continue
                if len(value) == 1:
                    ((item_type, item_fields),) = value.items()
                    if item_type in NODE_TYPES and type(item_fields) is dict:
                        if item_type not in LEAVES:
                            node(item_type, item_fields)
                        continue
                # A bare struct pglast did not describe: still look inside, and
                # never lose a relation because of it.
                node("RangeVar" if "relname" in value else "", value)

    def _enter_with(self, with_clause: Fields) -> None:
        """Walk the CTEs and push their names as a scope for the owning statement.

        Without RECURSIVE a CTE sees only the CTEs before it (a reference to its own
        name inside its body is to a real table); with RECURSIVE it sees them all.
        """
        ctes = [fields for _, fields in nodes_in_list(with_clause.get("ctes"))]
        names = [cte.get("ctename") for cte in ctes]
        scope: set[str] = set()
        if with_clause.get("recursive"):
            scope.update(name for name in names if isinstance(name, str))
        self._cte_scopes.append(scope)
        for cte, name in zip(ctes, names, strict=True):
            self.node("CommonTableExpr", cte)
            if isinstance(name, str):
                scope.add(name)

    def is_cte(self, range_var: Fields) -> bool:
        if "schemaname" in range_var or "catalogname" in range_var:
            return False
        name = range_var.get("relname")
        return any(name in scope for scope in self._cte_scopes)

    def write(self, value: Any) -> None:
        """Record the relations in ``value`` as written (never CTE names: targets are tables)."""
        for range_var in range_vars(value):
            name = relation_name(range_var)
            if name is not None:
                self.written.add(name)


# ---------------------------------------------------------------------------
# Node handlers: what a node contributes wherever it appears

_Handler = Callable[[Walk, str, Fields], None]


def _range_var(walk: Walk, node_type: str, fields: Fields) -> None:
    name = relation_name(fields)
    if name is not None and not walk.is_cte(fields):
        walk.read.add(name)


def _func_call(walk: Walk, node_type: str, fields: Fields) -> None:
    parts = string_parts(fields.get("funcname"))
    if parts:
        walk.functions.add(qualified(parts))
    if walk.record and _is_set_config(parts):
        walk.kinds.add(_set_config_kind(walk, fields.get("args")))
    walk.children(node_type, fields, skip=("funcname",))


def _is_set_config(parts: list[str]) -> bool:
    return parts[-1:] == ["set_config"] and parts[:-1] in ([], ["pg_catalog"])


def _set_config_kind(walk: Walk, args: Any) -> str:
    """``set_config(name, ...)`` is a SET: "role" when it names role or session_authorization.

    The name is a constant, so literal variants must not share the result. A name
    that is not a constant could be either, and "role" is the stricter answer.
    """
    walk.reads_literals = True
    first = args[0] if isinstance(args, list) and args else None
    name = _constant_string(first)
    if name is None or name.lower() in ROLE_PARAMETERS:
        return "role"
    return "set"


def _constant_string(value: Any) -> str | None:
    """The text of a string constant, looking through casts; None for anything else."""
    for node_type, fields in nodes_in(value):
        if node_type == "TypeCast":
            return _constant_string(fields.get("arg"))
        if node_type == "A_Const":
            sval = fields.get("sval")
            if isinstance(sval, dict) and isinstance(sval.get("sval"), str):
                return str(sval["sval"])
    return None


def _insert(walk: Walk, node_type: str, fields: Fields) -> None:
    if walk.record:
        walk.kinds.add("insert")
        conflict = fields.get("onConflictClause")
        # ON CONFLICT DO UPDATE changes existing rows (and needs UPDATE privilege).
        if isinstance(conflict, dict) and conflict.get("action") == "ONCONFLICT_UPDATE":
            walk.kinds.add("update")
    walk.write(fields.get("relation"))
    walk.children(node_type, fields, skip=("relation",))


def _update_or_delete(kind: str) -> _Handler:
    def handler(walk: Walk, node_type: str, fields: Fields) -> None:
        if walk.record:
            walk.kinds.add(kind)
            # WHERE CURRENT OF is a whereClause too, so it counts as present.
            if "whereClause" not in fields:
                walk.where_absent = True
        walk.write(fields.get("relation"))
        walk.children(node_type, fields, skip=("relation",))

    return handler


_MERGE_ACTIONS: Final = {"CMD_INSERT": "insert", "CMD_UPDATE": "update", "CMD_DELETE": "delete"}


def _merge(walk: Walk, node_type: str, fields: Fields) -> None:
    if walk.record:
        walk.kinds.add("merge")
        # A policy that blocks "delete" must see MERGE ... THEN DELETE too.
        for _, clause in nodes_in_list(fields.get("mergeWhenClauses")):
            action = _MERGE_ACTIONS.get(str(clause.get("commandType")))
            if action is not None:
                walk.kinds.add(action)
    walk.write(fields.get("relation"))
    walk.children(node_type, fields, skip=("relation",))


def _into(walk: Walk, node_type: str, fields: Fields) -> None:
    """SELECT ... INTO and CREATE TABLE AS create (and fill) the table named here."""
    if walk.record:
        walk.kinds.add("ddl")
    walk.write(fields.get("rel"))
    walk.children(node_type, fields, skip=("rel",))


def _copy(walk: Walk, node_type: str, fields: Fields) -> None:
    walk.statement(fields.get("query"))
    if fields.get("is_from"):
        walk.write(fields.get("relation"))
        walk.children(node_type, fields, skip=("query", "relation"))
    else:
        walk.children(node_type, fields, skip=("query",))


def _explain(walk: Walk, node_type: str, fields: Fields) -> None:
    analyze = _explain_analyzes(walk, fields.get("options"))
    inner = Walk(record=walk.record and analyze)
    inner.statement(fields.get("query"))
    # EXPLAIN ANALYZE runs the statement: anything that writes, or that we cannot
    # see into (EXECUTE), makes the EXPLAIN a write.
    if inner.record and (inner.written or inner.opaque):
        walk.kinds.add("explain-analyze-write")
    walk.absorb(inner)


def _explain_analyzes(walk: Walk, options: Any) -> bool:
    """Whether EXPLAIN's options turn ANALYZE on, read as PostgreSQL's defGetBoolean does.

    A value it would reject counts as on: the statement fails anyway, and erring
    towards "it executes" is the safe side.
    """
    analyze = False
    for node_type, option in nodes_in_list(options):
        if node_type != "DefElem" or option.get("defname") != "analyze":
            continue
        arg = option.get("arg")
        if arg is None:
            analyze = True
            continue
        walk.reads_literals = True  # (ANALYZE 0) and (ANALYZE 1) differ only in a constant
        analyze |= _option_is_true(arg)
    return analyze


def _option_is_true(arg: Any) -> bool:
    for node_type, value in nodes_in(arg):
        if node_type == "Integer":
            return bool(value.get("ival", 0) != 0)  # JSON omits a zero ival
        if node_type == "String":
            return str(value.get("sval", "")).lower() not in ("false", "off")
    return True


def _inner_statement(field: str) -> _Handler:
    """PREPARE, DECLARE CURSOR: the inner statement's kinds are reported too."""

    def handler(walk: Walk, node_type: str, fields: Fields) -> None:
        walk.statement(fields.get(field))
        walk.children(node_type, fields, skip=(field,))

    return handler


def _create_table_as(walk: Walk, node_type: str, fields: Fields) -> None:
    into = fields.get("into")
    if isinstance(into, dict) and into.get("skipData"):
        walk.wrapped(fields.get("query"))  # WITH NO DATA: the query is stored, not run
    else:
        walk.statement(fields.get("query"))
    walk.children(node_type, fields, skip=("query",))


def _writes(*targets: str) -> _Handler:
    """A DDL node whose ``targets`` fields name the relations it creates or changes."""

    def handler(walk: Walk, node_type: str, fields: Fields) -> None:
        for target in targets:
            walk.write(fields.get(target))
        walk.children(node_type, fields, skip=targets)

    return handler


def _create_trigger(walk: Walk, node_type: str, fields: Fields) -> None:
    walk.write(fields.get("relation"))
    # The trigger calls this function every time it fires.
    name = qualified(string_parts(fields.get("funcname")))
    if name:
        walk.functions.add(name)
    walk.children(node_type, fields, skip=("relation", "funcname"))


def _drop(walk: Walk, node_type: str, fields: Fields) -> None:
    """DROP of tables, views and sequences names them as lists of strings, not RangeVars."""
    if fields.get("removeType") not in RELATION_OBJECTS:
        return
    for item_type, item in nodes_in_list(fields.get("objects")):
        parts = string_parts(item.get("items")) if item_type == "List" else []
        if parts:
            walk.written.add(qualified(parts))


def _grant(walk: Walk, node_type: str, fields: Fields) -> None:
    """GRANT/REVOKE on named tables changes who may touch them: they count as written."""
    named = fields.get("targtype") == "ACL_TARGET_OBJECT"
    if not (named and fields.get("objtype") in GRANTABLE_RELATIONS):
        walk.children(node_type, fields)
        return
    walk.write(fields.get("objects"))
    walk.children(node_type, fields, skip=("objects",))


def _skip(*fields_to_skip: str) -> _Handler:
    def handler(walk: Walk, node_type: str, fields: Fields) -> None:
        walk.children(node_type, fields, skip=fields_to_skip)

    return handler


_HANDLERS: Final[dict[str, _Handler]] = {
    "RangeVar": _range_var,
    "FuncCall": _func_call,
    "InsertStmt": _insert,
    "UpdateStmt": _update_or_delete("update"),
    "DeleteStmt": _update_or_delete("delete"),
    "MergeStmt": _merge,
    "IntoClause": _into,
    "CopyStmt": _copy,
    "ExplainStmt": _explain,
    "PrepareStmt": _inner_statement("query"),
    "DeclareCursorStmt": _inner_statement("query"),
    "CreateTableAsStmt": _create_table_as,
    "CreateTrigStmt": _create_trigger,
    "DropStmt": _drop,
    "GrantStmt": _grant,
    "TruncateStmt": _writes("relations"),
    "CreateStmt": _writes("relation"),
    "ViewStmt": _writes("view"),
    "RuleStmt": _writes("relation"),
    "IndexStmt": _writes("relation"),
    "AlterTableStmt": _writes("relation"),
    "RenameStmt": _writes("relation"),
    "AlterObjectSchemaStmt": _writes("relation"),
    "AlterOwnerStmt": _writes("relation"),
    "CreatePolicyStmt": _writes("table"),
    "AlterPolicyStmt": _writes("table"),
    "RefreshMatViewStmt": _writes("relation"),
    "CreateSeqStmt": _writes("sequence"),
    "AlterSeqStmt": _writes("sequence"),
    # CREATE TYPE t AS (...) names a type, not a table.
    "CompositeTypeStmt": _skip("typevar"),
}
