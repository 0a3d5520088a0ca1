"""Checking recordings for edits, deletions and damage.

What is checked, for every record in every segment:

* its hash matches its bytes (else it was **edited**);
* it follows its session's previous record: seq one higher and ``p`` equal to
  that record's hash (else records were **deleted**, replaced or reordered);
* it follows the previous frame in the journal: ``j`` equal to that frame's
  hash (else frames, possibly whole sessions, were **deleted** or inserted);

and for the journal as a whole: segments are numbered 1, 2, ... without gaps,
every byte belongs to a frame, and every session the index lists is in the
journal with at least the records the index saw when it ended (else the end of
the session was **truncated** or the whole session **deleted**), and every row of
the index is one the gateway could have written (else it is **corrupt**).

Anyone able to rewrite the files can recompute every hash: the chains make
tampering evident only against a copy of a later hash kept elsewhere (the index,
a log shipped off the host, an earlier ``verify`` output). docs/recording.md says
more.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hoopd.recording.frames import ZERO_HASH, Record
from hoopd.recording.index import read_index
from hoopd.recording.lock import RunInfo, running_gateway
from hoopd.recording.reader import Unreadable, segment_entries
from hoopd.recording.segments import journal_dir, list_segments
from hoopd.recording.summary import SessionSummary


@dataclass(frozen=True, slots=True)
class Break:
    """One thing found wrong. ``problem`` is a short category:

    ``edited``, ``deleted``, ``reordered``, ``truncated``, ``corrupt`` or
    ``missing-segment``; ``message`` says what exactly, for people.
    """

    problem: str
    message: str
    session_id: str | None = None
    seq: int | None = None
    segment: int | None = None
    offset: int | None = None

    def __str__(self) -> str:
        where = []
        if self.session_id is not None:
            where.append(f"session {self.session_id}")
        if self.seq is not None:
            where.append(f"seq {self.seq}")
        if self.segment is not None:
            at = f"segment {self.segment}"
            where.append(at if self.offset is None else f"{at} offset {self.offset}")
        return f"{', '.join(where) or 'journal'}: {self.problem}: {self.message}"


@dataclass(slots=True)
class VerifyReport:
    """The outcome of :func:`verify`. ``ok`` when there are no breaks.

    ``unterminated`` lists sessions without an end whose gateway is gone;
    ``active`` those still being recorded; neither is a break by itself.
    ``notes`` are observations that are not evidence of tampering.
    """

    sessions: int = 0
    records: int = 0
    breaks: list[Break] = field(default_factory=list)
    unterminated: list[str] = field(default_factory=list)
    active: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaks


@dataclass(slots=True)
class _Chain:
    next_seq: int = 0
    last_hash: bytes = ZERO_HASH
    ended: bool = False
    first_segment: int = 0


class SessionChecker:
    """Checks records against their sessions' chains, one record at a time."""

    def __init__(self) -> None:
        self.chains: dict[str, _Chain] = {}

    def check(self, record: Record) -> list[Break]:
        chain = self.chains.get(record.session_id)
        if chain is None:
            chain = self.chains[record.session_id] = _Chain(first_segment=record.segment)
        found: list[Break] = []

        def report(problem: str, message: str) -> None:
            found.append(
                Break(
                    problem, message, record.session_id, record.seq, record.segment, record.offset
                )
            )

        if not record.hash_ok:
            report("edited", "the record's contents do not match its hash")
        if chain.ended:
            report("reordered", f"a {record.kind!r} record follows the session's end")
        if record.seq > chain.next_seq:
            missing = _span(chain.next_seq, record.seq - 1)
            report("deleted", f"{missing} missing before this one")
        elif record.seq < chain.next_seq:
            report("reordered", f"seq {record.seq} comes after seq {chain.next_seq - 1}")
        elif record.prev_hash != chain.last_hash:
            what = "the session's start" if record.seq == 0 else f"record {record.seq - 1}"
            report("deleted", f"does not chain to {what}: it was replaced or edited")
        chain.next_seq = max(chain.next_seq, record.seq + 1)
        chain.last_hash = record.hash
        chain.ended = chain.ended or record.kind == "session_end"
        return found


