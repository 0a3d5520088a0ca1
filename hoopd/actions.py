"""What a command needs from a token's scope: ``read``, ``write`` or ``admin``.

Scopes (:mod:`hoopd.identity.scope`) are coarse on purpose: a token is scoped to
reading a connection, writing it, or administering it. Policy rules judge the
details. For SQL the statement kinds decide (docs/identity.md lists the table),
with a few side-effect functions raising a plain ``SELECT`` to the action its
effect needs. Anything this module cannot place (an unparseable or opaque
statement, a kind it does not list) needs ``admin``: unknown is never read-only.

A read scope judges by what the statement says. A user-defined function that
writes looks like a ``SELECT`` here; pair read-only scopes with a read-only
upstream role where that matters (docs/identity.md).
"""

from __future__ import annotations

from typing import Final

from hoopd.events import HostClassification, SqlClassification
from hoopd.identity.scope import ACTIONS

READ, WRITE, ADMIN = range(3)

SQL_KIND_LEVELS: Final[dict[str, int]] = {
    **dict.fromkeys(
        (
            "select", "explain", "show", "set", "transaction", "listen", "unlisten",
            "empty", "copy-out", "prepare", "deallocate", "discard",
        ),
        READ,
    ),
    **dict.fromkeys(
        (
            "insert", "update", "delete", "merge", "copy-in", "truncate", "notify",
            "lock", "call", "explain-analyze-write", "vacuum", "analyze", "comment",
        ),
        WRITE,
    ),
}  # fmt: skip
"""The level each SQL statement kind needs; a kind not listed needs ``admin``."""

SQL_FUNCTION_LEVELS: Final[dict[str, int]] = {
    **dict.fromkeys(("nextval", "setval", "pg_advisory_lock", "lo_create", "lo_unlink"), WRITE),
    **dict.fromkeys(
        (
            "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile",
            "pg_switch_wal", "pg_create_restore_point", "set_config", "pg_read_file",
            "pg_read_binary_file", "pg_ls_dir", "pg_stat_file", "lo_import", "lo_export",
            "dblink", "dblink_exec", "dblink_connect", "pg_promote", "pg_logical_emit_message",
        ),
        ADMIN,
    ),
}  # fmt: skip
"""Functions that raise a statement above what its kinds need (bare or pg_catalog.)."""


HOST_KIND_LEVELS: Final[dict[str, int]] = {
    **dict.fromkeys(("sftp-read", "sftp-list"), READ),
    **dict.fromkeys(
        ("exec", "sftp-write", "sftp-remove", "sftp-rename", "sftp-mkdir", "sftp-setstat",
         "forward"),
        WRITE,
    ),
}  # fmt: skip
"""The level each host command kind needs (an interactive shell, a subsystem other
than SFTP, remote forwarding, agent and X11 forwarding need ``admin``): a command
line can do anything its account can, so even ``exec`` is more than ``read``."""


def level_of(classification: SqlClassification) -> int:
    """The action index a command with this classification needs."""
    if isinstance(classification, HostClassification):
        return max((HOST_KIND_LEVELS.get(k, ADMIN) for k in classification.kinds), default=ADMIN)
    return sql_level(classification)


def sql_level(classification: SqlClassification) -> int:
    """The action index (0 read, 1 write, 2 admin) a SQL text needs."""
    if classification.opaque or classification.parse_error is not None:
        return ADMIN
    level = max((SQL_KIND_LEVELS.get(kind, ADMIN) for kind in classification.kinds), default=ADMIN)
    for function in classification.functions:
        name = function.lower().removeprefix("pg_catalog.")
        level = max(level, SQL_FUNCTION_LEVELS.get(name, READ))
    return level


def action_name(level: int) -> str:
    return ACTIONS[level]
