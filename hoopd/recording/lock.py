"""The journal lock: one writing gateway per data dir, visible to readers.

The gateway holds an exclusive ``flock`` on ``journal/LOCK`` for as long as its
journal is open; the file names the segment its run started with, which is how
readers tell sessions still in progress ("active") from sessions a killed
gateway left without an end ("unterminated"). The kernel drops the lock when the
process dies, however it dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

LOCK_NAME: Final = "LOCK"
# A reader probes the lock for a moment; a gateway starting in that moment retries.
_ACQUIRE_ATTEMPTS: Final = 25
_ACQUIRE_PAUSE_SECONDS: Final = 0.02


class LockHeld(Exception):
    """Another process (a running gateway) holds the journal lock."""


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What a running gateway says about itself in the lock file."""

    pid: int | None
    first_segment: int | None


class WriterLock:
    """The exclusive lock a gateway (or ``hoopd audit reindex``) holds on a journal."""

    def __init__(self, directory: Path) -> None:
        self._fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        for attempt in range(_ACQUIRE_ATTEMPTS):
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if attempt + 1 == _ACQUIRE_ATTEMPTS:
                    os.close(self._fd)
                    raise LockHeld(str(directory)) from None
                time.sleep(_ACQUIRE_PAUSE_SECONDS)

    def announce(self, first_segment: int) -> None:
        """Record this run's pid and first segment for readers."""
        content = f"{os.getpid()} {first_segment}\n".encode()
        # Write, then cut: a reader never finds the file empty while the lock is held.
        os.pwrite(self._fd, content, 0)
        os.ftruncate(self._fd, len(content))

    def release(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing drops the flock
            self._fd = -1


def running_gateway(directory: Path) -> RunInfo | None:
    """Who holds the journal lock right now, or None if nobody does."""
    try:
        fd = os.open(directory / LOCK_NAME, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:  # no journal yet, or not ours to read: nobody we can see
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _parse(os.pread(fd, 64, 0))
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _parse(content: bytes) -> RunInfo:
    parts = content.split()
    try:
        return RunInfo(int(parts[0]), int(parts[1]))
    except (IndexError, ValueError):
        return RunInfo(None, None)  # caught between truncate and write
