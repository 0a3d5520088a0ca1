"""Shared helpers for the approval tests: people, tokens, a store, a request."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from hoopd.approvals import ApprovalRequest, ApprovalStore, command_digest
from hoopd.identity.base import Identity
from hoopd.identity.tokens import token_sha256

ALICE = Identity("alice", ("dev",), "st:alice")  # asks for approval
BOB = Identity("bob", ("dba",), "st:bob")  # an approver
CAROL = Identity("carol", ("dba", "oncall"), "st:carol")  # another approver
DAVE = Identity("dave", ("dev",), "st:dave")  # neither

TOKENS = {
    "alice": "hoopd_alice-token-000000000000000000",
    "bob": "hoopd_bob-token-00000000000000000000",
    "carol": "hoopd_carol-token-000000000000000000",
    "dave": "hoopd_dave-token-0000000000000000000",
}
GROUPS = {"alice": ("dev",), "bob": ("dba",), "carol": ("dba", "oncall"), "dave": ("dev",)}

SQL = "DELETE FROM accounts WHERE closed_at < now() - interval '7 years'"


class FakeClock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now


def new_request(store: ApprovalStore, **overrides: Any) -> ApprovalRequest:
    """A pending request by alice on appdb, approvable by one member of dba within 300 s."""
    fields: dict[str, Any] = {
        "session_id": "0123456789abcdef",
        "requester": "alice",
        "requester_groups": ("dev",),
        "connection": "appdb",
        "protocol": "postgres",
        "command": SQL,
        "command_digest": command_digest("postgres", "appdb", SQL),
        "rule": "prod-deletes",
        "approver_groups": ("dba",),
        "min_approvals": 1,
        "deadline": store.now() + 300,
    }
    fields.update(overrides)
    return store.create(**fields)


def tokens_toml() -> str:
    blocks = []
    for name, token in TOKENS.items():
        groups = ", ".join(f'"{g}"' for g in GROUPS[name])
        blocks.append(
            f'[[tokens]]\nidentity = "{name}"\ngroups = [{groups}]\n'
            f'sha256 = "{token_sha256(token)}"\nexpires = 2099-01-01T00:00:00Z\n'
        )
    return "\n".join(blocks)


def write_config(directory: Path) -> Path:
    """A minimal hoopd.toml with a token for each person and data in ``directory/data``."""
    path = directory / "hoopd.toml"
    path.write_text(f'[gateway]\ndata_dir = "data"\n\n{tokens_toml()}')
    return path
