"""Telling every gateway that shares a token store that a revocation was written.

The store (SQLite) is the truth; this is only the doorbell. :func:`announce` rewrites
a small signal file beside the store, and every gateway process using that store
watches the file with Linux inotify (:class:`RevocationDoorbell`), so it wakes
within milliseconds, reads the new revocations from the store and ends the live
sessions they cover. Nothing polls.

Guarantees: :func:`announce` never raises (a revocation written but not announced
still refuses every new connection, because each connection checks the store);
:meth:`RevocationDoorbell.wait` returns at least once after every announce made
after the doorbell was opened. Where inotify is unavailable (not Linux), opening
the doorbell raises ``OSError`` and the gateway says so at start.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import struct
from pathlib import Path
from typing import Final

import trio

log = logging.getLogger("hoopd.revocation")

SIGNAL_FILE: Final = "revocations.signal"

_IN_CLOSE_WRITE: Final = 0x00000008
_IN_MOVED_TO: Final = 0x00000080
_IN_NONBLOCK: Final = os.O_NONBLOCK
_IN_CLOEXEC: Final = os.O_CLOEXEC
_EVENT_HEAD: Final = struct.Struct("iIII")  # wd, mask, cookie, name length


def announce(store_dir: Path) -> None:
    """Ring every gateway watching the store in ``store_dir``. Never raises; call
    after the revocation is committed to the store."""
    path = Path(store_dir) / SIGNAL_FILE
    try:
        # Opening for writing and closing is the event (IN_CLOSE_WRITE); the file's
        # content does not matter, so it never grows.
        with open(path, "wb") as signal:
            signal.write(b"revoked\n")
    except OSError as exc:
        log.error("could not announce a revocation in %s: %s", store_dir, exc.strerror)


class RevocationDoorbell:
    """An inotify watch on the store directory's signal file."""

    def __init__(self, store_dir: Path) -> None:
        self._libc = _libc()
        fd = self._libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            raise _os_error("inotify_init1")
        self._fd = fd
        # Watch the directory, not the file, so the file may be created, replaced or
        # deleted by anyone without losing the watch.
        watch = self._libc.inotify_add_watch(
            fd, os.fsencode(str(store_dir)), _IN_CLOSE_WRITE | _IN_MOVED_TO
        )
        if watch < 0:
            error = _os_error("inotify_add_watch")
            os.close(fd)
            raise error

    async def wait(self) -> None:
        """Return once the signal file has been written since the last call."""
        while True:
            await trio.lowlevel.wait_readable(self._fd)
            if self._signalled():
                return

    def _signalled(self) -> bool:
        """Drain pending events; whether one of them was the signal file's."""
        rung = False
        while True:
            try:
                data = os.read(self._fd, 64 * 1024)
            except BlockingIOError:
                return rung
            offset = 0
            while offset + _EVENT_HEAD.size <= len(data):
                _wd, _mask, _cookie, length = _EVENT_HEAD.unpack_from(data, offset)
                start = offset + _EVENT_HEAD.size
                name = data[start : start + length].rstrip(b"\0")
                rung = rung or name == SIGNAL_FILE.encode()
                offset = start + length

    def close(self) -> None:
        if self._fd >= 0:
            trio.lowlevel.notify_closing(self._fd)
            os.close(self._fd)
            self._fd = -1


def _libc() -> ctypes.CDLL:
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name, use_errno=True)
    if not hasattr(libc, "inotify_init1"):
        raise OSError(errno.ENOSYS, "inotify is not available on this system")
    return libc


def _os_error(call: str) -> OSError:
    code = ctypes.get_errno()
    return OSError(code, f"{call}: {os.strerror(code)}")
