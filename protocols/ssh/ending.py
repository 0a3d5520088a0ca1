"""How an SSH session ends: what ends it first, what is recorded, what the client
is told.

Guarantee: the client learns why the gateway ended its session (revocation,
expiry, shutdown, an unusable target, failed recording) on the stderr of each
channel it has open and as the SSH disconnect message; OpenSSH prints both.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import asyncssh
import trio

from hoopd.live_sessions import SessionEnded
from hoopd.recording.journal import SessionRecorder
from hoopd.session_records import record_ended

from .bridge import to_trio
from .channel import say
from .link import Link
from .process import ChannelProcess

log = logging.getLogger("hoopd.ssh")

LAST_WORDS_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class End:
    """Why a session ended (for the record) and what the client is told (None:
    nothing, the client left)."""

    reason: str
    message: str | None


RECORDING_FAILED = End(
    "recording unavailable",
    "session recording is unavailable; the gateway refuses to run commands",
)


async def first_end(conn: asyncssh.SSHServerConnection, link: Link) -> End:
    """Wait until the client leaves, the target leaves, or recording fails."""
    ends: list[End] = []
    async with trio.open_nursery() as nursery:

        async def until(wait: Callable[[], Awaitable[None]], end: End) -> None:
            await wait()
            ends.append(end)
            nursery.cancel_scope.cancel()

        nursery.start_soon(until, to_trio(conn.wait_closed), End("client disconnected", None))
        target_gone = End("target disconnected", "the target closed the connection")
        nursery.start_soon(until, to_trio(link.upstream.wait_closed), target_gone)
        nursery.start_soon(until, link.failed.wait, RECORDING_FAILED)
    return ends[0]


async def ended_from_outside(recorder: SessionRecorder, ended: SessionEnded) -> End:
    """Record why the session was ended from outside (revocation, expiry)."""
    return End(await record_ended(recorder, ended), ended.message)


async def last_words(
    conn: asyncssh.SSHServerConnection, message: str | None, channels: Iterable[ChannelProcess]
) -> None:
    """Tell the client why, then wait briefly for the close: on the stderr of each
    open channel (OpenSSH exits when its last channel closes, sometimes before it
    reads what follows), and as the SSH disconnect message."""
    if message is None:
        conn.close()
    else:
        text = f"hoopd: {message}"
        for process in list(channels):
            say(process, message)
        conn.disconnect(asyncssh.DISC_BY_APPLICATION, text)
    with trio.move_on_after(LAST_WORDS_SECONDS):
        await to_trio(conn.wait_closed)()
