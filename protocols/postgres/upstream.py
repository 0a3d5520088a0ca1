"""Dialing a target PostgreSQL with the gateway's own credentials.

The client never sees the upstream secret and its own token is never sent
upstream: the startup packet is rebuilt from the connection's configuration plus
the client's harmless session parameters (application name, encoding, ...).
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass, field

import trio

from hoopd.codec import ProtocolError
from hoopd.config import ConfigError, TargetConfig
from hoopd.relay import ByteStream, SocketByteStream, TrioByteStream, connect_tcp

from . import backend as be
from . import frontend as fe
from .codec import PostgresCodec, Role, SSLResponse
from .io import read_message
from .scram import MECHANISM, ScramClient, md5_password

log = logging.getLogger("hoopd.postgres")

# Startup parameters a client may pass through to the target. Everything else
# (user, database, replication, options that could change the session's role)
# is decided by the gateway.
PASSTHROUGH_PARAMETERS = frozenset(
    {
        "application_name",
        "client_encoding",
        "DateStyle",
        "datestyle",
        "TimeZone",
        "timezone",
        "extra_float_digits",
        "IntervalStyle",
        "intervalstyle",
        "search_path",
        "statement_timeout",
        "lock_timeout",
        "idle_in_transaction_session_timeout",
    }
)


class TargetUnavailable(Exception):
    """The target could not be reached or refused the gateway; ``message`` is client-safe."""

    def __init__(self, message: str, code: str = "08001") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(slots=True)
class Upstream:
    """An authenticated connection to a target, ready for queries."""

    stream: ByteStream
    codec: PostgresCodec
    host: str
    port: int
    process_id: int = 0
    secret: bytes = b""
    parameters: list[be.ParameterStatus] = field(default_factory=list)
    notices: list[be.NoticeResponse] = field(default_factory=list)


async def connect_upstream(
    connection_name: str,
    target: TargetConfig,
    client_parameters: tuple[tuple[str, str], ...],
    tls_context: ssl.SSLContext | None,
    max_message_size: int,
) -> Upstream:
    """Connect, negotiate TLS as configured, start up and authenticate.

    Raises ``TargetUnavailable`` with a message naming the connection (never the
    secret); the caller bounds the whole call with its connect deadline.
    """
    try:
        raw = await connect_tcp(target.host, target.port)
    except OSError as exc:
        raise TargetUnavailable(
            f'could not connect to target of connection "{connection_name}": {exc.strerror or exc}'
        ) from exc
    codec = PostgresCodec(Role.CLIENT, max_message_size)
    stream: ByteStream = raw
    try:
        stream = await _negotiate_tls(raw, codec, connection_name, target, tls_context)
        upstream = Upstream(stream, codec, target.host, target.port)
        parameters = [("user", target.user), ("database", target.database)]
        parameters += [(k, v) for k, v in client_parameters if k in PASSTHROUGH_PARAMETERS]
        await stream.send_all(codec.send(fe.StartupMessage(tuple(parameters))))
        await _authenticate(upstream, connection_name, target)
        await _await_ready(upstream, connection_name)
        return upstream
    except TargetUnavailable:
        await stream.aclose()
        raise
    except (ProtocolError, trio.BrokenResourceError, OSError, ssl.SSLError) as exc:
        await stream.aclose()
        raise TargetUnavailable(
            f'target of connection "{connection_name}" failed during the handshake: {exc}'
        ) from exc
    except BaseException:
        await stream.aclose()
        raise


async def _negotiate_tls(
    stream: SocketByteStream,
    codec: PostgresCodec,
    connection_name: str,
    target: TargetConfig,
    tls_context: ssl.SSLContext | None,
) -> ByteStream:
    if tls_context is None:
        return stream
    await stream.send_all(codec.send(fe.SSLRequest()))
    answer = await read_message(stream, codec)
    if not isinstance(answer, SSLResponse) or not answer.accepted:
        raise TargetUnavailable(
            f'target of connection "{connection_name}" does not accept TLS, '
            f'which the connection requires (tls = "{target.tls}")'
        )
    tls_stream = trio.SSLStream(
        stream.to_trio_stream(),
        tls_context,
        server_hostname=target.server_name or target.host,
        https_compatible=False,
    )
    try:
        await tls_stream.do_handshake()
    except (trio.BrokenResourceError, ssl.SSLError) as exc:
        await trio.aclose_forcefully(tls_stream)
        raise TargetUnavailable(
            f'TLS to the target of connection "{connection_name}" failed: {exc.__cause__ or exc}'
        ) from exc
    return TrioByteStream(tls_stream)


async def _authenticate(upstream: Upstream, connection_name: str, target: TargetConfig) -> None:
    stream, codec = upstream.stream, upstream.codec
    scram: ScramClient | None = None
    while True:
        message = await read_message(stream, codec)
        if isinstance(message, be.ErrorResponse):
            fields = message.named()
            raise TargetUnavailable(
                f'target of connection "{connection_name}" refused the gateway: '
                f"{fields.get('message', 'unknown error')}",
                "08004",
            )
        if isinstance(message, be.NegotiateProtocolVersion):
            continue
        if not isinstance(message, be.Authentication):
            raise ProtocolError(f"unexpected {type(message).__name__} during authentication")
        if message.code == be.AUTH_OK:
            return
        try:
            secret = target.secret.resolve()
        except ConfigError as exc:
            log.error("%s", exc)
            raise TargetUnavailable(
                f'the gateway cannot read the credentials of connection "{connection_name}"'
            ) from exc
        if message.code == be.AUTH_CLEARTEXT:
            reply = secret.encode() + b"\0"
        elif message.code == be.AUTH_MD5:
            reply = md5_password(target.user, secret, message.payload[:4])
        elif message.code == be.AUTH_SASL:
            if MECHANISM not in message.sasl_mechanisms():
                raise TargetUnavailable(
                    f'target of connection "{connection_name}" offers no supported '
                    f"SASL mechanism ({', '.join(message.sasl_mechanisms())})"
                )
            scram = ScramClient(secret)
            first = scram.first_message()
            reply = MECHANISM.encode() + b"\0" + len(first).to_bytes(4, "big") + first
        elif message.code == be.AUTH_SASL_CONTINUE and scram is not None:
            reply = scram.final_message(message.payload)
        elif message.code == be.AUTH_SASL_FINAL and scram is not None:
            scram.verify_server(message.payload)
            continue
        else:
            raise TargetUnavailable(
                f'target of connection "{connection_name}" asks for an unsupported '
                f"authentication method ({message.code})"
            )
        await stream.send_all(codec.send(fe.PasswordMessage(reply)))


async def _await_ready(upstream: Upstream, connection_name: str) -> None:
    while True:
        message = await read_message(upstream.stream, upstream.codec)
        if isinstance(message, be.ParameterStatus):
            upstream.parameters.append(message)
        elif isinstance(message, be.BackendKeyData):
            upstream.process_id, upstream.secret = message.process_id, message.secret
        elif isinstance(message, be.NoticeResponse):
            upstream.notices.append(message)
        elif isinstance(message, be.ReadyForQuery):
            return
        elif isinstance(message, be.ErrorResponse):
            raise TargetUnavailable(
                f'target of connection "{connection_name}" refused the session: '
                f"{message.named().get('message', 'unknown error')}",
                message.named().get("code", "08004"),
            )
        else:
            raise ProtocolError(f"unexpected {type(message).__name__} during startup")
