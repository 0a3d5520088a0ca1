"""The server side of one session channel, as asyncssh hands it to the engine.

asyncssh's own ``SSHServerProcess`` accepts the ``sftp`` subsystem only when it
serves SFTP itself; here every subsystem request is accepted and handed to the
engine like a shell or exec request, so the pipeline decides and the target serves
it. Everything else (pty, window changes, signals, flow control) is asyncssh's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncssh
from asyncssh.constants import EXTENDED_DATA_STDERR

Handler = Callable[["ChannelProcess"], Awaitable[None]]


class ChannelProcess(asyncssh.SSHServerProcess[bytes]):
    def __init__(self, handler: Handler) -> None:
        super().__init__(handler, None, 0, False)  # type: ignore[arg-type]

    def subsystem_requested(self, subsystem: str) -> bool:
        return True

    def session_started(self) -> None:
        # What SSHServerStreamSession.session_started does for a plain session,
        # without its sftp branch (which would need asyncssh's own SFTP server).
        chan = self._chan
        assert chan is not None and self._conn is not None
        stdin = asyncssh.SSHReader[bytes](self, chan)
        stdout = asyncssh.SSHWriter[bytes](self, chan)
        stderr = asyncssh.SSHWriter[bytes](self, chan, EXTENDED_DATA_STDERR)
        handler = self._start_process(stdin, stdout, stderr)
        if handler is not None:
            self._conn.create_task(handler, stdin.logger)