def verify(data_dir: Path) -> VerifyReport:
    """Check every chain in the journal under ``data_dir`` against itself and the index.

    Safe while a gateway records (it reads only).
    """
    return verify_with(data_dir, run=running_gateway(journal_dir(data_dir)))


def verify_with(data_dir: Path, run: RunInfo | None) -> VerifyReport:
    """:func:`verify`, told which gateway (if any) is writing the journal."""
    report = VerifyReport()
    # The index first: a session ending while the journal is read then looks
    # newer than the index, which is harmless, never older, which is not.
    contents = read_index(data_dir)
    index = None if contents is None else contents.sessions
    segments = list_segments(data_dir)
    checker = SessionChecker()
    expected = 1
    journal_head: bytes | None = ZERO_HASH  # None: unknown after damage
    for number, path in segments:
        if number != expected:
            missing = _span(expected, number - 1, "segment")
            report.breaks.append(
                Break("missing-segment", f"{missing} missing from the journal", segment=number)
            )
            journal_head = None
        expected = number + 1
        is_last = number == segments[-1][0]
        for entry in segment_entries(number, path):
            if isinstance(entry, Unreadable):
                if entry.torn_tail and is_last and run is not None:
                    report.notes.append(
                        f"segment {number} ends in a frame still being written (offset"
                        f" {entry.offset})"
                    )
                else:
                    report.breaks.append(_unreadable(entry))
                journal_head = None
                continue
            report.records += 1
            if journal_head is not None and entry.journal_prev != journal_head:
                report.breaks.append(
                    Break(
                        "deleted",
                        "does not follow the frame before it in the journal: frames before it"
                        " were deleted, inserted or replaced",
                        entry.session_id,
                        entry.seq,
                        entry.segment,
                        entry.offset,
                    )
                )
            journal_head = entry.hash
            report.breaks.extend(checker.check(entry))
    for session_id, message in [] if contents is None else contents.unreadable:
        report.breaks.append(Break("corrupt", message, session_id))
    _compare_with_index(report, checker, index)
    report.sessions = len(checker.chains.keys() | (index or {}).keys())
    for session_id, chain in sorted(checker.chains.items()):
        if not chain.ended:
            still_running = run is not None and (
                run.first_segment is None or chain.first_segment >= run.first_segment
            )
            (report.active if still_running else report.unterminated).append(session_id)
    return report


def _compare_with_index(
    report: VerifyReport, checker: SessionChecker, index: Mapping[str, SessionSummary] | None
) -> None:
    if index is None:
        if checker.chains:
            report.notes.append("no readable session index: checks against it were skipped")
        return
    for session_id, row in sorted(index.items()):
        chain = checker.chains.get(session_id)
        if chain is None:
            report.breaks.append(
                Break(
                    "deleted",
                    "the index lists this session but the journal has none of its records",
                    session_id,
                )
            )
            continue
        if row.last_seq is None:
            continue
        held = chain.next_seq
        if held < row.last_seq + 1:
            report.breaks.append(
                Break(
                    "truncated",
                    f"the index says the session has {row.last_seq + 1} records but the journal"
                    f" has {held}: records at its end were deleted",
                    session_id,
                    held,
                )
            )
        elif held == row.last_seq + 1 and row.head_hash not in (None, chain.last_hash):
            report.breaks.append(
                Break(
                    "edited",
                    "the session's last record is not the one the index saw",
                    session_id,
                    row.last_seq,
                )
            )
        elif row.ended_at is None and chain.ended:
            report.notes.append(f"session {session_id}: ended in the journal, not in the index")
    for session_id in sorted(checker.chains.keys() - index.keys()):
        report.notes.append(f"session {session_id} is not in the index (hoopd audit reindex)")


def _unreadable(entry: Unreadable) -> Break:
    if entry.torn_tail:
        message = (
            f"incomplete final frame ({entry.length} bytes): a write was cut short,"
            " as a power loss or full disk does"
        )
    else:
        message = f"{entry.length} bytes that are not a record ({entry.reason})"
    return Break("corrupt", message, segment=entry.segment, offset=entry.offset)


def _span(first: int, last: int, noun: str = "record") -> str:
    if first == last:
        return f"{noun} {first} is"
    return f"{noun}s {first}..{last} are"
