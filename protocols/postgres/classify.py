"""What a piece of SQL text will make PostgreSQL do, told from the text alone.

:func:`classify` parses the text with PostgreSQL's own grammar (libpg_query, through
pglast) and walks every statement's parse tree, subqueries and CTEs included. It
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
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, Final

import pglast.ast
from pglast import parser as _pg

from hoopd.events import SqlClassification

from .escapes import as_escape_strings

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

_Fields = dict[str, Any]


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
    only where :class:`_Walk` sets ``reads_literals``, and such results are not shared.
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
    walk = _Walk()
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


# ---------------------------------------------------------------------------
# Reading libpg_query's JSON parse tree
#
# A node is written as {"TypeName": {fields}} where its C field is a generic Node *
# or a list element, but as the bare {fields} where the C field names a specific
# struct (RangeVar *relation, SelectStmt *larg). pglast records each field's C
# type; _EMBEDDED is derived from it so the walker knows what a bare struct is.


def _node_types() -> frozenset[str]:
    """The names of every parse node type pglast knows."""
    return frozenset(
        name
        for name in dir(pglast.ast)
        if isinstance(cls := getattr(pglast.ast, name), type) and issubclass(cls, pglast.ast.Node)
    )


_NODE_TYPES: Final = _node_types()


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


_EMBEDDED: Final = _embedded_struct_fields()
_NOTHING_EMBEDDED: Final[dict[str, str]] = {}

# Nodes that cannot hold a relation, a function call or a statement. Not descending
# into them is purely for speed: they are most of the nodes in a typical tree.
_LEAVES: Final = frozenset(
    {
        "A_Const", "String", "Integer", "Float", "Boolean", "BitString",
        "A_Star", "ColumnRef", "ParamRef", "TypeName", "Alias", "CurrentOfExpr",
    }
)  # fmt: skip


def _wrapped(value: Any) -> Iterator[tuple[str, _Fields]]:
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


def _qualified(parts: list[str]) -> str:
    return ".".join(_quote(part) for part in parts)


def _string_parts(items: Any) -> list[str]:
    """The names in a list of String nodes (``funcname``, a ``DROP`` object)."""
    parts: list[str] = []
    for item in items if isinstance(items, list) else []:
        for node_type, fields in _wrapped(item):
            if node_type == "String" and isinstance(fields.get("sval"), str):
                parts.append(fields["sval"])
    return parts


def _relation_name(range_var: _Fields) -> str | None:
    """``catalog.schema.name`` with only the parts that were written; None if malformed."""
    if not isinstance(range_var.get("relname"), str):
        return None
    parts = [range_var.get(key) for key in ("catalogname", "schemaname", "relname")]
    return _qualified([part for part in parts if isinstance(part, str)])


def _range_vars(value: Any) -> Iterator[_Fields]:
    """RangeVars held by a field: one bare struct, or a list of wrapped nodes."""
    if isinstance(value, list):
        for item in value:
            for node_type, fields in _wrapped(item):
                if node_type == "RangeVar":
                    yield fields
    elif isinstance(value, dict) and "relname" in value:
        yield value


# ---------------------------------------------------------------------------
# The walk


class _Walk:
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

    def absorb(self, other: _Walk) -> None:
        self.kinds |= other.kinds
        self.read |= other.read
        self.written |= other.written
        self.functions |= other.functions
        self.where_absent |= other.where_absent
        self.opaque |= other.opaque
        self.reads_literals |= other.reads_literals

    def statement(self, value: Any) -> None:
        """Walk a wrapped node that PostgreSQL runs as a statement: its own kind counts."""
        for node_type, fields in _wrapped(value):
            if self.record:
                self.kinds |= _statement_kinds(node_type, fields)
                if node_type in _OPAQUE_STATEMENTS:
                    self.opaque = True
            self.node(node_type, fields)

    def wrapped(self, value: Any) -> None:
        """Walk a wrapped node found inside another (a subquery, an expression, ...)."""
        if type(value) is dict:
            for node_type, fields in value.items():
                if type(fields) is dict and node_type not in _LEAVES:
                    self.node(node_type, fields)

    def node(self, node_type: str, fields: _Fields) -> None:
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

    def _dispatch(self, handler: _Handler | None, node_type: str, fields: _Fields) -> None:
        if handler is None:
            self.children(node_type, fields)
        else:
            handler(self, node_type, fields)

    def children(self, node_type: str, fields: _Fields, skip: tuple[str, ...] = ()) -> None:
        """Walk every field of a node except ``skip`` (and ``withClause``, done by node)."""
        # The hot loop of classification, hence the inlined checks: it runs for every
        # field of every node, and most fields are scalars or leaves.
        embedded = _EMBEDDED.get(node_type, _NOTHING_EMBEDDED)
        node = self.node
        for key, value in fields.items():
            if type(value) is list:
                if key in skip:
                    continue
                for item in value:
                    if type(item) is dict:
                        for item_type, item_fields in item.items():
                            if type(item_fields) is dict and item_type not in _LEAVES:
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
                    if item_type in _NODE_TYPES and type(item_fields) is dict:
                        if item_type not in _LEAVES:
                            node(item_type, item_fields)
                        continue
                # A bare struct pglast did not describe: still look inside, and
                # never lose a relation because of it.
                node("RangeVar" if "relname" in value else "", value)

    def _enter_with(self, with_clause: _Fields) -> None:
        """Walk the CTEs and push their names as a scope for the owning statement.

        Without RECURSIVE a CTE sees only the CTEs before it (a reference to its own
        name inside its body is to a real table); with RECURSIVE it sees them all.
        """
        ctes = [fields for _, fields in _wrapped_list(with_clause.get("ctes"))]
        names = [cte.get("ctename") for cte in ctes]
        scope: set[str] = set()
        if with_clause.get("recursive"):
            scope.update(name for name in names if isinstance(name, str))
        self._cte_scopes.append(scope)
        for cte, name in zip(ctes, names, strict=True):
            self.node("CommonTableExpr", cte)
            if isinstance(name, str):
                scope.add(name)

    def is_cte(self, range_var: _Fields) -> bool:
        if "schemaname" in range_var or "catalogname" in range_var:
            return False
        name = range_var.get("relname")
        return any(name in scope for scope in self._cte_scopes)

    def write(self, value: Any) -> None:
        """Record the relations in ``value`` as written (never CTE names: targets are tables)."""
        for range_var in _range_vars(value):
            name = _relation_name(range_var)
            if name is not None:
                self.written.add(name)


def _wrapped_list(value: Any) -> Iterator[tuple[str, _Fields]]:
    for item in value if isinstance(value, list) else []:
        yield from _wrapped(item)


# ---------------------------------------------------------------------------
# Statement kinds (what a statement adds when PostgreSQL runs it as a statement)

_FIXED_KINDS: Final[dict[str, frozenset[str]]] = {
    node_type: frozenset(kinds)
    for node_type, kinds in {
        "SelectStmt": {"select"},
        # Data-modifying statements report their kinds wherever they appear
        # (CTEs, rule actions), so their handlers do it, not this table.
        "InsertStmt": set(),
        "UpdateStmt": set(),
        "DeleteStmt": set(),
        "MergeStmt": set(),
        "TruncateStmt": {"truncate"},
        "CallStmt": {"call"},
        "DoStmt": {"do-block"},
        "PrepareStmt": {"prepare"},
        "ExecuteStmt": {"execute"},
        "DeallocateStmt": {"deallocate"},
        "ExplainStmt": {"explain"},
        "VariableShowStmt": {"show"},
        "TransactionStmt": {"transaction"},
        "ListenStmt": {"listen"},
        "UnlistenStmt": {"unlisten"},
        "NotifyStmt": {"notify"},
        "LockStmt": {"lock"},
        "DiscardStmt": {"discard"},
        "CommentStmt": {"comment"},
        "SecLabelStmt": {"security-label"},
        "AlterSystemStmt": {"alter-system"},
        "CreateExtensionStmt": {"ddl", "extension"},
        "AlterExtensionStmt": {"alter", "extension"},
        "AlterExtensionContentsStmt": {"alter", "extension"},
        "CreateRoleStmt": {"role"},
        "AlterRoleStmt": {"role"},
        "AlterRoleSetStmt": {"role"},
        "DropRoleStmt": {"role"},
        "CreateTableAsStmt": {"ddl"},
        "ViewStmt": {"ddl"},
        "IndexStmt": {"ddl"},
        "RuleStmt": {"ddl"},
        "DefineStmt": {"ddl"},
        "CompositeTypeStmt": {"ddl"},
        "ImportForeignSchemaStmt": {"ddl"},
        "CreatedbStmt": {"ddl"},
        "DropdbStmt": {"drop"},
        "DropOwnedStmt": {"drop"},
        "ReassignOwnedStmt": {"alter"},
    }.items()
}

_OPAQUE_STATEMENTS: Final = frozenset({"ExecuteStmt", "DoStmt"})

# Objects a DROP can name that are relations (tables and what reads like one).
_RELATION_OBJECTS: Final = frozenset(
    {"OBJECT_TABLE", "OBJECT_VIEW", "OBJECT_MATVIEW", "OBJECT_FOREIGN_TABLE", "OBJECT_SEQUENCE"}
)

_GRANTABLE_RELATIONS: Final = frozenset({"OBJECT_TABLE", "OBJECT_SEQUENCE"})

# SET parameters that change the identity privileges are checked against.
_ROLE_PARAMETERS: Final = frozenset({"role", "session_authorization"})

# SET TRANSACTION ... sets the current transaction's characteristics (the grammar's names).
_TRANSACTION_SETTINGS: Final = frozenset({"TRANSACTION", "TRANSACTION SNAPSHOT"})


def _grant_or_revoke(fields: _Fields) -> str:
    return "grant" if fields.get("is_grant") else "revoke"


def _copy_kinds(fields: _Fields) -> frozenset[str]:
    kinds = {"copy-in" if fields.get("is_from") else "copy-out"}
    if "filename" in fields:  # absent for STDIN / STDOUT
        kinds.add("copy-program" if fields.get("is_program") else "copy-file")
    return frozenset(kinds)


def _variable_set_kinds(fields: _Fields) -> frozenset[str]:
    name = fields.get("name")
    if name in _ROLE_PARAMETERS:
        return frozenset({"role"})
    if name in _TRANSACTION_SETTINGS:
        return frozenset({"transaction"})
    return frozenset({"set"})


def _drop_kinds(fields: _Fields) -> frozenset[str]:
    if fields.get("removeType") == "OBJECT_EXTENSION":
        return frozenset({"drop", "extension"})
    return frozenset({"drop"})


def _rename_kinds(fields: _Fields) -> frozenset[str]:
    return frozenset({"role" if fields.get("renameType") == "OBJECT_ROLE" else "alter"})


def _alter_schema_kinds(fields: _Fields) -> frozenset[str]:
    if fields.get("objectType") == "OBJECT_EXTENSION":
        return frozenset({"alter", "extension"})
    return frozenset({"alter"})


def _default_privileges_kinds(fields: _Fields) -> frozenset[str]:
    action = fields.get("action")
    action = action if isinstance(action, dict) else {}
    return frozenset({"alter", _grant_or_revoke(action)})


_COMPUTED_KINDS: Final[dict[str, Callable[[_Fields], frozenset[str]]]] = {
    "CopyStmt": _copy_kinds,
    "VariableSetStmt": _variable_set_kinds,
    "GrantStmt": lambda fields: frozenset({_grant_or_revoke(fields)}),
    # Role membership is a change of privileges as much as SET ROLE is.
    "GrantRoleStmt": lambda fields: frozenset({_grant_or_revoke(fields), "role"}),
    "DropStmt": _drop_kinds,
    "RenameStmt": _rename_kinds,
    "AlterObjectSchemaStmt": _alter_schema_kinds,
    "AlterDefaultPrivilegesStmt": _default_privileges_kinds,
    "VacuumStmt": lambda fields: frozenset({"vacuum" if fields.get("is_vacuumcmd") else "analyze"}),
}

_PREFIX_KINDS: Final = (("Create", "ddl"), ("Alter", "alter"), ("Drop", "drop"))
_UTILITY: Final = frozenset({"utility"})


def _statement_kinds(node_type: str, fields: _Fields) -> frozenset[str]:
    """The kinds a statement of this type adds, apart from what its parts add."""
    fixed = _FIXED_KINDS.get(node_type)
    if fixed is not None:
        return fixed
    computed = _COMPUTED_KINDS.get(node_type)
    if computed is not None:
        return computed(fields)
    # Every other CREATE/ALTER/DROP node PostgreSQL has (and may add) is named so.
    for prefix, kind in _PREFIX_KINDS:
        if node_type.startswith(prefix):
            return frozenset({kind})
    return _UTILITY


# ---------------------------------------------------------------------------
# Node handlers: what a node contributes wherever it appears

_Handler = Callable[[_Walk, str, _Fields], None]


def _range_var(walk: _Walk, node_type: str, fields: _Fields) -> None:
    name = _relation_name(fields)
    if name is not None and not walk.is_cte(fields):
        walk.read.add(name)


def _func_call(walk: _Walk, node_type: str, fields: _Fields) -> None:
    parts = _string_parts(fields.get("funcname"))
    if parts:
        walk.functions.add(_qualified(parts))
    if walk.record and _is_set_config(parts):
        walk.kinds.add(_set_config_kind(walk, fields.get("args")))
    walk.children(node_type, fields, skip=("funcname",))


def _is_set_config(parts: list[str]) -> bool:
    return parts[-1:] == ["set_config"] and parts[:-1] in ([], ["pg_catalog"])


def _set_config_kind(walk: _Walk, args: Any) -> str:
    """``set_config(name, ...)`` is a SET: "role" when it names role or session_authorization.

    The name is a constant, so literal variants must not share the result. A name
    that is not a constant could be either, and "role" is the stricter answer.
    """
    walk.reads_literals = True
    first = args[0] if isinstance(args, list) and args else None
    name = _constant_string(first)
    if name is None or name.lower() in _ROLE_PARAMETERS:
        return "role"
    return "set"


def _constant_string(value: Any) -> str | None:
    """The text of a string constant, looking through casts; None for anything else."""
    for node_type, fields in _wrapped(value):
        if node_type == "TypeCast":
            return _constant_string(fields.get("arg"))
        if node_type == "A_Const":
            sval = fields.get("sval")
            if isinstance(sval, dict) and isinstance(sval.get("sval"), str):
                return str(sval["sval"])
    return None


def _insert(walk: _Walk, node_type: str, fields: _Fields) -> None:
    if walk.record:
        walk.kinds.add("insert")
        conflict = fields.get("onConflictClause")
        # ON CONFLICT DO UPDATE changes existing rows (and needs UPDATE privilege).
        if isinstance(conflict, dict) and conflict.get("action") == "ONCONFLICT_UPDATE":
            walk.kinds.add("update")
    walk.write(fields.get("relation"))
    walk.children(node_type, fields, skip=("relation",))


def _update_or_delete(kind: str) -> _Handler:
    def handler(walk: _Walk, node_type: str, fields: _Fields) -> None:
        if walk.record:
            walk.kinds.add(kind)
            # WHERE CURRENT OF is a whereClause too, so it counts as present.
            if "whereClause" not in fields:
                walk.where_absent = True
        walk.write(fields.get("relation"))
        walk.children(node_type, fields, skip=("relation",))

    return handler


_MERGE_ACTIONS: Final = {"CMD_INSERT": "insert", "CMD_UPDATE": "update", "CMD_DELETE": "delete"}


def _merge(walk: _Walk, node_type: str, fields: _Fields) -> None:
    if walk.record:
        walk.kinds.add("merge")
        # A policy that blocks "delete" must see MERGE ... THEN DELETE too.
        for _, clause in _wrapped_list(fields.get("mergeWhenClauses")):
            action = _MERGE_ACTIONS.get(str(clause.get("commandType")))
            if action is not None:
                walk.kinds.add(action)
    walk.write(fields.get("relation"))
    walk.children(node_type, fields, skip=("relation",))


def _into(walk: _Walk, node_type: str, fields: _Fields) -> None:
    """SELECT ... INTO and CREATE TABLE AS create (and fill) the table named here."""
    if walk.record:
        walk.kinds.add("ddl")
    walk.write(fields.get("rel"))
    walk.children(node_type, fields, skip=("rel",))


def _copy(walk: _Walk, node_type: str, fields: _Fields) -> None:
    walk.statement(fields.get("query"))
    if fields.get("is_from"):
        walk.write(fields.get("relation"))
        walk.children(node_type, fields, skip=("query", "relation"))
    else:
        walk.children(node_type, fields, skip=("query",))


def _explain(walk: _Walk, node_type: str, fields: _Fields) -> None:
    analyze = _explain_analyzes(walk, fields.get("options"))
    inner = _Walk(record=walk.record and analyze)
    inner.statement(fields.get("query"))
    # EXPLAIN ANALYZE runs the statement: anything that writes, or that we cannot
    # see into (EXECUTE), makes the EXPLAIN a write.
    if inner.record and (inner.written or inner.opaque):
        walk.kinds.add("explain-analyze-write")
    walk.absorb(inner)


def _explain_analyzes(walk: _Walk, options: Any) -> bool:
    """Whether EXPLAIN's options turn ANALYZE on, read as PostgreSQL's defGetBoolean does.

    A value it would reject counts as on: the statement fails anyway, and erring
    towards "it executes" is the safe side.
    """
    analyze = False
    for node_type, option in _wrapped_list(options):
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
    for node_type, value in _wrapped(arg):
        if node_type == "Integer":
            return bool(value.get("ival", 0) != 0)  # JSON omits a zero ival
        if node_type == "String":
            return str(value.get("sval", "")).lower() not in ("false", "off")
    return True


def _inner_statement(field: str) -> _Handler:
    """PREPARE, DECLARE CURSOR: the inner statement's kinds are reported too."""

    def handler(walk: _Walk, node_type: str, fields: _Fields) -> None:
        walk.statement(fields.get(field))
        walk.children(node_type, fields, skip=(field,))

    return handler


