"""Messages a PostgreSQL client (frontend) sends, as frozen dataclasses.

Each class decodes from a message body (``decode``) and encodes back to the full
wire bytes (``encode``); for every valid body, ``decode(body).encode()`` reproduces
the original bytes exactly. Startup-phase messages carry no tag byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from hoopd.codec import ProtocolError

from . import wire
from .bidirectional import EmptyBody

SSL_REQUEST_CODE = 80877103
GSSENC_REQUEST_CODE = 80877104
CANCEL_REQUEST_CODE = 80877102
PROTOCOL_3 = 3


@dataclass(frozen=True, slots=True)
class SSLRequest:
    def encode(self) -> bytes:
        return wire.untyped_frame(wire.UINT32.pack(SSL_REQUEST_CODE))


@dataclass(frozen=True, slots=True)
class GSSENCRequest:
    def encode(self) -> bytes:
        return wire.untyped_frame(wire.UINT32.pack(GSSENC_REQUEST_CODE))


@dataclass(frozen=True, slots=True)
class CancelRequest:
    """Sent on a fresh connection to cancel the query running in another one.

    ``secret`` is the raw secret key bytes (4 bytes in protocol 3.0, up to 256 in 3.2).
    """

    process_id: int
    secret: bytes

    def encode(self) -> bytes:
        return wire.untyped_frame(
            wire.UINT32.pack(CANCEL_REQUEST_CODE) + wire.UINT32.pack(self.process_id) + self.secret
        )


@dataclass(frozen=True, slots=True)
class StartupMessage:
    """``parameters`` keeps the client's order (user, database, options, ...)."""

    parameters: tuple[tuple[str, str], ...]
    minor_version: int = 0

    def get(self, name: str) -> str | None:
        for key, value in self.parameters:
            if key == name:
                return value
        return None

    def encode(self) -> bytes:
        body = [wire.UINT16.pack(PROTOCOL_3), wire.UINT16.pack(self.minor_version)]
        for key, value in self.parameters:
            body.append(wire.cstring(key))
            body.append(wire.cstring(value))
        body.append(b"\0")
        return wire.untyped_frame(b"".join(body))


def decode_startup(body: bytes) -> SSLRequest | GSSENCRequest | CancelRequest | StartupMessage:
    """Decode an untyped startup-phase message body (everything after the length)."""
    code, offset = wire.read_uint32(body, 0)
    if code == SSL_REQUEST_CODE:
        wire.expect_end(body, offset)
        return SSLRequest()
    if code == GSSENC_REQUEST_CODE:
        wire.expect_end(body, offset)
        return GSSENCRequest()
    if code == CANCEL_REQUEST_CODE:
        process_id, offset = wire.read_uint32(body, offset)
        secret = body[offset:]
        if not 4 <= len(secret) <= 256:
            raise ProtocolError("invalid cancel request")
        return CancelRequest(process_id, secret)
    major, minor = code >> 16, code & 0xFFFF
    if major != PROTOCOL_3:
        raise ProtocolError(
            f"unsupported frontend protocol {major}.{minor}: server supports 3.0 to 3.0", "0A000"
        )
    parameters: list[tuple[str, str]] = []
    while True:
        if offset >= len(body):
            raise ProtocolError("startup packet is not terminated")
        if body[offset] == 0:
            wire.expect_end(body, offset + 1)
            break
        key, offset = wire.read_cstring(body, offset)
        value, offset = wire.read_cstring(body, offset)
        parameters.append((key, value))
    return StartupMessage(tuple(parameters), minor)


@dataclass(frozen=True, slots=True)
class PasswordMessage:
    """The ``p`` message: a cleartext password, or SASL/GSS data, by context."""

    TAG: ClassVar[bytes] = b"p"
    data: bytes

    @property
    def password(self) -> str:
        """The cleartext password, without its NUL terminator."""
        return self.data.rstrip(b"\0").decode("utf-8", "surrogateescape")

    @classmethod
    def decode(cls, body: bytes) -> PasswordMessage:
        return cls(body)

    def encode(self) -> bytes:
        return wire.frame(self.TAG, self.data)


@dataclass(frozen=True, slots=True)
class Query:
    TAG: ClassVar[bytes] = b"Q"
    sql: str

    @classmethod
    def decode(cls, body: bytes) -> Query:
        sql, offset = wire.read_cstring(body, 0)
        wire.expect_end(body, offset)
        return cls(sql)

    def encode(self) -> bytes:
        return wire.frame(self.TAG, wire.cstring(self.sql))


@dataclass(frozen=True, slots=True)
class Parse:
    TAG: ClassVar[bytes] = b"P"
    statement: str
    sql: str
    param_types: tuple[int, ...] = ()

    @classmethod
    def decode(cls, body: bytes) -> Parse:
        statement, offset = wire.read_cstring(body, 0)
        sql, offset = wire.read_cstring(body, offset)
        param_types, offset = wire.read_uint32_array(body, offset)
        wire.expect_end(body, offset)
        return cls(statement, sql, param_types)

    def encode(self) -> bytes:
        return wire.frame(
            self.TAG,
            wire.cstring(self.statement)
            + wire.cstring(self.sql)
            + wire.uint32_array(self.param_types),
        )


