"""The approvals database's layout, and the mapping between its rows and requests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final, cast

from hoopd.approvals.model import ApprovalRequest, Decision, Status

STORE_NAME: Final = "approvals.sqlite"
SCHEMA_VERSION: Final = 1
COLUMNS: Final = (
    "id, created_at, deadline, session_id, requester, requester_groups, actor_chain,"
    " connection, protocol, command, command_digest, rule, approver_groups, min_approvals,"
    " status, resolved_at, resolution"
)
SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS requests (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    deadline REAL NOT NULL,
    session_id TEXT NOT NULL,
    requester TEXT NOT NULL,
    requester_groups TEXT NOT NULL,   -- JSON array
    actor_chain TEXT NOT NULL,        -- JSON array
    connection TEXT NOT NULL,
    protocol TEXT NOT NULL,
    command TEXT NOT NULL,
    command_digest TEXT NOT NULL,
    rule TEXT NOT NULL,
    approver_groups TEXT NOT NULL,    -- JSON array
    min_approvals INTEGER NOT NULL,
    status TEXT NOT NULL,
    resolved_at REAL,
    resolution TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS requests_pending ON requests (status, deadline);
CREATE TABLE IF NOT EXISTS decisions (
    request_id TEXT NOT NULL REFERENCES requests (id),
    approver TEXT NOT NULL,
    groups TEXT NOT NULL,             -- JSON array
    decision TEXT NOT NULL CHECK (decision IN ('approve', 'deny')),
    reason TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (request_id, approver)  -- each approver counts once, whatever the code says
);
"""


def store_path(data_dir: Path) -> Path:
    return data_dir / STORE_NAME


def decision_row(d: Decision) -> tuple[Any, ...]:
    return (d.approver, tuple_to_json(d.groups), d.decision, d.reason, d.at)


def tuple_to_json(items: tuple[str, ...]) -> str:
    return json.dumps(list(items))


def tuple_from_json(text: str) -> tuple[str, ...]:
    return tuple(str(item) for item in json.loads(text))


def request_from_row(row: tuple[Any, ...], decisions: tuple[Decision, ...]) -> ApprovalRequest:
    (
        rid,
        created_at,
        deadline,
        session_id,
        requester,
        requester_groups,
        actor_chain,
        connection,
        protocol,
        command,
        command_digest,
        rule,
        approver_groups,
        min_approvals,
        status,
        resolved_at,
        resolution,
    ) = row
    return ApprovalRequest(
        id=rid,
        created_at=created_at,
        deadline=deadline,
        session_id=session_id,
        requester=requester,
        requester_groups=tuple_from_json(requester_groups),
        actor_chain=tuple_from_json(actor_chain),
        connection=connection,
        protocol=protocol,
        command=command,
        command_digest=command_digest,
        rule=rule,
        approver_groups=tuple_from_json(approver_groups),
        min_approvals=min_approvals,
        status=cast(Status, status),
        decisions=decisions,
        resolved_at=resolved_at,
        resolution=resolution,
    )
