"""The session index: ``<data_dir>/hoopd.sqlite``, one row per session.

The index makes listing sessions and finding a session's segments fast; it is
written when a session starts and when it ends, never per statement. It is not
the record: the journal is, and ``hoopd audit reindex`` rebuilds the index from
it. Verification uses the row a session's end left behind (record count and head
hash) to notice records removed from the end of the journal.

Whoever can write the data dir can edit the index too: reading it checks every
row, and a row the gateway could not have written is reported, never used.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from hoopd.recording.frames import MAX_BODY_DEPTH, nests_deeper
from hoopd.recording.jsonable import to_jsonable
from hoopd.recording.summary import SessionSummary

log = logging.getLogger("hoopd.recording")

INDEX_NAME: Final = "hoopd.sqlite"
SCHEMA_VERSION: Final = 1
_COLUMNS: Final = (
    "id, connection, protocol, subject, identity, client_addr, attributes, started_at,"
    " first_segment, ended_at, end_reason, statement_count, last_segment, last_seq, head_hash"
)
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    connection TEXT NOT NULL,
    protocol TEXT NOT NULL,
    subject TEXT,                 -- identity subject, for listing and filtering
    identity TEXT,                -- the identity record as JSON, NULL when none
    client_addr TEXT NOT NULL,
    attributes TEXT NOT NULL,     -- JSON
    started_at REAL NOT NULL,
    first_segment INTEGER NOT NULL,
    ended_at REAL,                -- NULL until the session_end record is written
    end_reason TEXT,
    statement_count INTEGER,      -- the rest are known once the session ends
    last_segment INTEGER,
    last_seq INTEGER,
    head_hash BLOB
);
CREATE INDEX IF NOT EXISTS sessions_started ON sessions (started_at);
"""


def index_path(data_dir: Path) -> Path:
    return data_dir / INDEX_NAME


