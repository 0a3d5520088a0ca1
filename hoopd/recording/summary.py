"""What is known about one session, and how to learn it from the journal alone."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from hoopd.recording.frames import Record

SessionState = Literal["ended", "active", "unterminated"]


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """One session as the index (or a journal scan) describes it.

    ``state`` is ``ended`` once a ``session_end`` record exists, ``active`` while the
    gateway that started it is still running, and ``unterminated`` when that gateway
    stopped without ending it (it was killed). ``statement_count``, ``last_seq`` and
    ``head_hash`` are None when unknown: the index learns them when the session
    ends (or from ``hoopd audit reindex``).
    """

    session_id: str
    connection: str
    protocol: str
    client_addr: str
    identity: Mapping[str, Any] | None
    attributes: Mapping[str, Any]
    started_at: float
    first_segment: int
    ended_at: float | None = None
    end_reason: str | None = None
    statement_count: int | None = None
    last_segment: int | None = None
    last_seq: int | None = None
    head_hash: bytes | None = None
    state: SessionState = "unterminated"

    @property
    def subject(self) -> str | None:
        subject = self.identity.get("subject") if self.identity else None
        return subject if isinstance(subject, str) else None

    @property
    def record_count(self) -> int | None:
        return None if self.last_seq is None else self.last_seq + 1

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.session_id,
            "state": self.state,
            "connection": self.connection,
            "protocol": self.protocol,
            "client_addr": self.client_addr,
            "identity": self.identity,
            "attributes": self.attributes,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "end_reason": self.end_reason,
            "statement_count": self.statement_count,
            "record_count": self.record_count,
            "head_hash": None if self.head_hash is None else self.head_hash.hex(),
        }


def accepted_identity(kind: str, body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The identity an ``auth`` record accepted, if it is one that did."""
    if kind == "auth" and body.get("outcome") == "accepted":
        identity = body.get("identity")
        if isinstance(identity, Mapping):
            return identity
    return None


class SummaryBuilder:
    """Accumulates the records of many sessions, in journal order, into summaries."""

    def __init__(self) -> None:
        self._sessions: dict[str, dict[str, Any]] = {}

    def add(self, record: Record) -> None:
        fields = self._sessions.get(record.session_id)
        body = record.body
        if fields is None:
            start = body if record.kind == "session_start" else {}
            fields = self._sessions[record.session_id] = {
                "session_id": record.session_id,
                "connection": str(start.get("connection", "")),
                "protocol": str(start.get("protocol", "")),
                "client_addr": str(start.get("client_addr", "")),
                "identity": _mapping_or_none(start.get("identity")),
                "attributes": _mapping_or_none(start.get("attributes")) or {},
                "started_at": record.time,
                "first_segment": record.segment,
                "statement_count": 0,
            }
        fields["last_segment"] = record.segment
        fields["last_seq"] = record.seq
        fields["head_hash"] = record.hash
        if record.kind == "statement":
            fields["statement_count"] += 1
        elif record.kind == "session_end":
            fields.update(ended_at=record.time, end_reason=str(body.get("reason")), state="ended")
        identity = accepted_identity(record.kind, body)
        if identity is not None:
            fields["identity"] = identity

    def summaries(self) -> dict[str, SessionSummary]:
        return {sid: SessionSummary(**fields) for sid, fields in self._sessions.items()}


def _mapping_or_none(value: object) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) else None
