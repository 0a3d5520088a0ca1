"""Approval requests in SQLite: ``<data_dir>/approvals.sqlite``.

Guarantees:

* Every process that opens the same data directory sees the same requests: a gateway
  creating and waiting, ``hoopd approve`` in a terminal, the admin API.
* Each change (create, decide, cancel, expire) is one ``BEGIN IMMEDIATE`` transaction
  that reads the request and writes its new state under SQLite's write lock, so two
  deciders in different processes never both win: the second sees the first's outcome.
* A request leaves ``pending`` once, and a decided, expired or cancelled request never
  changes again.
* Calls are synchronous and short: milliseconds, or up to the 5-second busy timeout
  while another process holds the write lock. Requests and decisions come at human
  pace, so async code calls them directly.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from hoopd.approvals import rules
from hoopd.approvals.ids import new_request_id, normalise_request_id
from hoopd.approvals.model import ApprovalError, ApprovalRequest, Decision, Status
from hoopd.approvals.rows import (
    COLUMNS,
    SCHEMA,
    SCHEMA_VERSION,
    decision_row,
    request_from_row,
    store_path,
    tuple_from_json,
    tuple_to_json,
)
from hoopd.identity.base import Identity
from hoopd.sqlite_store import open_shared_db, transaction

log = logging.getLogger("hoopd.approvals")

_SHA256_RE: Final = re.compile(r"[0-9a-f]{64}")


class ApprovalStore:
    """Pending and past approval requests; see the module docstring for guarantees.

    ``clock`` gives the current Unix time (``time.time`` unless a test replaces it).
    Raises ``sqlite3.Error`` when the database cannot be used.
    """

    def __init__(self, db: sqlite3.Connection, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock

    @classmethod
    def open(cls, data_dir: Path, *, clock: Callable[[], float] = time.time) -> ApprovalStore:
        """Open (creating if needed, mode 0600) the store in ``data_dir``."""
        # Requests hold commands and the names of the people who sent them: private.
        db = open_shared_db(store_path(data_dir), SCHEMA, SCHEMA_VERSION)
        return cls(db, clock)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ApprovalStore:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def now(self) -> float:
        return self._clock()

    def create(
        self,
        *,
        session_id: str,
        requester: str,
        connection: str,
        protocol: str,
        command: str,
        command_digest: str,
        rule: str,
        approver_groups: tuple[str, ...],
        deadline: float,
        min_approvals: int = 1,
        requester_groups: tuple[str, ...] = (),
        actor_chain: tuple[str, ...] = (),
        created_at: float | None = None,
    ) -> ApprovalRequest:
        """Record a new pending request and return it with its fresh id.

        Raises ``ValueError`` for a request nobody could approve (no approver groups,
        ``min_approvals`` below 1) or a ``command_digest`` that is not SHA-256 hex.
        """
        if not approver_groups:
            raise ValueError("an approval request needs at least one approver group")
        if min_approvals < 1:
            raise ValueError("min_approvals must be at least 1")
        if not _SHA256_RE.fullmatch(command_digest):
            raise ValueError("command_digest must be 64 lowercase hex characters")
        now = self.now() if created_at is None else created_at
        values: list[Any] = [
            None,
            now,
            deadline,
            session_id,
            requester,
            tuple_to_json(requester_groups),
            tuple_to_json(actor_chain),
            connection,
            protocol,
            command,
            command_digest,
            rule,
            tuple_to_json(approver_groups),
            min_approvals,
            "pending",
            None,
            "",
        ]
        for _ in range(5):
            values[0] = new_request_id()
            try:
                with transaction(self._db, immediate=True):
                    self._db.execute(
                        f"INSERT INTO requests ({COLUMNS}) VALUES ({', '.join('?' * 17)})",
                        values,
                    )
            except sqlite3.IntegrityError:
                continue  # the random id was taken: 50 bits make this vanishingly rare
            log.info(
                "approval %s opened: %s on %s, rule %s", values[0], requester, connection, rule
            )
            created = self.get(values[0])
            assert created is not None
            return created
        raise sqlite3.IntegrityError("could not find a free approval request id")

    def get(self, request_id: str) -> ApprovalRequest | None:
        """The request (any status), or None. ``request_id`` may be typed loosely
        (see :func:`~hoopd.approvals.ids.normalise_request_id`)."""
        rid = normalise_request_id(request_id)
        if rid is None:
            return None
        with transaction(self._db):  # one snapshot for the request and its decisions
            return self._load(rid)

    def pending(self) -> list[ApprovalRequest]:
        """Every pending request, oldest first, after expiring the overdue ones."""
        self.expire_overdue(self.now())
        with transaction(self._db):
            ids = self._db.execute(
                "SELECT id FROM requests WHERE status = 'pending' ORDER BY created_at, id"
            ).fetchall()
            loaded = (self._load(rid) for (rid,) in ids)
            return [r for r in loaded if r is not None]

    def decide(
        self, request_id: str, approver: Identity, approve: bool, reason: str
    ) -> ApprovalRequest:
        """Record ``approver``'s decision and return the request as it now stands.

        Raises :class:`ApprovalError` (and records nothing) for an unknown id, a request
        no longer pending, self-approval, an approver outside ``approver_groups``, a
        second decision by the same approver or a deny without a reason; see
        :func:`hoopd.approvals.rules.check_decision`. A decision arriving after the
        deadline marks the request expired and is refused.
        """
        rid = normalise_request_id(request_id)
        now = self.now()
        expired = False
        with transaction(self._db, immediate=True):
            request = self._load(rid) if rid else None
            if request is None:
                raise _unknown(request_id)
            if request.status == "pending" and now >= request.deadline:
                self._resolve(request, "expired", rules.expired_resolution(request), now)
                expired = True
            else:
                rules.check_decision(request, approver, approve, reason, now)
                decision = Decision(
                    approver.subject, approver.groups, "approve" if approve else "deny", reason, now
                )
                self._db.execute(
                    "INSERT INTO decisions (request_id, approver, groups, decision, reason, at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (request.id, *decision_row(decision)),
                )
                status, resolution = rules.status_after(request, (*request.decisions, decision))
                if status != "pending":
                    self._resolve(request, status, resolution, now)
        if expired:
            # Raised after the commit, so the expiry is kept.
            rules.check_decision(self._must_get(request.id), approver, approve, reason, now)
        log.info(
            "approval %s: %s by %s", request.id, "approve" if approve else "deny", approver.subject
        )
        return self._must_get(request.id)

    def cancel(self, request_id: str, why: str) -> None:
        """Mark a pending request cancelled (its client went away); ``why`` becomes its
        resolution. A request that is no longer pending is left as it is. Raises
        :class:`ApprovalError` for an unknown id."""
        self._close_one(request_id, "cancelled", lambda r: f"cancelled: {why}")

    def expire(self, request_id: str) -> ApprovalRequest:
        """Mark a pending request expired now, whatever the clock says: for a waiter
        whose own timer reached the deadline. Returns the request as it stands (a
        decision that got in first stays)."""
        self._close_one(request_id, "expired", rules.expired_resolution)
        return self._must_get(request_id)

    def expire_overdue(self, now: float) -> list[ApprovalRequest]:
        """Mark expired every pending request whose deadline is at or before ``now``;
        return them as they now stand."""
        with transaction(self._db, immediate=True):
            overdue = [
                r
                for (rid,) in self._db.execute(
                    "SELECT id FROM requests WHERE status = 'pending' AND deadline <= ?", (now,)
                ).fetchall()
                if (r := self._load(rid)) is not None
            ]
            for request in overdue:
                self._resolve(request, "expired", rules.expired_resolution(request), now)
        return [self._must_get(r.id) for r in overdue]

    def _close_one(
        self, request_id: str, status: Status, resolution: Callable[[ApprovalRequest], str]
    ) -> None:
        rid = normalise_request_id(request_id)
        with transaction(self._db, immediate=True):
            request = self._load(rid) if rid else None
            if request is None:
                raise _unknown(request_id)
            if request.status == "pending":
                self._resolve(request, status, resolution(request), self.now())

    def _resolve(
        self, request: ApprovalRequest, status: Status, resolution: str, now: float
    ) -> None:
        self._db.execute(
            "UPDATE requests SET status = ?, resolved_at = ?, resolution = ?"
            " WHERE id = ? AND status = 'pending'",
            (status, now, resolution, request.id),
        )
        log.info("approval %s %s: %s", request.id, status, resolution)

    def _must_get(self, request_id: str) -> ApprovalRequest:
        request = self.get(request_id)
        if request is None:
            raise _unknown(request_id)
        return request

    def _load(self, rid: str) -> ApprovalRequest | None:
        row = self._db.execute(f"SELECT {COLUMNS} FROM requests WHERE id = ?", (rid,)).fetchone()
        if row is None:
            return None
        decisions = tuple(
            Decision(approver, tuple_from_json(groups), decision, reason, at)
            for approver, groups, decision, reason, at in self._db.execute(
                "SELECT approver, groups, decision, reason, at FROM decisions"
                " WHERE request_id = ? ORDER BY at, rowid",
                (rid,),
            )
        )
        return request_from_row(row, decisions)


def _unknown(request_id: str) -> ApprovalError:
    return ApprovalError("unknown", f"no approval request {request_id.strip()!r}")
