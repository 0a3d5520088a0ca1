"""Rebuilding the session index from the journal (``hoopd audit reindex``)."""

from __future__ import annotations

from pathlib import Path

from hoopd.recording.index import IndexWriter, index_path
from hoopd.recording.lock import WriterLock
from hoopd.recording.reader import summaries_from_journal
from hoopd.recording.segments import journal_dir
from hoopd.recording.verify import VerifyReport, verify_with


class ReindexRefused(Exception):
    """The journal has breaks; rebuilding would erase the index's evidence of them."""

    def __init__(self, report: VerifyReport) -> None:
        super().__init__(f"{len(report.breaks)} problems found")
        self.report = report


def reindex(data_dir: Path, *, force: bool = False) -> int:
    """Replace the index with what the journal says; return the number of sessions.

    Holds the journal lock throughout, so it refuses to run (raising
    :class:`hoopd.recording.lock.LockHeld`) while a gateway records. Unless
    ``force``, it first verifies and raises :class:`ReindexRefused` on any break:
    the index is what reveals records cut from the end of a session. Sessions a
    killed gateway left open are indexed with their records so far (still
    without an end), so later verification also covers them.
    """
    lock = WriterLock(journal_dir(data_dir))
    try:
        if not force:
            report = verify_with(data_dir, run=None)
            if not report.ok:
                raise ReindexRefused(report)
        summaries = summaries_from_journal(data_dir)
        writer = IndexWriter(index_path(data_dir))
        try:
            writer.replace_all(summaries[sid] for sid in sorted(summaries))
        finally:
            writer.close()
        return len(summaries)
    finally:
        lock.release()
