"""The client-facing handshake: TLS, startup packet, gateway token, connection choice.

The gateway plays the server: it answers SSLRequest with TLS when it can,
GSSENCRequest with ``N``, forwards CancelRequests, and asks for the token as a
cleartext password — which it accepts only over TLS (or from loopback when the
configuration allows it), because the token is a bearer credential.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from hoopd.codec import ProtocolError
from hoopd.config import ConnectionConfig
from hoopd.gateway import Gateway, Listener
from hoopd.identity.authenticator import Login
from hoopd.identity.base import Identity
from hoopd.relay import ByteStream, SocketByteStream, TrioByteStream

from . import backend as be
from . import frontend as fe
from . import refusals
from .cancel import CancelRegistry, forward_cancel
from .codec import PostgresCodec
from .io import read_message

log = logging.getLogger("hoopd.postgres")

# Called with the startup packet when a token is rejected, so the attempt is recorded.
DeniedHook = Callable[[fe.StartupMessage], Awaitable[None]]


class HandshakeRefused(Exception):
    """The handshake ends here; ``reply`` (possibly empty) is what to send the client
    over ``ClientLeg.stream``."""

    def __init__(self, reply: bytes, reason: str) -> None:
        super().__init__(reason)
        self.reply = reply
        self.reason = reason


@dataclass(slots=True)
class ClientLeg:
    """The client's connection as the handshake leaves it (TLS-wrapped once negotiated)."""

    stream: ByteStream
    codec: PostgresCodec
    tls: bool = False


@dataclass(slots=True)
class ClientHello:
    """A client that has started up and proven a token."""

    startup: fe.StartupMessage
    identity: Identity
    connection: ConnectionConfig
    #: The widest action the token's scope grants on ``connection``.
    granted_level: int


@dataclass(slots=True)
class CancelHandled:
    """The connection was a cancel request, now dealt with."""


def is_loopback(client_addr: str) -> bool:
    host = client_addr.rsplit(":", 1)[0].strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def accept_client(
    gateway: Gateway,
    listener: Listener,
    raw: SocketByteStream,
    leg: ClientLeg,
    client_addr: str,
    cancels: CancelRegistry,
    on_denied: DeniedHook,
) -> ClientHello | CancelHandled:
    """Run the client's side of the handshake up to (not including) AuthenticationOk.

    Raises ``HandshakeRefused`` with the error to send; ``ProtocolError`` for garbage.
    """
    codec = leg.codec
    while True:
        message = await read_message(leg.stream, codec)
        if isinstance(message, fe.SSLRequest):
            if leg.tls:
                raise ProtocolError("a second SSLRequest inside TLS")
            await leg.stream.send_all(codec.send_ssl_response(True))
            tls_stream = trio.SSLStream(raw.to_trio_stream(), gateway.client_tls, server_side=True)
            leg.stream, leg.tls = TrioByteStream(tls_stream), True
            await tls_stream.do_handshake()
        elif isinstance(message, fe.GSSENCRequest):
            await leg.stream.send_all(codec.send_ssl_response(False))
        elif isinstance(message, fe.CancelRequest):
            await _handle_cancel(message, cancels, client_addr)
            return CancelHandled()
        else:
            assert isinstance(message, fe.StartupMessage)
            break
    startup = message
    if startup.minor_version > 0 or any(k.startswith("_pq_.") for k, _ in startup.parameters):
        # We speak 3.0: tell a newer client so, as PostgreSQL itself does.
        unrecognized = tuple(k for k, _ in startup.parameters if k.startswith("_pq_."))
        await leg.stream.send_all(codec.send(be.NegotiateProtocolVersion(0, unrecognized)))
    if startup.get("replication") not in (None, "false", "0", "off", "no"):
        raise HandshakeRefused(
            refusals.fatal(
                refusals.FEATURE_NOT_SUPPORTED, "replication connections are not supported"
            ),
            "replication requested",
        )
    if not leg.tls and not (
        gateway.config.client_tls.allow_plaintext_on_loopback and is_loopback(client_addr)
    ):
        raise HandshakeRefused(
            refusals.fatal(
                refusals.INVALID_AUTHORIZATION,
                "hoopd requires TLS on this connection; connect with sslmode=require",
            ),
            "plaintext client leg refused",
        )
    database = startup.get("database") or startup.get("user") or ""
    login = await _authenticate(gateway, leg, startup, database, on_denied)
    connection = listener.connection_named(database)
    if connection is None:
        names = ", ".join(c.name for c in listener.connections)
        raise HandshakeRefused(
            refusals.fatal(
                refusals.UNKNOWN_DATABASE,
                f'no connection named "{database}" on this listener',
                hint=f"use one of: {names} as the database name",
            ),
            f"unknown connection {database!r}",
        )
    return ClientHello(startup, login.identity, connection, login.granted_level)


async def _authenticate(
    gateway: Gateway,
    leg: ClientLeg,
    startup: fe.StartupMessage,
    database: str,
    on_denied: DeniedHook,
) -> Login:
    await leg.stream.send_all(leg.codec.send(be.Authentication(be.AUTH_CLEARTEXT)))
    message = await read_message(leg.stream, leg.codec)
    if not isinstance(message, fe.PasswordMessage):
        raise ProtocolError("expected a password message")
    started = trio.current_time()
    login = await gateway.authenticator.login(message.password, database)
    if login is not None:
        return login
    await on_denied(startup)
    # Every rejection answers after the same delay, whatever failed and however
    # long checking took, so timing says nothing about the token.
    await trio.sleep_until(started + gateway.config.auth_failure_delay_seconds)
    user = startup.get("user") or ""
    raise HandshakeRefused(
        refusals.fatal(
            refusals.INVALID_PASSWORD, f'password authentication failed for user "{user}"'
        ),
        "token rejected",
    )


async def _handle_cancel(
    request: fe.CancelRequest, cancels: CancelRegistry, client_addr: str
) -> None:
    upstream = cancels.lookup(request)
    if upstream is None:
        log.info("cancel request from %s matches no session; ignored", client_addr)
        return
    try:
        with trio.fail_after(10):
            await forward_cancel(upstream)
        log.info("cancel request from %s forwarded to its target", client_addr)
    except (OSError, trio.TooSlowError, trio.BrokenResourceError) as exc:
        log.warning("could not forward cancel request from %s: %s", client_addr, exc)
