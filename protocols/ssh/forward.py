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
bytes each way when the forward ends. A forward that needs approval waits
silently (a forward channel has no stderr) until it is decided or the client
leaves.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

import asyncssh
from asyncssh.constants import OPEN_ADMINISTRATIVELY_PROHIBITED, OPEN_CONNECT_FAILED
from asyncssh.stream import SSHTCPStreamSession

from hoopd.events import HostCommand

from .bridge import to_trio
from .link import Link, RecordingFailed
from .relay import CHUNK

log = logging.getLogger("hoopd.ssh")


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
        _, refusal = await link.admit(command, _silent, to_trio(conn.wait_closed))
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

    async def carry(
        client_in: asyncssh.SSHReader[bytes], client_out: asyncssh.SSHWriter[bytes]
    ) -> None:
        try:
            counts = await asyncio.gather(
                _pump(link, number, "stdin", client_in, writer),
                _pump(link, number, "stdout", reader, client_out),
            )
            await _closed(link, number, *counts)
        except RecordingFailed:
            pass  # nothing more is forwarded; the engine ends the session
        except Exception:
            log.exception("session %s: forward %d failed", link.session.session_id, number)
        finally:
            writer.close()
            client_out.close()

    return SSHTCPStreamSession[bytes](carry)


async def _silent(text: str) -> None:
    """(trio) A forward channel has no stderr to say it on: the log does."""
    log.info("a forward waits: %s", text)


async def _pump(
    link: Link,
    number: int,
    kind: str,
    source: asyncssh.SSHReader[bytes],
    sink: asyncssh.SSHWriter[bytes],
) -> int:
    """Carry one direction until EOF (passed on); the bytes carried."""
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
        await link.record([(kind, {"channel": number, "data": data})])
        try:
            sink.write(data)
            await sink.drain()
        except (OSError, asyncssh.Error):
            return carried
        carried += len(data)


async def _closed(
    link: Link, number: int, to_target: int, to_client: int, *, refused: bool = False
) -> None:
    body: dict[str, object] = {"channel": number, "to_target": to_target, "to_client": to_client}
    if refused:
        body["refused"] = True
    await link.record([("channel_close", body)])
