"""Statement kinds: what a statement adds to a classification when PostgreSQL runs it
as a statement (docs/classification.md names them). What its parts add, wherever they
appear, is the walk's business (:mod:`.tree_walk`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from .parse_tree import Fields

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

OPAQUE_STATEMENTS: Final = frozenset({"ExecuteStmt", "DoStmt"})

# Objects a DROP can name that are relations (tables and what reads like one).
RELATION_OBJECTS: Final = frozenset(
    {"OBJECT_TABLE", "OBJECT_VIEW", "OBJECT_MATVIEW", "OBJECT_FOREIGN_TABLE", "OBJECT_SEQUENCE"}
)

GRANTABLE_RELATIONS: Final = frozenset({"OBJECT_TABLE", "OBJECT_SEQUENCE"})

# SET parameters that change the identity privileges are checked against.
ROLE_PARAMETERS: Final = frozenset({"role", "session_authorization"})

# SET TRANSACTION ... sets the current transaction's characteristics (the grammar's names).
_TRANSACTION_SETTINGS: Final = frozenset({"TRANSACTION", "TRANSACTION SNAPSHOT"})


def _grant_or_revoke(fields: Fields) -> str:
    return "grant" if fields.get("is_grant") else "revoke"


def _copy_kinds(fields: Fields) -> frozenset[str]:
    kinds = {"copy-in" if fields.get("is_from") else "copy-out"}
    if "filename" in fields:  # absent for STDIN / STDOUT
        kinds.add("copy-program" if fields.get("is_program") else "copy-file")
    return frozenset(kinds)


def _variable_set_kinds(fields: Fields) -> frozenset[str]:
    name = fields.get("name")
    if name in ROLE_PARAMETERS:
        return frozenset({"role"})
    if name in _TRANSACTION_SETTINGS:
        return frozenset({"transaction"})
    return frozenset({"set"})


def _drop_kinds(fields: Fields) -> frozenset[str]:
    if fields.get("removeType") == "OBJECT_EXTENSION":
        return frozenset({"drop", "extension"})
    return frozenset({"drop"})


def _rename_kinds(fields: Fields) -> frozenset[str]:
    return frozenset({"role" if fields.get("renameType") == "OBJECT_ROLE" else "alter"})


def _alter_schema_kinds(fields: Fields) -> frozenset[str]:
    if fields.get("objectType") == "OBJECT_EXTENSION":
        return frozenset({"alter", "extension"})
    return frozenset({"alter"})


def _default_privileges_kinds(fields: Fields) -> frozenset[str]:
    action = fields.get("action")
    action = action if isinstance(action, dict) else {}
    return frozenset({"alter", _grant_or_revoke(action)})


_COMPUTED_KINDS: Final[dict[str, Callable[[Fields], frozenset[str]]]] = {
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


def statement_kinds(node_type: str, fields: Fields) -> frozenset[str]:
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
