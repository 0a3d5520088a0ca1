"""Who may use an SSH connection through hoopd: the gateway token as the password,
or a public key (one bound to an identity, or a certificate hoopd's CA issued).

Guarantees: a login succeeds only if the user name selects a connection on this
listener (see :mod:`.users`), the token verifies for that connection
(``Authenticator.login``), or the key is bound to an identity or is a certificate
hoopd's CA signed (``Authenticator.login_with_public_key``) and the client proves
it holds the private key (:mod:`.pubkeys`); and the identity is current, not
revoked, and its scope reaches the connection. Every refusal looks the same to the
client, whichever check failed, and comes after ``auth_failure_delay_seconds``;
each is recorded as a denied session; after :data:`MAX_AUTH_ATTEMPTS` refusals
(tokens and keys together) the connection is closed. One exception: a client's
query whether a key would be accepted (unsigned; OpenSSH asks about a key before
its certificate) is answered at once, since it guesses no secret and SSH reveals
the answer by design, and its refusal is recorded only if the connection then ends
without a login (:meth:`GatewayServer.login_failed`). Password and
keyboard-interactive authentication both carry the token (asyncssh asks for it
with a password prompt). Local forwards (``direct-tcpip``)
go to ``forwards`` (:mod:`.forward` judges them), remote forward requests
(``tcpip-forward``) to ``remote_forwards`` (:mod:`.remote_forward` judges them);
without them, each is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncssh
import trio

from hoopd.gateway import Gateway, Listener
from hoopd.identity.authenticator import Login
from hoopd.identity.base import Identity
from hoopd.identity.ssh_wire import fingerprint, key_algorithm
from hoopd.session_records import record_refused_login

from .bridge import to_asyncio
from .pubkeys import AsyncsshCheck, check_keys_first
from .users import Selected, select_target

log = logging.getLogger("hoopd.ssh")

MAX_AUTH_ATTEMPTS = 6
"""Refused tokens or keys after which the connection is closed."""


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

RemoteForwards = Callable[
    [asyncssh.SSHServerConnection, str, int], Awaitable[asyncssh.SSHListener | bool]
]
"""Serves a remote forward request: (connection, listen host, port) -> its listener,
or False when it is refused."""


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
        remote_forwards: RemoteForwards | None = None,
    ) -> None:
        self.gateway = gateway
        self.listener = listener
        self.client_addr = client_addr
        self.accepted: Accepted | None = None
        self._channels = channels
        self._forwards = forwards
        self._remote_forwards = remote_forwards
        self._conn: asyncssh.SSHServerConnection | None = None
        self._failures = 0
        #: True only while asyncssh checks a key the gateway has just admitted.
        self._key_admitted = False
        #: Refused key queries, recorded by login_failed (dropped by a login).
        self._held: list[tuple[str, Selected | None, dict[str, str]]] = []

    def begin_auth(self, username: str) -> bool:
        return True  # always ask: an unknown connection must look like a bad token

    def public_key_auth_supported(self) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        check_keys_first(conn, self._validate_key)

    async def validate_password(self, username: str, password: str) -> bool:
        accepted = await to_asyncio(self._check)(username, password)
        if accepted is None:
            self._count_failure()
            return False
        self.accepted = accepted
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        # asyncssh asks this only inside _validate_key, about the key just admitted.
        return self._key_admitted

    def validate_ca_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        # Likewise: the certificate was admitted only if hoopd's CA signed it.
        return self._key_admitted

    async def _validate_key(
        self, username: str, key_data: bytes, msg: bytes, asyncssh_check: AsyncsshCheck
    ) -> bool:
        """(asyncio) One public-key request (:mod:`.pubkeys`): the gateway's check,
        then asyncssh's (a known key without its private half, or a certificate
        asyncssh finds invalid, is refused like any other); a login when the request
        was signed (``msg``), and only a query otherwise."""
        accepted = await to_asyncio(self._check_key)(username, key_data)
        if accepted is not None:
            self._key_admitted = True
            try:
                proven = await asyncssh_check()
            finally:
                self._key_admitted = False
            if proven:
                if msg:
                    self.accepted = accepted
                    self._held.clear()  # keys asked about first were no refused login
                return True
        refusal = (username, select_target(username, self.listener), _key_record(key_data))
        if msg:
            await to_asyncio(self._refuse)(*refusal)
        else:
            self._held.append(refusal)
        self._count_failure()
        return False

    async def login_failed(self) -> None:
        """(asyncio) The connection ended without a login: record the refused key
        queries held until now. Never raises."""
        held, self._held = self._held, []
        for refusal in held:
            await to_asyncio(self._record_refusal)(*refusal)

    def _count_failure(self) -> None:
        self._failures += 1
        if self._failures >= MAX_AUTH_ATTEMPTS and self._conn is not None:
            # asyncssh has no limit of its own; OpenSSH's MaxAuthTries is 6.
            self._conn.disconnect(
                asyncssh.DISC_NO_MORE_AUTH_METHODS_AVAILABLE,
                "too many authentication failures",
            )

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

    def server_requested(
        self, listen_host: str, listen_port: int
    ) -> Awaitable[asyncssh.SSHListener | bool] | bool:
        # Judged (and the target asked to listen) before the client gets an answer.
        if self._remote_forwards is None or self._conn is None:
            return False
        return self._remote_forwards(self._conn, listen_host, listen_port)

    async def _check(self, username: str, token: str) -> Accepted | None:
        """(trio) The login with a token, or None after the failure delay."""

        async def login(connection: str) -> Login | None:
            return await self.gateway.authenticator.login(token, connection)

        return await self._login(username, login, {})

    async def _check_key(self, username: str, key_data: bytes) -> Accepted | None:
        """(trio) The login with a key or certificate, or None (at once: the caller
        refuses)."""
        selected = select_target(username, self.listener)
        if selected is None:
            return None
        authenticator = self.gateway.authenticator
        done = await authenticator.login_with_public_key(key_data, selected.connection.name)
        if done is None:
            return None
        return Accepted(selected, done.identity, username, done.granted_level)

    async def _login(
        self,
        username: str,
        login: Callable[[str], Awaitable[Login | None]],
        record: dict[str, str],
    ) -> Accepted | None:
        selected = select_target(username, self.listener)
        done = None if selected is None else await login(selected.connection.name)
        if selected is None or done is None:
            await self._refuse(username, selected, record)
            return None
        return Accepted(selected, done.identity, username, done.granted_level)

    async def _refuse(
        self, username: str, selected: Selected | None, record: dict[str, str]
    ) -> None:
        """(trio) The failure delay, then the refusal's record."""
        await trio.sleep(self.gateway.config.auth_failure_delay_seconds)
        await self._record_refusal(username, selected, record)

    async def _record_refusal(
        self, username: str, selected: Selected | None, record: dict[str, str]
    ) -> None:
        await record_refused_login(
            self.gateway.journal,
            connection=selected.connection.name if selected else "",
            protocol="ssh",
            client_addr=self.client_addr,
            attributes={"client_user": username, **record},
        )
        log.info("client %s (user %r) was refused", self.client_addr, username)


def _key_record(key_data: bytes) -> dict[str, str]:
    """What a refused key's record says about it: its type and fingerprint."""
    return {"key_type": key_algorithm(key_data) or "?", "key": fingerprint(key_data)}