def _create_table_as(walk: _Walk, node_type: str, fields: _Fields) -> None:
    into = fields.get("into")
    if isinstance(into, dict) and into.get("skipData"):
        walk.wrapped(fields.get("query"))  # WITH NO DATA: the query is stored, not run
    else:
        walk.statement(fields.get("query"))
    walk.children(node_type, fields, skip=("query",))


def _writes(*targets: str) -> _Handler:
    """A DDL node whose ``targets`` fields name the relations it creates or changes."""

    def handler(walk: _Walk, node_type: str, fields: _Fields) -> None:
        for target in targets:
            walk.write(fields.get(target))
        walk.children(node_type, fields, skip=targets)

    return handler


def _create_trigger(walk: _Walk, node_type: str, fields: _Fields) -> None:
    walk.write(fields.get("relation"))
    # The trigger calls this function every time it fires.
    name = _qualified(_string_parts(fields.get("funcname")))
    if name:
        walk.functions.add(name)
    walk.children(node_type, fields, skip=("relation", "funcname"))


def _drop(walk: _Walk, node_type: str, fields: _Fields) -> None:
    """DROP of tables, views and sequences names them as lists of strings, not RangeVars."""
    if fields.get("removeType") not in _RELATION_OBJECTS:
        return
    for item_type, item in _wrapped_list(fields.get("objects")):
        parts = _string_parts(item.get("items")) if item_type == "List" else []
        if parts:
            walk.written.add(_qualified(parts))


def _grant(walk: _Walk, node_type: str, fields: _Fields) -> None:
    """GRANT/REVOKE on named tables changes who may touch them: they count as written."""
    named = fields.get("targtype") == "ACL_TARGET_OBJECT"
    if not (named and fields.get("objtype") in _GRANTABLE_RELATIONS):
        walk.children(node_type, fields)
        return
    walk.write(fields.get("objects"))
    walk.children(node_type, fields, skip=("objects",))


def _skip(*fields_to_skip: str) -> _Handler:
    def handler(walk: _Walk, node_type: str, fields: _Fields) -> None:
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
