"""Local forwarding (``ssh -L``): a ``direct-tcpip`` channel, judged, then opened
from the target's side.

Order, per forward: ``channel_open`` record (``type: forward``, ``destination``) ->
the pipeline admits ``HostCommand("forward", "forward to HOST:PORT",
destination="HOST:PORT")`` (scope ``write``, policy ``destination`` globs) -> a
refusal fails the channel open (``administratively prohibited``, the message
prefixed ``hoopd:``) and nothing is opened on the target -> else the target's sshd
opens the TCP connection (``direct-tcpip`` on the upstream connection); only then
is the client's channel confirmed. Bytes are recorded like a session channel's
(``stdin`` towards the destination, ``stdout`` back), each chunk before it is
forwarded, with the same flow control; a ``channel_close`` record counts the
bytes each way when the forward ends. A forward that needs approval waits until
it is decided or the client leaves; a forward channel has no stderr, so the
approval line goes to the stderr of the connection's open session channels
(``Link.announce``; with ``ssh -N`` there are none, and only the log has it).

:func:`carry` is the byte path every forwarded channel shares (local and remote
forwards, agent connections): both directions pumped with flow control, each
chunk recorded before it is forwarded (unless the caller records counts only),
and a ``channel_close`` record with the counts at the end.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from typing import Protocol

import asyncssh
from asyncssh.constants import OPEN_ADMINISTRATIVELY_PROHIBITED, OPEN_CONNECT_FAILED
from asyncssh.stream import SSHTCPStreamSession

from hoopd.events import HostCommand

from .bridge import to_trio
from .link import Link, RecordingFailed
from .relay import CHUNK

log = logging.getLogger("hoopd.ssh")


class Source(Protocol):
    """One direction's reading end: an SSH channel's reader or an asyncio stream's."""

    async def read(self, n: int = -1, /) -> bytes: ...


class Sink(Protocol):
    """One direction's writing end: an SSH channel's writer or an asyncio stream's."""

    def write(self, data: bytes, /) -> None: ...

    async def drain(self) -> None: ...

    def write_eof(self) -> None: ...

    def close(self) -> None: ...


def destination_of(host: str, port: int) -> str:
    """``HOST:PORT`` (``[HOST]:PORT`` for an IPv6 address), as policy globs see it."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def open_forward(
    link: Link, conn: asyncssh.SSHServerConnection, host: str, port: int
) -> asyncssh.SSHTCPSession[bytes]:
    """(asyncio) The client's side of an admitted forward, its target side open.
    Raises ChannelOpenError (the client's open fails) when it is refused, cannot
    be recorded, or the target cannot open it."""
    number = link.next_channel()
    destination = destination_of(host, port)
    command = HostCommand("forward", f"forward to {destination}", destination=destination)
    body = {"channel": number, "type": "forward", "command": command.text}
    try:
        await link.record([("channel_open", {**body, "destination": destination})])
        _, refusal = await link.admit(command, link.announcer(command), to_trio(conn.wait_closed))
        if refusal is not None:
            await _closed(link, number, 0, 0, refused=True)
            raise asyncssh.ChannelOpenError(
                OPEN_ADMINISTRATIVELY_PROHIBITED, f"hoopd: {refusal.message}"
            )
        try:
            reader, writer = await link.upstream.open_connection(host, port)
        except (asyncssh.Error, OSError) as exc:
            reason = exc.reason if isinstance(exc, asyncssh.Error) else str(exc)
            await _closed(link, number, 0, 0, refused=True)
            raise asyncssh.ChannelOpenError(
                OPEN_CONNECT_FAILED, f"hoopd: the target could not open {destination}: {reason}"
            ) from None
    except RecordingFailed as exc:  # the engine ends the session
        raise asyncssh.ChannelOpenError(OPEN_ADMINISTRATIVELY_PROHIBITED, f"hoopd: {exc}") from None

    async def relay(
        client_in: asyncssh.SSHReader[bytes], client_out: asyncssh.SSHWriter[bytes]
    ) -> None:
        await carry(link, number, (client_in, client_out), (reader, writer))

    return SSHTCPStreamSession[bytes](relay)


async def carry(
    link: Link,
    number: int,
    client: tuple[Source, Sink],
    target: tuple[Source, Sink],
    *,
    record_data: bool = True,
) -> None:
    """(asyncio) Carry channel ``number`` both ways until each direction has ended,
    record its ``channel_close`` (the bytes each way), and close both sides. Never
    raises. With ``record_data`` each chunk is recorded (``stdin`` from the client,
    ``stdout`` from the target) before it is forwarded; without it only the counts
    are recorded. A failed record stops the carrying (the engine ends the session)."""
    kinds = ("stdin", "stdout") if record_data else (None, None)
    try:
        counts = await asyncio.gather(
            _pump(link, number, kinds[0], client[0], target[1]),
            _pump(link, number, kinds[1], target[0], client[1]),
        )
        await _closed(link, number, *counts)
    except RecordingFailed:
        pass  # nothing more is forwarded; the engine ends the session
    except Exception:
        log.exception("session %s: channel %d failed", link.session.session_id, number)
    finally:
        target[1].close()
        client[1].close()


async def _pump(link: Link, number: int, kind: str | None, source: Source, sink: Sink) -> int:
    """Carry one direction until EOF (passed on); the bytes carried. ``kind``: the
    record each chunk is written as before it is forwarded (None: not recorded)."""
    carried = 0
    while True:
        try:
            data = await source.read(CHUNK)
        except (OSError, asyncssh.Error):
            data = b""
        if not data:
            with suppress(OSError, asyncssh.Error):
                sink.write_eof()
            return carried
        if kind is not None:
            await link.record([(kind, {"channel": number, "data": data})])
        else:
            link.activity()  # what is not recorded still counts as activity
        try:
            sink.write(data)
            await sink.drain()
        except (OSError, asyncssh.Error):
            return carried
        carried += len(data)


async def record_refused(link: Link, number: int) -> None:
    """The ``channel_close`` of a forwarded channel that never carried anything."""
    await _closed(link, number, 0, 0, refused=True)


async def _closed(
    link: Link, number: int, to_target: int, to_client: int, *, refused: bool = False
) -> None:
    body: dict[str, object] = {"channel": number, "to_target": to_target, "to_client": to_client}
    if refused:
        body["refused"] = True
    await link.record([("channel_close", body)])
