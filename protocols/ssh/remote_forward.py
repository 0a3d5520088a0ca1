"""Remote forwarding (``ssh -R``): the client's ``tcpip-forward`` request, judged,
then a listener on the target whose connections come back to the client.

Order, per request: the pipeline admits ``HostCommand("remote-forward", "listen
on BIND:PORT on the target", destination="BIND:PORT")`` (scope ``admin``; only a
rule naming ``remote-forward`` allows it, docs/policy.md) -> a refusal fails the
request (``ssh`` says ``remote port forwarding failed``) and nothing is asked of
the target -> else the target's sshd is asked to listen (``tcpip-forward`` on the
upstream connection), and its answer is the client's (the port it chose, for
port 0); a ``remote_forward`` record says where it listens, or that it could
not. Each connection the target accepts there: a ``channel_open`` record (type
``remote-forward``), a ``forwarded-tcpip`` channel opened to the client, then
:func:`.forward.carry` (each chunk recorded before it is forwarded: ``stdin``
from the client's side, ``stdout`` from the target's). The client's
``cancel-tcpip-forward``, or the end of the session, closes the listener on the
target (``cancel-tcpip-forward`` upstream; the target's sshd drops it anyway
when the upstream connection closes).
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
from .forward import carry, destination_of, record_refused
from .link import Link, RecordingFailed

log = logging.getLogger("hoopd.ssh")


async def open_remote_forward(
    link: Link, conn: asyncssh.SSHServerConnection, host: str, port: int
) -> asyncssh.SSHListener | bool:
    """(asyncio) The listener for an admitted ``tcpip-forward`` request, listening
    on the target; False (the request fails) when it is refused, cannot be
    recorded, or the target will not listen there."""
    listen = destination_of(host, port)
    command = HostCommand("remote-forward", f"listen on {listen} on the target", destination=listen)
    try:
        _, refusal = await link.admit(command, link.announcer(command), to_trio(conn.wait_closed))
        if refusal is not None:
            return False
        forwards = _Connections(link, conn, host)
        try:
            target = await link.upstream.create_server(forwards.accept, host, port)
        except (asyncssh.Error, OSError) as exc:
            reason = exc.reason if isinstance(exc, asyncssh.Error) else str(exc)
            await link.record([("remote_forward", {"listen": listen, "refused": True})])
            log.info("session %s: the target will not listen on %s: %s", _id(link), listen, reason)
            return False
        forwards.port = target.get_port()
        await link.record([("remote_forward", {"listen": listen, "port": forwards.port})])
        forwards.ready.set()
    except RecordingFailed:  # the engine ends the session
        return False
    return _TargetListener(link, target, destination_of(host, forwards.port))


class _Connections:
    """What the target's listener does with each connection it accepts."""

    def __init__(self, link: Link, conn: asyncssh.SSHServerConnection, host: str) -> None:
        self.link = link
        self.conn = conn
        self.host = host
        #: The port the target listens on (known once it answered the request).
        self.port = 0
        #: Set once the port is known and the listening recorded: a connection can
        #: reach the target's listener before the gateway has read its answer.
        self.ready = asyncio.Event()

    async def accept(self, orig_host: str, orig_port: int) -> asyncssh.SSHTCPSession[bytes]:
        """(asyncio) A connection to the target's listener: recorded, then opened
        towards the client. Raises ChannelOpenError (the target's connection is
        closed) when it cannot be recorded or the client will not take it."""
        await self.ready.wait()
        link, number = self.link, self.link.next_channel()
        listen, origin = destination_of(self.host, self.port), destination_of(orig_host, orig_port)
        body = {
            "channel": number,
            "type": "remote-forward",
            "command": f"connection to {listen} from {origin}",
            "listen": listen,
            "origin": origin,
        }
        try:
            await link.record([("channel_open", body)])
            try:
                client = await self.conn.open_connection(self.host, self.port, orig_host, orig_port)
            except (asyncssh.Error, OSError) as exc:
                await record_refused(link, number)
                reason = exc.reason if isinstance(exc, asyncssh.Error) else str(exc)
                raise asyncssh.ChannelOpenError(OPEN_CONNECT_FAILED, reason) from None
        except RecordingFailed as exc:
            raise asyncssh.ChannelOpenError(OPEN_ADMINISTRATIVELY_PROHIBITED, str(exc)) from None

        async def relay(
            target_in: asyncssh.SSHReader[bytes], target_out: asyncssh.SSHWriter[bytes]
        ) -> None:
            await carry(link, number, client, (target_in, target_out))

        return SSHTCPStreamSession[bytes](relay)


class _TargetListener(asyncssh.SSHListener):
    """The client's view of a remote forward: closing it (the client's
    ``cancel-tcpip-forward``, or its connection's end) closes the target's."""

    def __init__(self, link: Link, target: asyncssh.SSHListener, listen: str) -> None:
        super().__init__()
        self._link = link
        self._target = target
        self._listen = listen
        self._closed = False
        #: The task recording the end; kept so that it is not collected while pending.
        self._ended: asyncio.Task[None] | None = None

    def get_port(self) -> int:
        return self._target.get_port()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._target.close()
        # When the gateway ends the session the recording is closing (its
        # session_end says everything stopped), and so may the loop.
        if not (self._link.ending or self._link.failed.is_set()):
            self._ended = asyncio.ensure_future(self._record_end())

    async def wait_closed(self) -> None:
        await self._target.wait_closed()

    async def _record_end(self) -> None:
        # Best effort: when the client's connection has closed, the recording may
        # be closed first.
        with suppress(RecordingFailed):
            await self._link.record([("remote_forward_end", {"listen": self._listen})])


def _id(link: Link) -> str:
    return link.session.session_id