@dataclass(frozen=True, slots=True)
class Bind:
    """``params`` are raw values (None for NULL); ``param_formats`` 0 = text, 1 = binary,
    with PostgreSQL's rules: none means all text, one applies to all."""

    TAG: ClassVar[bytes] = b"B"
    portal: str
    statement: str
    param_formats: tuple[int, ...]
    params: tuple[bytes | None, ...]
    result_formats: tuple[int, ...]

    def param_format(self, index: int) -> int:
        if not self.param_formats:
            return 0
        if len(self.param_formats) == 1:
            return self.param_formats[0]
        return self.param_formats[index]

    def decoded_params(self) -> tuple[str | bytes | None, ...]:
        """Text-format values as str, binary-format values as bytes, NULL as None."""
        formats = self.param_formats
        if not formats or formats == (0,):  # all text: the common case, without indexing
            return tuple(
                None if value is None else value.decode("utf-8", "surrogateescape")
                for value in self.params
            )
        return tuple(
            value.decode("utf-8", "surrogateescape")
            if value is not None and self.param_format(i) == 0
            else value
            for i, value in enumerate(self.params)
        )

    @classmethod
    def decode(cls, body: bytes) -> Bind:
        portal, offset = wire.read_cstring(body, 0)
        statement, offset = wire.read_cstring(body, offset)
        param_formats, offset = wire.read_int16_array(body, offset)
        count, offset = wire.read_uint16(body, offset)  # unsigned: up to 65535 parameters
        if len(param_formats) > 1 and len(param_formats) != count:
            raise ProtocolError("Bind has a parameter format count that matches no parameters")
        params = []
        for _ in range(count):
            value, offset = wire.read_nullable_bytes(body, offset)
            params.append(value)
        result_formats, offset = wire.read_int16_array(body, offset)
        wire.expect_end(body, offset)
        return cls(portal, statement, param_formats, tuple(params), result_formats)

    def encode(self) -> bytes:
        parts = [
            wire.cstring(self.portal),
            wire.cstring(self.statement),
            wire.int16_array(self.param_formats),
            wire.UINT16.pack(len(self.params)),
        ]
        parts.extend(wire.nullable_bytes(value) for value in self.params)
        parts.append(wire.int16_array(self.result_formats))
        return wire.frame(self.TAG, b"".join(parts))


@dataclass(frozen=True, slots=True)
class Execute:
    TAG: ClassVar[bytes] = b"E"
    portal: str
    max_rows: int = 0

    @classmethod
    def decode(cls, body: bytes) -> Execute:
        portal, offset = wire.read_cstring(body, 0)
        max_rows, offset = wire.read_int32(body, offset)
        wire.expect_end(body, offset)
        return cls(portal, max_rows)

    def encode(self) -> bytes:
        return wire.frame(self.TAG, wire.cstring(self.portal) + wire.INT32.pack(self.max_rows))


def _read_target_kind(body: bytes, what: str) -> tuple[str, str]:
    if not body or body[0:1] not in (b"S", b"P"):
        raise ProtocolError(f"{what} must name a statement (S) or a portal (P)")
    name, offset = wire.read_cstring(body, 1)
    wire.expect_end(body, offset)
    return body[0:1].decode(), name


@dataclass(frozen=True, slots=True)
class Describe:
    TAG: ClassVar[bytes] = b"D"
    kind: str  # "S" statement or "P" portal
    name: str

    @classmethod
    def decode(cls, body: bytes) -> Describe:
        return cls(*_read_target_kind(body, "Describe"))

    def encode(self) -> bytes:
        return wire.frame(self.TAG, self.kind.encode() + wire.cstring(self.name))


@dataclass(frozen=True, slots=True)
class Close:
    TAG: ClassVar[bytes] = b"C"
    kind: str  # "S" statement or "P" portal
    name: str

    @classmethod
    def decode(cls, body: bytes) -> Close:
        return cls(*_read_target_kind(body, "Close"))

    def encode(self) -> bytes:
        return wire.frame(self.TAG, self.kind.encode() + wire.cstring(self.name))


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """The legacy fast-path call of a function by OID (used by large-object APIs)."""

    TAG: ClassVar[bytes] = b"F"
    function_oid: int
    arg_formats: tuple[int, ...]
    args: tuple[bytes | None, ...]
    result_format: int

    @classmethod
    def decode(cls, body: bytes) -> FunctionCall:
        oid, offset = wire.read_uint32(body, 0)
        arg_formats, offset = wire.read_int16_array(body, offset)
        count, offset = wire.read_uint16(body, offset)
        args = []
        for _ in range(count):
            value, offset = wire.read_nullable_bytes(body, offset)
            args.append(value)
        result_format, offset = wire.read_int16(body, offset)
        wire.expect_end(body, offset)
        return cls(oid, arg_formats, tuple(args), result_format)

    def encode(self) -> bytes:
        parts = [
            wire.UINT32.pack(self.function_oid),
            wire.int16_array(self.arg_formats),
            wire.UINT16.pack(len(self.args)),
        ]
        parts.extend(wire.nullable_bytes(value) for value in self.args)
        parts.append(wire.INT16.pack(self.result_format))
        return wire.frame(self.TAG, b"".join(parts))


@dataclass(frozen=True, slots=True)
class CopyFail:
    TAG: ClassVar[bytes] = b"f"
    message: str

    @classmethod
    def decode(cls, body: bytes) -> CopyFail:
        message, offset = wire.read_cstring(body, 0)
        wire.expect_end(body, offset)
        return cls(message)

    def encode(self) -> bytes:
        return wire.frame(self.TAG, wire.cstring(self.message))


@dataclass(frozen=True, slots=True)
class Sync(EmptyBody):
    TAG: ClassVar[bytes] = b"S"


@dataclass(frozen=True, slots=True)
class Flush(EmptyBody):
    TAG: ClassVar[bytes] = b"H"


@dataclass(frozen=True, slots=True)
class Terminate(EmptyBody):
    TAG: ClassVar[bytes] = b"X"
