"""Who may use an SSH connection through hoopd: the gateway token as the password.

Guarantees: a login succeeds only if the user name selects a connection on this
listener (see :mod:`.users`), the token verifies for that connection
(``Authenticator.authenticate``) and its scope reaches the connection. Every
refusal looks the same to the client, whichever check failed, and comes after
``auth_failure_delay_seconds``; each is recorded as a denied session; after
:data:`MAX_AUTH_ATTEMPTS` refusals the connection is closed. Password and
keyboard-interactive authentication both carry the token (asyncssh asks for it
with a password prompt); public keys are refused. Local forwards (``direct-tcpip``)
go to ``forwards`` (:mod:`.forward` judges them); remote forwarding, agent and X11
forwarding are refused (asyncssh's defaults: nothing here accepts them).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncssh
import trio

from hoopd.gateway import Gateway, Listener
from hoopd.identity.base import Identity
from hoopd.session_records import record_refused_login

from .bridge import to_asyncio
from .users import Selected, select_target

log = logging.getLogger("hoopd.ssh")

MAX_AUTH_ATTEMPTS = 6
"""Refused tokens after which the connection is closed."""


@dataclass(frozen=True, slots=True)
class Accepted:
    """A login that succeeded: what it selected, who it is, the name it gave."""

    selected: Selected
    identity: Identity
    username: str
    #: The widest action the token's scope grants on the selected connection.
    granted_level: int


Forwards = Callable[
    [asyncssh.SSHServerConnection, str, int], Awaitable[asyncssh.SSHTCPSession[bytes]]
]
"""Serves a local forward: (connection, destination host, port) -> its session."""


class GatewayServer(asyncssh.SSHServer):
    """asyncssh's view of one client connection: authentication and new channels.

    ``channels`` makes the session object for each session channel the client
    opens (it is only called after authentication succeeded).
    """

    def __init__(
        self,
        gateway: Gateway,
        listener: Listener,
        client_addr: str,
        channels: Callable[[], asyncssh.SSHServerSession[bytes]],
        forwards: Forwards | None = None,
    ) -> None:
        self.gateway = gateway
        self.listener = listener
        self.client_addr = client_addr
        self.accepted: Accepted | None = None
        self._channels = channels
        self._forwards = forwards
        self._conn: asyncssh.SSHServerConnection | None = None
        self._failures = 0

    def begin_auth(self, username: str) -> bool:
        return True  # always ask: an unknown connection must look like a bad token

    def public_key_auth_supported(self) -> bool:
        return False

    def password_auth_supported(self) -> bool:
        return True

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn

    async def validate_password(self, username: str, password: str) -> bool:
        accepted = await to_asyncio(self._check)(username, password)
        if accepted is None:
            self._failures += 1
            if self._failures >= MAX_AUTH_ATTEMPTS and self._conn is not None:
                # asyncssh has no limit of its own; OpenSSH's MaxAuthTries is 6.
                self._conn.disconnect(
                    asyncssh.DISC_NO_MORE_AUTH_METHODS_AVAILABLE,
                    "too many authentication failures",
                )
            return False
        self.accepted = accepted
        return True

    def session_requested(self) -> asyncssh.SSHServerSession[bytes]:
        return self._channels()

    def connection_requested(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> Awaitable[asyncssh.SSHTCPSession[bytes]] | bool:
        # asyncssh awaits the result before confirming the channel: the forward is
        # judged, and opened on the target, before the client may send anything.
        if self._forwards is None or self._conn is None:
            return False
        return self._forwards(self._conn, dest_host, dest_port)

    async def _check(self, username: str, token: str) -> Accepted | None:
        """(trio) The login, or None after the failure delay."""
        selected = select_target(username, self.listener)
        login = None
        if selected is not None:
            login = await self.gateway.authenticator.login(token, selected.connection.name)
        if selected is None or login is None:
            await trio.sleep(self.gateway.config.auth_failure_delay_seconds)
            await self._record_denied(username, selected)
            return None
        return Accepted(selected, login.identity, username, login.granted_level)

    async def _record_denied(self, username: str, selected: Selected | None) -> None:
        await record_refused_login(
            self.gateway.journal,
            connection=selected.connection.name if selected else "",
            protocol="ssh",
            client_addr=self.client_addr,
            attributes={"client_user": username},
        )
        log.info("client %s (user %r) was refused", self.client_addr, username)
