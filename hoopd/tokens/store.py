"""Issued gateway tokens, revocations and token events in SQLite: ``<store_dir>/tokens.db``.

Guarantees:

* Every process that opens the same directory (gateways, ``hoopd revoke``, the admin
  API) sees the same revocations as soon as the writing transaction commits; the
  database runs in WAL mode with a busy timeout, so readers never block the writer.
* A revocation is never removed or changed; revocation ids only grow, so
  :meth:`TokenStore.revocations_since` lets a reader catch up incrementally.
* :meth:`TokenStore.revocation_for` answers for any identity (gateway, static or OIDC
  token): a revoked token revokes every token derived from it, because a token
  carries its lineage.
* The events table is append-only: triggers refuse every UPDATE and DELETE. Events
  hold token ids, never tokens.
* Issued tokens are pruned once expired (lazily, when a token is recorded); only the
  subtree listing depends on them, never the revocation check.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, cast, get_args

from hoopd.identity.base import Identity
from hoopd.sqlite_store import open_shared_db, transaction

log = logging.getLogger("hoopd.tokens")

STORE_FILENAME: Final = "tokens.db"
SCHEMA_VERSION: Final = 1

RevocationKind = Literal["token", "subject", "actor"]
EventKind = Literal["minted", "refused", "revoked"]
REVOCATION_KINDS: Final = get_args(RevocationKind)

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS issued (
    token_id TEXT PRIMARY KEY,
    parent_id TEXT,
    lineage TEXT NOT NULL,
    subject TEXT NOT NULL,
    actor_chain TEXT NOT NULL,
    scope TEXT NOT NULL,
    issued_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS issued_expiry ON issued (expires_at);
CREATE TABLE IF NOT EXISTS revocations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('token', 'subject', 'actor')),
    value TEXT NOT NULL,
    revoked_at REAL NOT NULL,
    revoked_by TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS revocations_value ON revocations (kind, value);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('minted', 'refused', 'revoked')),
    token_id TEXT,
    subject TEXT,
    actor TEXT,
    detail TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'token events are append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'token events are append-only'); END
"""


@dataclass(frozen=True, slots=True)
class Revocation:
    """One revocation: ``kind`` says what ``value`` names (a token id, a subject or an
    actor); ``revoked_by`` who wrote it; ``id`` orders revocations."""

    id: int
    kind: RevocationKind
    value: str
    revoked_at: float
    revoked_by: str
    reason: str

    def describe(self) -> str:
        """A sentence for a refused client and the audit record (no token)."""
        why = f": {self.reason}" if self.reason else ""
        return f"{self.kind} {self.value} was revoked by {self.revoked_by}{why}"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "value": self.value,
            "revoked_at": self.revoked_at,
            "revoked_by": self.revoked_by,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class TokenEvent:
    """One audit event; ``detail`` holds what was asked and why it was refused."""

    id: int
    at: float
    kind: EventKind
    token_id: str | None
    subject: str | None
    actor: str | None
    detail: dict[str, Any]


