"""Group commit for ``durability = "power-loss"``.

Appends write their frames at once and then wait on the current
:class:`FlushBatch`. The flusher task takes the batch, starts a new one for
appends that arrive meanwhile, and runs ``fdatasync`` in a worker thread; one
flush thus covers every append written before it started, however many sessions
they came from. While one flush runs, the next batch fills up, so flushes run
back to back under load and cost nothing when idle.
"""

from __future__ import annotations

import logging
import os

import trio

log = logging.getLogger("hoopd.recording")


class FlushBatch:
    """Appends waiting for the same flush."""

    __slots__ = ("_done", "error")

    def __init__(self) -> None:
        self._done = trio.Event()
        self.error: BaseException | None = None

    def finish(self, error: BaseException | None = None) -> None:
        self.error = error
        self._done.set()

    async def wait(self) -> BaseException | None:
        """Wait until the batch is flushed; return the error that stopped it, if any."""
        await self._done.wait()
        return self.error


class GroupCommit:
    """Collects written-but-unflushed data and flushes it in batches.

    The journal names the file it writes with :meth:`set_current`, reports every
    write with :meth:`written` (which returns the batch to wait on) and hands over
    each file it stops writing with :meth:`retire`; :meth:`run` does the flushing.
    Flushes of the current file work on a duplicate of its descriptor, so the
    journal may close its own at any time.
    """

    def __init__(self, directory_fd: int) -> None:
        self.flush_count = 0
        self.running = False
        self._dir_fd = directory_fd
        self._batch = FlushBatch()
        self._wake = trio.Event()
        self._current_fd = -1
        self._retired: list[int] = []
        self._dir_dirty = False
        self._stopped: BaseException | None = None

    @property
    def stopped(self) -> BaseException | None:
        return self._stopped

    def set_current(self, fd: int, *, new_file: bool) -> None:
        """Writes now go to ``fd``; ``new_file``: its directory entry must be flushed too."""
        self._current_fd = fd
        self._dir_dirty = self._dir_dirty or new_file

    def written(self) -> FlushBatch:
        self._wake.set()
        return self._batch

    def retire(self, fd: int) -> None:
        """Flush ``fd`` once more, then close it (the flusher owns it from now on)."""
        self._retired.append(fd)
        self._wake.set()

    def final_flush(self, error: BaseException) -> None:
        """Flush everything now, in this thread, and refuse later writes with ``error``.

        The journal calls this when it closes: appends still waiting are released
        (successfully if the flush worked).
        """
        if self._stopped is not None:
            return
        retired, self._retired = self._retired, []
        failure = _sync(retired + self._current_duplicate(), self._directory_duplicate())
        self.flush_count += 1
        self._stopped = error
        self._batch.finish(failure)

    async def run(self, task_status: trio.TaskStatus[None]) -> None:
        self.running = True
        task_status.started()
        try:
            while self._stopped is None:
                await self._wake.wait()
                self._wake = trio.Event()
                if self._stopped is None:
                    await self._flush_once()
        finally:
            self.running = False
            # Nobody is left to flush: appends waiting now must not hang.
            self._batch.finish(self._stopped or RuntimeError("journal flusher stopped"))

    def _current_duplicate(self) -> list[int]:
        return [os.dup(self._current_fd)] if self._current_fd >= 0 else []

    def _directory_duplicate(self) -> int | None:
        """The directory, if a segment was created since the last flush."""
        if not self._dir_dirty:
            return None
        self._dir_dirty = False
        return os.dup(self._dir_fd)

    async def _flush_once(self) -> None:
        batch, self._batch = self._batch, FlushBatch()
        retired, self._retired = self._retired, []
        files = retired + self._current_duplicate()
        directory = self._directory_duplicate()
        # Shielded: a flush that started must be allowed to report how it ended.
        with trio.CancelScope(shield=True):
            error = await trio.to_thread.run_sync(_sync, files, directory)
        self.flush_count += 1
        if error is not None and self._stopped is None:
            # After a failed fdatasync the kernel may have dropped the dirty pages:
            # nothing written since the last good flush can be trusted to be on disk.
            log.error("journal flush failed: %s", error)
            self._stopped = error
            self._batch.finish(error)
        batch.finish(error)


def _sync(files: list[int], directory: int | None) -> OSError | None:
    """Flush and close every descriptor; report the first error (runs in a worker thread)."""
    error: OSError | None = None
    for fd in [*files, directory] if directory is not None else files:
        try:
            if fd == directory:
                os.fsync(fd)  # a directory's entries: fdatasync is not specified for them
            else:
                os.fdatasync(fd)
        except OSError as exc:
            error = error or exc
        finally:
            os.close(fd)
    return error
