"""One session's recorder: what the gateway calls for every statement and result.

Guarantees are those of :mod:`hoopd.recording.journal`; this module adds the
per-session chain (seq and previous hash) and the failure rule: once an append
has failed, every later one fails too.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import trio

from hoopd.recording.errors import RecorderError
from hoopd.recording.flush import FlushBatch
from hoopd.recording.frames import ZERO_HASH, FrameError
from hoopd.recording.summary import accepted_identity

if TYPE_CHECKING:
    from hoopd.recording.journal import Journal

log = logging.getLogger("hoopd.recording")

#: How long closing a session waits for its end to be flushed, even when cancelled.
CLOSE_FLUSH_SECONDS: Final = 5.0


class SessionRecorder:
    """Records one session; made by :meth:`Journal.start_session`.

    Not for concurrent use by several tasks: one session's records are a sequence.
    """

    __slots__ = (
        "_closed",
        "_failed",
        "_identity",
        "_journal",
        "_seq",
        "_statements",
        "first_segment",
        "last_segment",
        "last_time",
        "prev_hash",
        "session_id",
    )

    def __init__(
        self, journal: Journal, session_id: str, identity: Mapping[str, Any] | None
    ) -> None:
        self._journal = journal
        self.session_id = session_id
        self._seq = 0
        self.prev_hash = ZERO_HASH
        self._statements = 0
        #: The latest identity: from the start, or from an accepting ``auth`` record.
        self._identity = identity
        self._failed = False
        self._closed = False
        self.first_segment = journal.segment
        self.last_segment = journal.segment
        self.last_time = 0.0

    @property
    def failed(self) -> bool:
        return self._failed

    async def append(self, records: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        """Append ``(kind, body)`` records, in order, with one ``write`` or ``writev``.

        Returns once they are as durable as the journal promises (see the module
        docstring). Raises :class:`RecorderError` otherwise; the recorder is then
        failed and every later append raises too. In process-crash mode this does
        not yield to other tasks, so cancellation cannot split a write from its
        return. (A body msgpack cannot encode raises RecorderError without failing
        the recorder: nothing was written.)
        """
        batch = self.append_now(records)
        if batch is not None:
            await self.wait_durable(batch)

    def append_now(self, records: Sequence[tuple[str, Mapping[str, Any]]]) -> FlushBatch | None:
        """The synchronous part of :meth:`append`: the records are written (handed
        to the kernel: durable against a crash of the gateway) when this returns.

        Returns None when that is all the journal promises (process-crash mode),
        else the flush to await with :meth:`wait_durable` before anyone may rely on
        the records. For callers on another event loop in the gateway's thread
        (asyncssh's), which can then record without crossing into trio per write.
        Raises like :meth:`append`.
        """
        if self._failed or self._closed:
            raise RecorderError("recorder failed or closed")
        if not self._journal.flusher_running:
            # Refuse before writing: a record the caller is told failed should not
            # appear in the journal when that can be helped.
            self._failed = True
            log.error("power-loss durability needs Journal.run() running; it is not")
            raise RecorderError("journal flusher not running")
        return self._write(records)

    async def wait_durable(self, batch: FlushBatch) -> None:
        """Wait for a flush :meth:`append_now` returned. Raises RecorderError (and
        fails the recorder) if it failed."""
        error = await batch.wait()
        if error is not None:
            self._failed = True
            raise RecorderError(f"flush: {error}") from error

    async def close(self, reason: str) -> None:
        """Write ``session_end`` (body ``{"reason": reason}``) and the index row's end.

        Never raises: failures are logged and leave the session unterminated.
        Does not depend on the caller not being cancelled: waiting for the flush
        (power-loss mode) is shielded for up to :data:`CLOSE_FLUSH_SECONDS`, and
        skipped if the flusher has already stopped (:meth:`Journal.close` flushes
        then). Idempotent.
        """
        if self._closed:
            return
        self._closed = True
        body: dict[str, Any] = {"reason": reason}
        if self._failed:
            # An earlier write failed and was cut off, so the chain is still whole:
            # try to end it, saying so.
            body["recording_failed"] = True
        try:
            batch = self._write([("session_end", body)])
            if batch is not None and self._journal.flusher_running:
                with trio.move_on_after(CLOSE_FLUSH_SECONDS, shield=True):
                    error = await batch.wait()
                    if error is not None:
                        log.error(
                            "session %s: end written but not flushed: %s", self.session_id, error
                        )
            # Otherwise (flusher already stopped at shutdown) the end is written and
            # Journal.close() flushes it.
            self._journal.index.finish(
                self.session_id,
                ended_at=self.last_time,
                end_reason=reason,
                statement_count=self._statements,
                last_segment=self.last_segment,
                last_seq=self._seq - 1,
                head_hash=self.prev_hash,
                identity=self._identity,
            )
        except RecorderError as exc:
            log.error("session %s: end not recorded: %s", self.session_id, exc.reason)
        except sqlite3.Error as exc:
            log.error("session %s: index not updated at end: %s", self.session_id, exc)
        except Exception:
            log.exception("session %s: unexpected error while closing", self.session_id)

    def _write(self, records: Sequence[tuple[str, Mapping[str, Any]]]) -> FlushBatch | None:
        """Encode and write ``records``; the synchronous part of :meth:`append`."""
        journal = self._journal
        encode = journal.encoder.encode_parts
        session_id, seq, prev, head = self.session_id, self._seq, self.prev_hash, journal.head
        when = time.time()
        frames: list[bytes] = []
        statements = 0
        identity = self._identity
        try:
            for kind, body in records:
                parts, prev = encode(session_id, seq, when, kind, body, prev, head)
                frames += parts
                head = prev
                seq += 1
                if kind == "statement":
                    statements += 1
                elif kind == "auth":
                    identity = accepted_identity(kind, body) or identity
        except FrameError as exc:
            log.error("record for session %s not written: %s", session_id, exc)
            raise RecorderError(str(exc)) from exc
        if not frames:
            return None
        try:
            batch = journal.write(frames, head)
        except RecorderError:
            self._failed = True
            raise
        if self._seq == 0:  # the start record may have opened a new segment
            self.first_segment = journal.segment
        self._seq, self.prev_hash, self.last_time = seq, prev, when
        self._statements += statements
        self._identity = identity
        self.last_segment = journal.segment
        return batch


def describe(exc: BaseException) -> str:
    """An error for logs: errno name and text, never paths or contents."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{errno.errorcode.get(exc.errno, exc.errno)} ({exc.strerror})"
    return f"{type(exc).__name__}: {exc}"