class IndexWriter:
    """The gateway's connection to the index. Raises ``sqlite3.Error`` on failure."""

    def __init__(self, path: Path) -> None:
        # Create it private before SQLite does (its -wal and -shm files copy the mode):
        # the index names people and client addresses.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
        self._db = sqlite3.connect(path, isolation_level=None)
        try:
            # WAL + NORMAL: a commit costs a write, not a disk flush; a power loss
            # can lose the last rows, which reindex can restore from the journal.
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except BaseException:
            self._db.close()
            raise

    def add(self, summary: SessionSummary) -> None:
        self._db.execute(
            f"INSERT INTO sessions ({_COLUMNS}) VALUES ({', '.join('?' * 15)})",
            _row(summary),
        )

    def finish(
        self,
        session_id: str,
        *,
        ended_at: float,
        end_reason: str,
        statement_count: int,
        last_segment: int,
        last_seq: int,
        head_hash: bytes,
        identity: Mapping[str, Any] | None,
    ) -> None:
        subject = identity.get("subject") if identity else None
        self._db.execute(
            "UPDATE sessions SET ended_at=?, end_reason=?, statement_count=?, last_segment=?,"
            " last_seq=?, head_hash=?, subject=?, identity=? WHERE id=?",
            (
                ended_at,
                end_reason,
                statement_count,
                last_segment,
                last_seq,
                head_hash,
                subject if isinstance(subject, str) else None,
                _json_or_none(identity),
                session_id,
            ),
        )

    def replace_all(self, summaries: Iterable[SessionSummary]) -> None:
        """Make the index hold exactly ``summaries``, in one transaction."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM sessions")
            self._db.executemany(
                f"INSERT INTO sessions ({_COLUMNS}) VALUES ({', '.join('?' * 15)})",
                (_row(s) for s in summaries),
            )

    def close(self) -> None:
        self._db.close()


@dataclass(frozen=True, slots=True)
class IndexContents:
    """What a readable index holds: ``sessions`` by id, from the rows that are
    well formed, and ``unreadable``, one ``(session id or None, message)`` for
    each row that is not, and for each id listed more than once."""

    sessions: dict[str, SessionSummary]
    unreadable: list[tuple[str | None, str]] = field(default_factory=list)


def load_index(data_dir: Path) -> dict[str, SessionSummary] | None:
    """Every indexed session by id (``state`` is ``ended`` or ``unterminated``);
    None when there is no readable index, or when a row of it is not well formed
    (:func:`read_index` says which). Never creates or changes the index."""
    contents = read_index(data_dir)
    # An edited row hides its session as surely as a missing index does: readers
    # then take every session from the journal, as without an index.
    return None if contents is None or contents.unreadable else contents.sessions


def read_index(data_dir: Path) -> IndexContents | None:
    """The index's rows, checked; None when there is no readable index. Never
    creates or changes the index."""
    path = index_path(data_dir)
    if not path.is_file():
        return None
    try:
        db = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)
        try:
            # Text that is not UTF-8 would fail the whole query: returned as bytes,
            # it makes only its own row unreadable.
            db.text_factory = _text
            rows = db.execute(f"SELECT {_COLUMNS} FROM sessions ORDER BY id").fetchall()
        finally:
            db.close()
    except sqlite3.Error as exc:
        log.warning("session index %s is unreadable: %s", path, exc)
        return None
    found: dict[str, list[SessionSummary]] = {}
    contents = IndexContents({})
    for row in rows:
        try:
            summary = _summary(row)
        except _Malformed as exc:
            sid = row[0] if isinstance(row[0], str) and row[0].isprintable() else None
            what = "row" if sid is not None else f"row with id {ascii(row[0])[:40]}"
            contents.unreadable.append((sid, f"the index {what} is unreadable: {exc}"))
            continue
        found.setdefault(summary.session_id, []).append(summary)
    for sid, summaries in found.items():
        if len(summaries) == 1:
            contents.sessions[sid] = summaries[0]
        else:
            # Which of them the gateway wrote cannot be told: none is used.
            contents.unreadable.append(
                (sid, f"the index lists this session {len(summaries)} times")
            )
    return contents


class _Malformed(ValueError):
    """A row the gateway could not have written."""


def _text(value: bytes) -> str | bytes:
    try:
        return value.decode()
    except UnicodeDecodeError:
        return value


def _row(s: SessionSummary) -> tuple[Any, ...]:
    return (
        s.session_id,
        s.connection,
        s.protocol,
        s.subject,
        _json_or_none(s.identity),
        s.client_addr,
        json.dumps(to_jsonable(s.attributes)),
        s.started_at,
        s.first_segment,
        s.ended_at,
        s.end_reason,
        s.statement_count,
        s.last_segment,
        s.last_seq,
        s.head_hash,
    )


def _summary(row: tuple[Any, ...]) -> SessionSummary:
    """The session a row describes; raises :class:`_Malformed` for a row whose
    cells do not have the types the gateway writes."""
    (
        sid,
        connection,
        protocol,
        _subject,
        identity,
        client_addr,
        attributes,
        started_at,
        first_segment,
        ended_at,
        end_reason,
        statement_count,
        last_segment,
        last_seq,
        head,
    ) = row
    if not (isinstance(sid, str) and sid.isprintable()):
        # Ids are printed as they are, as the journal's are (frames.decode_payload).
        raise _Malformed("its id is not printable text")
    for name, value, kind, optional in (
        ("connection", connection, str, False),
        ("protocol", protocol, str, False),
        ("client_addr", client_addr, str, False),
        ("first_segment", first_segment, int, False),
        ("end_reason", end_reason, str, True),
        ("statement_count", statement_count, int, True),
        ("last_segment", last_segment, int, True),
        ("last_seq", last_seq, int, True),
        ("head_hash", head, bytes, True),
    ):
        if not (isinstance(value, kind) or (optional and value is None)):
            raise _Malformed(f"{name} holds {_kind(value)}, not {kind.__name__}")
    for name, value, optional in (
        ("started_at", started_at, False),
        ("ended_at", ended_at, True),
    ):
        if not (_is_time(value) or (optional and value is None)):
            raise _Malformed(f"{name} holds {_kind(value)}, not a time")
    return SessionSummary(
        session_id=sid,
        connection=connection,
        protocol=protocol,
        client_addr=client_addr,
        identity=_json_object("identity", identity) if identity else None,
        attributes=_json_object("attributes", attributes) if attributes else {},
        started_at=started_at,
        first_segment=first_segment,
        ended_at=ended_at,
        end_reason=end_reason,
        statement_count=statement_count,
        last_segment=last_segment,
        last_seq=last_seq,
        head_hash=head,
        state="ended" if ended_at is not None else "unterminated",
    )


def _is_time(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _json_object(name: str, value: object) -> dict[str, Any]:
    """A JSON column's object, nested no deeper than a record body may be."""
    if not isinstance(value, str):
        raise _Malformed(f"{name} holds {_kind(value)}, not JSON text")
    try:
        decoded = json.loads(value)
    except (ValueError, RecursionError):
        raise _Malformed(f"{name} is not JSON") from None
    if not isinstance(decoded, dict):
        raise _Malformed(f"{name} is not a JSON object")
    if nests_deeper(decoded, MAX_BODY_DEPTH):
        raise _Malformed(f"{name} nests deeper than {MAX_BODY_DEPTH} levels")
    return decoded


def _kind(value: object) -> str:
    if value is None:
        return "NULL"
    return {int: "an integer", float: "a number", str: "text", bytes: "a blob"}.get(
        type(value), type(value).__name__
    )


def _json_or_none(value: Mapping[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(to_jsonable(value))
