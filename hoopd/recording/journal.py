"""The writer: one append-only journal per gateway (sessions record through
:class:`hoopd.recording.recorder.SessionRecorder`).

Guarantees (docs/recording.md states them for operators):

* ``SessionRecorder.append`` returns only after its frames were handed to the
  kernel with one ``os.write`` or ``os.writev`` for all of them, so they survive the
  gateway being killed in any way. With ``durability="power-loss"`` it also waits
  for an ``fdatasync`` that started after the write (group commit), so they
  survive a power loss too.
* If a record cannot be written, ``append`` raises :class:`RecorderError` and
  nothing the gateway goes on to do can hide it: the recorder stays failed and
  a partial write is cut off again, so the journal holds only whole frames.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
from pathlib import Path
from typing import Any, Final, Literal

import trio

from hoopd.recording.errors import RecorderError
from hoopd.recording.flush import FlushBatch, GroupCommit
from hoopd.recording.frames import ZERO_HASH, FrameEncoder
from hoopd.recording.ids import SessionIdGenerator
from hoopd.recording.index import IndexWriter, index_path
from hoopd.recording.lock import LockHeld, WriterLock
from hoopd.recording.recorder import SessionRecorder, describe
from hoopd.recording.segments import journal_dir, last_frame_hash, list_segments, segment_name
from hoopd.recording.summary import SessionSummary

__all__ = ["DEFAULT_SEGMENT_BYTES", "Durability", "Journal", "RecorderError", "SessionRecorder"]

log = logging.getLogger("hoopd.recording")

Durability = Literal["process-crash", "power-loss"]
DEFAULT_SEGMENT_BYTES: Final = 256 * 1024 * 1024
_OPEN_FLAGS: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
#: How much of the end of the segment stays in the page cache; older written pages
#: are handed back to the kernel (see :meth:`Journal._release_written_pages`).
PAGE_CACHE_KEEP_BYTES: Final = 4 * 1024 * 1024
#: How often (in bytes appended) they are handed back.
PAGE_CACHE_RELEASE_STEP: Final = 1024 * 1024
#: Most pieces one ``writev`` takes (the kernel refuses more); beyond it they are joined.
_MAX_PIECES: Final = max(1, min(os.sysconf("SC_IOV_MAX"), 1024))


class Journal:
    """The gateway's journal. Open with :meth:`open`; run :meth:`run` in a nursery.

    Writing happens in the trio thread without yielding, so frames from
    concurrent sessions never interleave and the journal's own hash chain
    (each frame names the frame before it) follows the order on disk.
    """

    def __init__(
        self,
        data_dir: Path,
        durability: Durability,
        segment_bytes: int,
        lock: WriterLock,
        index: IndexWriter,
        dir_fd: int,
        last_segment: int,
        head: bytes,
    ) -> None:
        self.data_dir = data_dir
        self.durability: Durability = durability
        self._segment_bytes = segment_bytes
        self._lock = lock
        #: The session index (written by recorders at session start and end).
        self.index = index
        self._dir = journal_dir(data_dir)
        self._dir_fd = dir_fd
        self._ids = SessionIdGenerator()
        self.encoder = FrameEncoder()
        self._group = GroupCommit(dir_fd) if durability == "power-loss" else None
        self._broken: BaseException | None = None
        self._closed = False
        self._fd = -1
        self._size = 0
        self._released_from = 0
        self._next_release = 0
        self.segment = last_segment
        #: Hash of the last frame written: the next frame's ``j``.
        self.head = head
        self._new_segment()

    @classmethod
    def open(
        cls,
        data_dir: Path,
        durability: Durability = "process-crash",
        *,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
    ) -> Journal:
        """Open the journal under ``data_dir`` (created if missing) for writing.

        Takes the journal lock (a second gateway on the same data dir gets
        :class:`RecorderError`), starts a new segment chained to the last frame of
        the previous one, and opens the index. ``segment_bytes``: size at which a
        segment is closed and the next one started.
        """
        if durability not in ("process-crash", "power-loss"):
            raise ValueError(f"unknown durability {durability!r}")
        directory = journal_dir(data_dir)
        lock: WriterLock | None = None
        dir_fd = -1
        try:
            # Private: recordings hold SQL text, parameters and who ran them.
            data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            directory.mkdir(mode=0o700, exist_ok=True)
            lock = WriterLock(directory)
            dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            if durability == "power-loss":
                _fsync_directory(data_dir)  # the journal directory's own entry
                os.fsync(dir_fd)
            last, head = _previous_head(data_dir)
            index = IndexWriter(index_path(data_dir))
        except (OSError, sqlite3.Error, LockHeld) as exc:
            if dir_fd >= 0:
                os.close(dir_fd)
            if lock is not None:
                lock.release()
            log.error("cannot open the recording journal in %s: %s", data_dir, describe(exc))
            raise RecorderError(f"cannot open journal: {describe(exc)}") from exc
        try:
            journal = cls(data_dir, durability, segment_bytes, lock, index, dir_fd, last, head)
        except RecorderError:
            index.close()
            os.close(dir_fd)
            lock.release()
            raise
        try:
            lock.announce(journal.segment)
        except OSError as exc:
            journal.close()
            raise RecorderError(f"lock file: {describe(exc)}") from exc
        return journal

    @property
    def flush_count(self) -> int:
        """How many flushes (``fdatasync`` rounds) have run; always 0 in process-crash mode."""
        return 0 if self._group is None else self._group.flush_count

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Flush in batches (power-loss mode) until cancelled or the journal closes."""
        if self._group is None:
            task_status.started()
            await trio.sleep_forever()
        else:
            await self._group.run(task_status)

    def start_session(
        self,
        *,
        connection: str,
        protocol: str,
        client_addr: str,
        identity: dict[str, Any] | None,
        attributes: dict[str, Any],
    ) -> SessionRecorder:
        """Write a ``session_start`` record and the session's index row.

        The record is written (``os.write``) before this returns; in power-loss
        mode it is flushed with the session's first append. Raises
        :class:`RecorderError` if either the record or the index row cannot be
        written (then the session must be refused).
        """
        session_id = self._ids.new_id()
        recorder = SessionRecorder(self, session_id, identity)
        body = {
            "connection": connection,
            "protocol": protocol,
            "client_addr": client_addr,
            "identity": identity,
            "attributes": attributes,
        }
        recorder._write([("session_start", body)])
        try:
            self.index.add(
                SessionSummary(
                    session_id=session_id,
                    connection=connection,
                    protocol=protocol,
                    client_addr=client_addr,
                    identity=identity,
                    attributes=attributes,
                    started_at=recorder.last_time,
                    first_segment=recorder.first_segment,
                )
            )
        except sqlite3.Error as exc:
            log.error("session index unavailable (session %s): %s", session_id, exc)
            # Close the journal's account of the session too, so it does not look
            # like a session whose gateway died.
            with contextlib.suppress(RecorderError):
                recorder._write([("session_end", {"reason": "recording-failed"})])
            raise RecorderError(f"index: {exc}") from exc
        return recorder

    def close(self) -> None:
        """Flush (power-loss mode), close files and release the lock. Idempotent.

        Appends after this raise :class:`RecorderError`.
        """
        if self._closed:
            return
        self._closed = True
        closed = RuntimeError("journal closed")
        if self._group is not None:
            self._group.final_flush(closed)
        empty = self._size == 0
        _close_quietly(self._fd)
        self._fd = -1
        if empty:  # nothing was written this run: leave no empty segment behind
            try:
                (self._dir / segment_name(self.segment)).unlink()
            except OSError as exc:
                log.warning("cannot remove empty segment %s: %s", self.segment, exc)
        _close_quietly(self._dir_fd)
        self.index.close()
        self._lock.release()

    # ------------------------------------------------------------------ writing

    def write(self, pieces: list[bytes], head: bytes) -> FlushBatch | None:
        """Append ``pieces``, in order (whole frames ending in the frame whose hash
        is ``head``), with one system call.

        Returns the flush batch to wait on in power-loss mode. Raises
        :class:`RecorderError` if the bytes did not all reach the kernel; then
        the journal is exactly as it was before the call (or, if even that cannot
        be arranged, refuses every later write).
        """
        if self._closed or self._broken is not None:
            raise RecorderError("journal closed" if self._closed else "journal broken")
        if self._group is not None and self._group.stopped is not None:
            raise RecorderError(f"journal not durable: {self._group.stopped}")
        if len(pieces) > _MAX_PIECES:  # many records in one append: a pipelined batch
            pieces = [b"".join(pieces)]
        size = sum(map(len, pieces)) if len(pieces) > 1 else len(pieces[0])
        if self._size and self._size + size > self._segment_bytes:
            self._rotate()
        try:
            if len(pieces) == 1:
                written = os.write(self._fd, pieces[0])
            else:
                written = os.writev(self._fd, pieces)
            if written < size:  # short write: the disk is filling up
                _write_rest(self._fd, b"".join(pieces), written)
        except OSError as exc:
            self._undo_partial_write(exc)
            raise RecorderError(f"write: {describe(exc)}") from exc
        self._size += size
        self.head = head
        if self._size >= self._next_release:
            self._release_written_pages()
        return None if self._group is None else self._group.written()

    @property
    def flusher_running(self) -> bool:
        return self._group is None or self._group.running

    def _release_written_pages(self) -> None:
        """Tell the kernel the segment's pages before the last
        :data:`PAGE_CACHE_KEEP_BYTES` will not be read again (``POSIX_FADV_DONTNEED``),
        as PostgreSQL does for its WAL.

        Never loses data: the kernel only drops pages already on disk and starts
        writing out the others, which a later call then drops. Why: the journal is
        read rarely and sequentially, so caching it only evicts what other programs
        on the host use; and on a virtual machine, growing the page cache into
        memory the guest never touched before costs more kernel time than the write
        itself (a 500 MB SSH transfer spent over a second in it). Best effort: an
        error is ignored, since the records are written either way.
        """
        end = self._size - PAGE_CACHE_KEEP_BYTES
        self._next_release = self._size + PAGE_CACHE_RELEASE_STEP
        if end <= self._released_from:
            return
        with contextlib.suppress(OSError):
            os.posix_fadvise(
                self._fd, self._released_from, end - self._released_from, os.POSIX_FADV_DONTNEED
            )
        # Start the next call one window back: pages still being written out
        # this time are clean by then.
        self._released_from = max(0, end - PAGE_CACHE_KEEP_BYTES)

    def _undo_partial_write(self, exc: OSError) -> None:
        log.error("journal write failed in segment %s: %s", self.segment, describe(exc))
        try:
            os.ftruncate(self._fd, self._size)
        except OSError as truncate_exc:
            # The file may end in part of a frame: nothing more may follow it.
            log.error("cannot cut off a partial write: %s", describe(truncate_exc))
            self._broken = truncate_exc

    def _rotate(self) -> None:
        previous_fd, previous = self._fd, self.segment
        try:
            self._new_segment()
        except RecorderError:
            # Keep writing the full segment rather than refuse statements over it.
            log.warning("segment rotation failed; continuing in segment %s", previous)
            return
        if self._group is not None:
            self._group.retire(previous_fd)  # closed once flushed
        else:
            _close_quietly(previous_fd)

    def _new_segment(self) -> None:
        number = self.segment + 1
        try:
            fd = os.open(self._dir / segment_name(number), _OPEN_FLAGS, 0o600)
        except OSError as exc:
            log.error("cannot create journal segment %s: %s", number, describe(exc))
            raise RecorderError(f"new segment: {describe(exc)}") from exc
        self._fd, self._size, self.segment = fd, 0, number
        self._released_from = 0
        self._next_release = PAGE_CACHE_KEEP_BYTES + PAGE_CACHE_RELEASE_STEP
        if self._group is not None:
            self._group.set_current(fd, new_file=True)
        log.info("recording to journal segment %s", number)


def _previous_head(data_dir: Path) -> tuple[int, bytes]:
    """The highest segment number in use and the hash the next frame chains to."""
    segments = list_segments(data_dir)
    for number, path in reversed(segments):
        if path.stat().st_size == 0:
            continue
        head = last_frame_hash(path)
        if head is None:
            log.warning(
                "journal segment %s ends with an incomplete frame (a write was cut short);"
                " the journal chain restarts in the next segment",
                number,
            )
            return segments[-1][0], ZERO_HASH
        return segments[-1][0], head
    return (segments[-1][0] if segments else 0), ZERO_HASH


def _write_rest(fd: int, data: bytes, written: int) -> None:
    view = memoryview(data)
    while written < len(data):
        more = os.write(fd, view[written:])
        if more == 0:
            raise OSError(errno.ENOSPC, "no progress writing the journal")
        written += more


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _close_quietly(fd: int) -> None:
    if fd >= 0:
        with contextlib.suppress(OSError):
            os.close(fd)
