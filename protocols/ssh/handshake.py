"""The client's side of a connection until its session runs: the SSH handshake on
an already-accepted socket, and the channels and remote forward requests that
arrive before the target is dialled (they wait for it)."""

from __future__ import annotations

import logging
import socket

import asyncssh
import trio

from .auth import GatewayServer
from .bridge import to_asyncio
from .channel import serve_channel, tell
from .forward import open_forward
from .link import Link
from .process import ChannelProcess
from .remote_forward import open_remote_forward
from .x11 import xauthority_path

log = logging.getLogger("hoopd.ssh")

CLIENT_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
"""Offered to clients: AES-GCM only (OpenSSH has had it since 6.2)."""


class Pending:
    """The link channels wait for: set once the target is dialled (or never)."""

    def __init__(self) -> None:
        self.link: Link | None = None
        self.settled = trio.Event()
        #: The channels being served, so the session's last words reach each.
        self.open: set[ChannelProcess] = set()

    async def channel(self, process: ChannelProcess) -> None:
        """(asyncio) Serve a channel once the link is there. If it never is, the
        session is ending, and its last words say why on this channel too."""
        self.open.add(process)
        try:
            await to_asyncio(self.settled.wait)()
            if self.link is not None:
                await serve_channel(self.link, process)
        finally:
            self.open.discard(process)

    async def announce(self, text: str) -> None:
        """(trio) The pipeline's message about a command with no channel of its own
        to say it on (a forward waiting for approval), on the stderr of every session
        channel open now, where ``ssh`` shows it; and in the log."""
        log.info("%s", text)
        for process in list(self.open):
            tell(process, text)

    async def forward(
        self, conn: asyncssh.SSHServerConnection, host: str, port: int
    ) -> asyncssh.SSHTCPSession[bytes]:
        """(asyncio) A local forward (``direct-tcpip``) once the link is there; see
        :mod:`.forward`. Raises ChannelOpenError if it is refused."""
        await to_asyncio(self.settled.wait)()
        if self.link is None:
            raise asyncssh.ChannelOpenError(
                asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, "hoopd: the session is ending"
            )
        return await open_forward(self.link, conn, host, port)

    async def remote_forward(
        self, conn: asyncssh.SSHServerConnection, host: str, port: int
    ) -> asyncssh.SSHListener | bool:
        """(asyncio) A remote forward request (``tcpip-forward``) once the link is
        there; see :mod:`.remote_forward`. False: refused."""
        await to_asyncio(self.settled.wait)()
        if self.link is None:
            return False
        return await open_remote_forward(self.link, conn, host, port)


async def accept(
    sock: socket.socket, server: GatewayServer, key: asyncssh.SSHKey, timeout: float
) -> asyncssh.SSHServerConnection:
    """(asyncio) The SSH handshake on ``sock``; returns once the client has logged in."""
    try:
        return await _handshake(sock, server, key, timeout)
    except (asyncssh.Error, OSError, TimeoutError):
        await server.login_failed()  # records the refusals it held back
        raise


async def _handshake(
    sock: socket.socket, server: GatewayServer, key: asyncssh.SSHKey, timeout: float
) -> asyncssh.SSHServerConnection:
    return await asyncssh.run_server(
        sock,
        server_factory=lambda: server,
        server_host_keys=[key],
        server_version="hoopd",
        encoding=None,
        line_editor=False,
        # Accepted so that a session channel can tell its client asked (asyncssh
        # then keeps a relay socket of its own, unused by hoopd); whether the
        # target's session gets the agent is judged per channel (.agent).
        agent_forwarding=True,
        # Accepted for the same reason: asyncssh then opens a display for the
        # client on the gateway's loopback, closed again if policy refuses (.x11).
        x11_forwarding=True,
        x11_auth_path=str(xauthority_path(server.gateway.config.data_dir)),
        login_timeout=timeout,
        connect_timeout=timeout,
        # No SSH-level keepalive: the accepted socket has TCP keep-alive probes
        # (hoopd.relay.keep_alive); asyncssh's resets a timer for every packet.
        # The client picks the cipher (its first that we offer); OpenSSH prefers
        # chacha20-poly1305, which asyncssh does far slower than AES-GCM.
        encryption_algs=CLIENT_CIPHERS,
    )