class TokenStore:
    """The shared token store; see the module docstring for guarantees.

    Raises ``sqlite3.Error`` when the database cannot be used.
    """

    def __init__(self, db: sqlite3.Connection, directory: Path, clock: Callable[[], float]):
        self._db = db
        self.directory = directory
        self._clock = clock

    @classmethod
    def open(cls, store_dir: Path, *, clock: Callable[[], float] = time.time) -> TokenStore:
        """Open (creating if needed, mode 0600) ``tokens.db`` in ``store_dir``."""
        db = open_shared_db(store_dir / STORE_FILENAME, _SCHEMA, SCHEMA_VERSION)
        return cls(db, store_dir, clock)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> TokenStore:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def now(self) -> float:
        return self._clock()

    # -- issued tokens ---------------------------------------------------------------

    def record_minted(self, token: Identity, parent_id: str, detail: dict[str, Any]) -> None:
        """Record a freshly minted token and its ``minted`` event, in one transaction;
        expired issued tokens are pruned on the way."""
        now = self.now()
        with transaction(self._db, immediate=True):
            self._db.execute("DELETE FROM issued WHERE expires_at < ?", (now,))
            self._db.execute(
                "INSERT INTO issued (token_id, parent_id, lineage, subject, actor_chain, scope,"
                " issued_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    token.token_id,
                    parent_id,
                    json.dumps(list(token.lineage)),
                    token.subject,
                    json.dumps(list(token.actor_chain)),
                    " ".join(token.scope or ()),
                    token.issued_at,
                    token.expires_at if token.expires_at is not None else now,
                ),
            )
            self._event("minted", token.token_id, token.subject, token.actor, detail, now)

    def record_refused(
        self, token_id: str | None, subject: str | None, actor: str | None, detail: dict[str, Any]
    ) -> None:
        """Record a refused exchange: who asked (ids only), what, and why."""
        with transaction(self._db, immediate=True):
            self._event("refused", token_id, subject, actor, detail, self.now())

    def minted(self, token_id: str) -> bool:
        """Whether ``token_id`` is an unexpired token minted through this store."""
        row = self._db.execute(
            "SELECT 1 FROM issued WHERE token_id = ? AND expires_at >= ?",
            (token_id, self.now()),
        ).fetchone()
        return row is not None

    def subtree(self, token_id: str) -> list[str]:
        """Ids of the unexpired recorded tokens derived from ``token_id`` (not itself),
        oldest first."""
        rows = self._db.execute(
            "SELECT issued.token_id FROM issued, json_each(issued.lineage) AS ancestor"
            " WHERE ancestor.value = ? AND issued.expires_at >= ?"
            " ORDER BY issued.issued_at, issued.token_id",
            (token_id, self.now()),
        ).fetchall()
        return [row[0] for row in rows]

    # -- revocations -----------------------------------------------------------------

    def revoke_token(self, token_id: str, by: str, reason: str) -> Revocation:
        """Revoke one token id (``gt:``, ``st:`` or ``oidc:``) and everything derived
        from it."""
        return self._revoke("token", token_id, by, reason)

    def revoke_subject(self, subject: str, by: str, reason: str) -> Revocation:
        """Revoke every token of ``subject`` issued up to now (later ones stay valid)."""
        return self._revoke("subject", subject, by, reason)

    def revoke_actor(self, actor: str, by: str, reason: str) -> Revocation:
        """Revoke every token issued up to now whose actor chain names ``actor``."""
        return self._revoke("actor", actor, by, reason)

    def revocation_for(self, identity: Identity) -> Revocation | None:
        """The earliest revocation that applies to ``identity``, or None.

        It applies when it names the token id or any lineage id; or names the subject,
        or any actor of the chain, and was written at or after the token was issued.
        """
        ids = (identity.token_id, *identity.lineage)
        actors = identity.actor_chain
        row = self._db.execute(
            f"SELECT {_REVOCATION_COLUMNS} FROM revocations WHERE"
            f" (kind = 'token' AND value IN ({_marks(ids)}))"
            " OR (kind = 'subject' AND value = ? AND revoked_at >= ?)"
            f" OR (kind = 'actor' AND value IN ({_marks(actors)}) AND revoked_at >= ?)"
            " ORDER BY id LIMIT 1",
            (*ids, identity.subject, identity.issued_at, *actors, identity.issued_at),
        ).fetchone()
        return _revocation(row) if row is not None else None

    def revocation_reason(self, identity: Identity) -> str | None:
        """:meth:`revocation_for` as a sentence (the ``RevocationSource`` interface of
        :mod:`hoopd.live_sessions`), or None. Raises ``sqlite3.Error``."""
        revocation = self.revocation_for(identity)
        return None if revocation is None else revocation.describe()

    def revocations_since(self, last_id: int) -> list[Revocation]:
        """Revocations with an id above ``last_id``, in id order."""
        rows = self._db.execute(
            f"SELECT {_REVOCATION_COLUMNS} FROM revocations WHERE id > ? ORDER BY id",
            (last_id,),
        ).fetchall()
        return [_revocation(row) for row in rows]

    def events(self, since_id: int = 0) -> list[TokenEvent]:
        """Token events with an id above ``since_id``, oldest first."""
        rows = self._db.execute(
            "SELECT id, at, kind, token_id, subject, actor, detail FROM events"
            " WHERE id > ? ORDER BY id",
            (since_id,),
        ).fetchall()
        return [
            TokenEvent(id_, at, cast(EventKind, kind), tid, sub, act, json.loads(detail))
            for id_, at, kind, tid, sub, act, detail in rows
        ]

    def _revoke(self, kind: RevocationKind, value: str, by: str, reason: str) -> Revocation:
        if not value:
            raise ValueError(f"a {kind} revocation needs a {kind}")
        now = self.now()
        with transaction(self._db, immediate=True):
            cursor = self._db.execute(
                "INSERT INTO revocations (kind, value, revoked_at, revoked_by, reason)"
                " VALUES (?, ?, ?, ?, ?)",
                (kind, value, now, by, reason),
            )
            revocation_id = cursor.lastrowid
            assert revocation_id is not None
            token_id = value if kind == "token" else None
            subject = value if kind == "subject" else None
            actor = value if kind == "actor" else None
            detail = {"revocation": revocation_id, "by": by, "reason": reason}
            self._event("revoked", token_id, subject, actor, detail, now)
        log.info("revoked %s %s by %s", kind, value, by)
        return Revocation(revocation_id, kind, value, now, by, reason)

    def _event(
        self,
        kind: EventKind,
        token_id: str | None,
        subject: str | None,
        actor: str | None,
        detail: dict[str, Any],
        at: float,
    ) -> None:
        self._db.execute(
            "INSERT INTO events (at, kind, token_id, subject, actor, detail)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (at, kind, token_id, subject, actor, json.dumps(detail, sort_keys=True)),
        )


_REVOCATION_COLUMNS: Final = "id, kind, value, revoked_at, revoked_by, reason"


def _revocation(row: Sequence[Any]) -> Revocation:
    id_, kind, value, revoked_at, revoked_by, reason = row
    return Revocation(id_, cast(RevocationKind, kind), value, revoked_at, revoked_by, reason)


def _marks(values: Sequence[str]) -> str:
    # "IN ()" is a syntax error in SQLite; NULL matches nothing.
    return ", ".join("?" * len(values)) or "NULL"
