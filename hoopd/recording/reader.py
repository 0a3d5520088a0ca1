"""Reading the journal back: every record, one session's records, the session list.

Nothing here writes to the data dir, so it is safe to run against a live gateway
(it sees what has been written so far).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from hoopd.recording.frames import FrameError, Record, decode_payload, session_prefix
from hoopd.recording.index import load_index
from hoopd.recording.lock import RunInfo, running_gateway
from hoopd.recording.segments import Damage, SegmentView, journal_dir, list_segments
from hoopd.recording.summary import SessionSummary, SummaryBuilder


@dataclass(frozen=True, slots=True)
class Unreadable:
    """Bytes in a segment that are not a readable record."""

    segment: int
    offset: int
    length: int
    reason: str
    torn_tail: bool = False


def segment_entries(
    number: int, path: Path, session_id: str | None = None
) -> Iterator[Record | Unreadable]:
    """The records in one segment file, in file order, and what could not be read.

    With ``session_id``, only that session's records (others are skipped without
    being decoded; unreadable stretches are still reported).
    """
    prefix = session_prefix(session_id) if session_id is not None else None
    with SegmentView(number, path) as view:
        for item in view.frames():
            if isinstance(item, Damage):
                reason = "incomplete final frame" if item.torn_tail else "unrecognised bytes"
                yield Unreadable(number, item.offset, item.length, reason, item.torn_tail)
                continue
            if prefix is not None and not view.startswith(item, prefix):
                continue
            try:
                yield decode_payload(view.payload(item), number, item.offset)
            except FrameError as exc:
                yield Unreadable(number, item.offset, item.end - item.offset, str(exc))


def journal_entries(
    data_dir: Path,
    *,
    first_segment: int = 0,
    last_segment: int | None = None,
    session_id: str | None = None,
) -> Iterator[Record | Unreadable]:
    """:func:`segment_entries` over the segments numbered within the bounds."""
    for number, path in list_segments(data_dir):
        if number < first_segment or (last_segment is not None and number > last_segment):
            continue
        yield from segment_entries(number, path, session_id)


def read_session(data_dir: Path, session_id: str) -> Iterator[Record]:
    """One session's records in journal order (= seq order unless the journal was
    tampered with; :func:`hoopd.recording.verify.verify` reports that).

    Records are not checked here: ``Record.hash_ok`` says whether each one's hash
    matches. The index narrows the segments to read; without it, every segment is.
    """
    row = (load_index(data_dir) or {}).get(session_id)
    first = row.first_segment if row else 0
    last = row.last_segment if row and row.ended_at is not None else None
    for entry in journal_entries(
        data_dir, first_segment=first, last_segment=last, session_id=session_id
    ):
        if isinstance(entry, Record):
            yield entry


def summaries_from_journal(data_dir: Path) -> dict[str, SessionSummary]:
    """Every session the journal holds, as the index would describe it."""
    builder = SummaryBuilder()
    for entry in journal_entries(data_dir):
        if isinstance(entry, Record):
            builder.add(entry)
    return builder.summaries()


def list_sessions(data_dir: Path) -> list[SessionSummary]:
    """Every session, oldest first, from the index (or the journal if there is no index).

    Sessions without an end are ``active`` if the gateway that started them is
    still running and ``unterminated`` otherwise.
    """
    indexed = load_index(data_dir)
    sessions = indexed if indexed is not None else summaries_from_journal(data_dir)
    run = running_gateway(journal_dir(data_dir))
    return [
        replace(s, state="active") if _is_active(s, run) else s for _, s in sorted(sessions.items())
    ]


def _is_active(summary: SessionSummary, run: RunInfo | None) -> bool:
    if summary.state == "ended" or run is None:
        return False
    return run.first_segment is None or summary.first_segment >= run.first_segment


def find_session(data_dir: Path, wanted: str) -> SessionSummary:
    """The session whose id is ``wanted`` or uniquely starts with it.

    Raises LookupError with a message for people when there is none or several.
    """
    sessions = list_sessions(data_dir)
    exact = [s for s in sessions if s.session_id == wanted]
    matches = exact or [s for s in sessions if s.session_id.startswith(wanted)]
    if not matches:
        raise LookupError(f"no session {wanted!r} in {data_dir}")
    if len(matches) > 1:
        shown = ", ".join(s.session_id for s in matches[:5])
        raise LookupError(f"{wanted!r} matches {len(matches)} sessions: {shown}, ...")
    return matches[0]
