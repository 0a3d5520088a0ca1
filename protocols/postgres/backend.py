"""Messages a PostgreSQL server (backend) sends, as frozen dataclasses.

As with the frontend messages, ``decode(body).encode()`` reproduces valid input
byte for byte. Row data (``DataRow``) keeps its raw body and decodes columns only
when asked, because large results pass through the gateway untouched.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Final, NamedTuple

from hoopd.codec import ProtocolError

from . import wire
from .bidirectional import EmptyBody

AUTH_OK = 0
AUTH_CLEARTEXT = 3
AUTH_MD5 = 5
AUTH_SASL = 10
AUTH_SASL_CONTINUE = 11
AUTH_SASL_FINAL = 12


@dataclass(frozen=True, slots=True)
class Authentication:
    """Any ``R`` message: ``code`` says which (0 ok, 3 cleartext, 5 MD5 with a 4-byte salt
    in ``payload``, 10 SASL with mechanism names, 11/12 SASL continue/final data)."""

    TAG: ClassVar[bytes] = b"R"
    code: int
    payload: bytes = b""

    @classmethod
    def decode(cls, body: bytes) -> Authentication:
        code, offset = wire.read_int32(body, 0)
        return cls(code, body[offset:])

    def sasl_mechanisms(self) -> list[str]:
        names = self.payload.split(b"\0")
        return [name.decode("utf-8", "surrogateescape") for name in names if name]

    def encode(self) -> bytes:
        return wire.frame(self.TAG, wire.INT32.pack(self.code) + self.payload)


@dataclass(frozen=True, slots=True)
class BackendKeyData:
    TAG: ClassVar[bytes] = b"K"
    process_id: int
    secret: bytes

    @classmethod
    def decode(cls, body: bytes) -> BackendKeyData:
        process_id, offset = wire.read_uint32(body, 0)
        secret = body[offset:]
        if not 4 <= len(secret) <= 256:
            raise ProtocolError("invalid BackendKeyData")
        return cls(process_id, secret)

    def encode(self) -> bytes:
        return wire.frame(self.TAG, wire.UINT32.pack(self.process_id) + self.secret)


@dataclass(frozen=True, slots=True)
class ParameterStatus:
    TAG: ClassVar[bytes] = b"S"
    name: str
    value: str

    @classmethod
    def decode(cls, body: bytes) -> ParameterStatus:
        name, offset = wire.read_cstring(body, 0)
        value, offset = wire.read_cstring(body, offset)
        wire.expect_end(body, offset)
        return cls(name, value)

    def encode(self) -> bytes:
        return wire.frame(self.TAG, wire.cstring(self.name) + wire.cstring(self.value))


@dataclass(frozen=True, slots=True)
class ReadyForQuery:
    TAG: ClassVar[bytes] = b"Z"
    status: str  # "I" idle, "T" in a transaction, "E" in a failed transaction

    @classmethod
    def decode(cls, body: bytes) -> ReadyForQuery:
        # One shared instance per status: this message ends every round trip.
        ready = _READY_BY_STATUS.get(body)
        if ready is None:
            raise ProtocolError("invalid ReadyForQuery status")
        return ready

    def encode(self) -> bytes:
        return wire.frame(self.TAG, self.status.encode())


_INT16_PACK = wire.INT16.pack
_INT32_PACK = wire.INT32.pack
_INT16_UNPACK = wire.INT16.unpack_from
_INT32_UNPACK = wire.INT32.unpack_from
_NULL_LENGTH = wire.INT32.pack(-1)

_READY_BY_STATUS: Final = {status: ReadyForQuery(status.decode()) for status in (b"I", b"T", b"E")}


class FieldDescription(NamedTuple):
    """One column of a RowDescription (a named tuple: built for every result set)."""

    name: str
    table_oid: int
    column_number: int
    type_oid: int
    type_size: int
    type_modifier: int
    format_code: int


_FIELD_TAIL = struct.Struct("!IhIhih")


@dataclass(frozen=True, slots=True)
class RowDescription:
    TAG: ClassVar[bytes] = b"T"
    fields: tuple[FieldDescription, ...]

    @classmethod
    def decode(cls, body: bytes) -> RowDescription:
        count, offset = wire.read_int16(body, 0)
        if count < 0:
            raise ProtocolError("negative field count in RowDescription")
        fields = []
        for _ in range(count):
            name, offset = wire.read_cstring(body, offset)
            if offset + _FIELD_TAIL.size > len(body):
                raise ProtocolError("RowDescription too short")
            fields.append(FieldDescription(name, *_FIELD_TAIL.unpack_from(body, offset)))
            offset += _FIELD_TAIL.size
        wire.expect_end(body, offset)
        return cls(tuple(fields))

    def encode(self) -> bytes:
        parts = [wire.INT16.pack(len(self.fields))]
        for field in self.fields:
            parts.append(wire.cstring(field.name))
            parts.append(
                _FIELD_TAIL.pack(
                    field.table_oid,
                    field.column_number,
                    field.type_oid,
                    field.type_size,
                    field.type_modifier,
                    field.format_code,
                )
            )
        return wire.frame(self.TAG, b"".join(parts))


@dataclass(frozen=True, slots=True)
class DataRow:
    """One result row; ``body`` is kept raw, ``values()`` decodes it on demand."""

    TAG: ClassVar[bytes] = b"D"
    body: bytes

    @classmethod
    def decode(cls, body: bytes) -> DataRow:
        return cls(body)

    @classmethod
    def from_values(cls, values: Sequence[bytes | None]) -> DataRow:
        parts = [_INT16_PACK(len(values))]
        for value in values:
            if value is None:
                parts.append(_NULL_LENGTH)
            else:
                parts.append(_INT32_PACK(len(value)))
                parts.append(value)
        return cls(b"".join(parts))

    def values(self) -> tuple[bytes | None, ...]:
        # Inlined readers: this runs for every row of a result under a masking rule.
        body = self.body
        size = len(body)
        if size < 2:
            raise ProtocolError("message too short for a 16-bit integer")
        count = _INT16_UNPACK(body, 0)[0]
        if count < 0:
            raise ProtocolError("negative column count in DataRow")
        values: list[bytes | None] = []
        offset = 2
        for _ in range(count):
            if offset + 4 > size:
                raise ProtocolError("message too short for a 32-bit integer")
            length = _INT32_UNPACK(body, offset)[0]
            offset += 4
            if length == -1:
                values.append(None)
                continue
            end = offset + length
            if length < 0 or end > size:
                raise ProtocolError("message too short for its declared field length")
            values.append(body[offset:end])
            offset = end
        if offset != size:
            raise ProtocolError("unexpected trailing bytes in message")
        return tuple(values)

    def encode(self) -> bytes:
        return wire.frame(self.TAG, self.body)


@dataclass(frozen=True, slots=True)
class CommandComplete:
    TAG: ClassVar[bytes] = b"C"
    tag: str

    @classmethod
    def decode(cls, body: bytes) -> CommandComplete:
        tag, offset = wire.read_cstring(body, 0)
        wire.expect_end(body, offset)
        return cls(tag)

    def row_count(self) -> int | None:
        """The trailing number of tags like ``SELECT 5`` or ``INSERT 0 3``, if any."""
        last = self.tag.rsplit(" ", 1)[-1]
        # A count is the ASCII digits of a 64-bit number: isdigit() alone also accepts
        # characters such as "²" that int() rejects, and int() refuses over 4300 digits.
        if " " in self.tag and last.isascii() and last.isdigit() and len(last) <= 20:
            return int(last)
        return None

    def encode(self) -> bytes:
        return wire.frame(self.TAG, wire.cstring(self.tag))


# Error and notice field codes, by the names the docs and our recordings use.
FIELD_NAMES = {
    "S": "severity",
    "V": "severity_nonlocalized",
    "C": "code",
    "M": "message",
    "D": "detail",
    "H": "hint",
    "P": "position",
    "p": "internal_position",
    "q": "internal_query",
    "W": "where",
    "s": "schema",
    "t": "table",
    "c": "column",
    "d": "data_type",
    "n": "constraint",
    "F": "file",
    "L": "line",
    "R": "routine",
}


def _decode_fields(body: bytes) -> tuple[tuple[str, str], ...]:
    fields: list[tuple[str, str]] = []
    offset = 0
    while True:
        if offset >= len(body):
            raise ProtocolError("error or notice fields are not terminated")
        if body[offset] == 0:
            wire.expect_end(body, offset + 1)
            return tuple(fields)
        code = chr(body[offset])
        value, offset = wire.read_cstring(body, offset + 1)
        fields.append((code, value))


def _named(fields: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """Error or notice fields keyed by their names (``code``, ``message``, ...)."""
    return {FIELD_NAMES.get(code, code): value for code, value in fields}


def _encode_fields(fields: tuple[tuple[str, str], ...]) -> bytes:
    return b"".join(code.encode("latin-1") + wire.cstring(value) for code, value in fields) + b"\0"


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    """``fields`` are (code letter, value) pairs in wire order; ``named()`` gives a dict."""

    TAG: ClassVar[bytes] = b"E"
    fields: tuple[tuple[str, str], ...]

    @classmethod
    def decode(cls, body: bytes) -> ErrorResponse:
        return cls(_decode_fields(body))

    @classmethod
    def build(cls, code: str, message: str, severity: str = "ERROR", **extra: str) -> ErrorResponse:
        fields = [("S", severity), ("V", severity), ("C", code), ("M", message)]
        letters = {name: letter for letter, name in FIELD_NAMES.items()}
        fields.extend((letters[name], value) for name, value in extra.items())
        return cls(tuple(fields))

    def named(self) -> dict[str, str]:
        return _named(self.fields)

    def encode(self) -> bytes:
        return wire.frame(self.TAG, _encode_fields(self.fields))


@dataclass(frozen=True, slots=True)
class NoticeResponse:
    TAG: ClassVar[bytes] = b"N"
    fields: tuple[tuple[str, str], ...]

    @classmethod
    def build(
        cls, code: str, message: str, severity: str = "NOTICE", **extra: str
    ) -> NoticeResponse:
        return cls(ErrorResponse.build(code, message, severity, **extra).fields)

    @classmethod
    def decode(cls, body: bytes) -> NoticeResponse:
        return cls(_decode_fields(body))

    def named(self) -> dict[str, str]:
        return _named(self.fields)

    def encode(self) -> bytes:
        return wire.frame(self.TAG, _encode_fields(self.fields))


@dataclass(frozen=True, slots=True)
class NotificationResponse:
    TAG: ClassVar[bytes] = b"A"
    process_id: int
    channel: str
    payload: str

    @classmethod
    def decode(cls, body: bytes) -> NotificationResponse:
        process_id, offset = wire.read_uint32(body, 0)
        channel, offset = wire.read_cstring(body, offset)
        payload, offset = wire.read_cstring(body, offset)
        wire.expect_end(body, offset)
        return cls(process_id, channel, payload)

    def encode(self) -> bytes:
        return wire.frame(
            self.TAG,
            wire.UINT32.pack(self.process_id)
            + wire.cstring(self.channel)
            + wire.cstring(self.payload),
        )


@dataclass(frozen=True, slots=True)
class ParameterDescription:
    TAG: ClassVar[bytes] = b"t"
    type_oids: tuple[int, ...]

    @classmethod
    def decode(cls, body: bytes) -> ParameterDescription:
        oids, offset = wire.read_uint32_array(body, 0)
        wire.expect_end(body, offset)
        return cls(oids)

    def encode(self) -> bytes:
        return wire.frame(self.TAG, wire.uint32_array(self.type_oids))


@dataclass(frozen=True, slots=True)
class CopyResponse:
    """CopyInResponse (``G``), CopyOutResponse (``H``) or CopyBothResponse (``W``)."""

    tag: bytes
    overall_format: int
    column_formats: tuple[int, ...]

    @classmethod
    def decode_tagged(cls, tag: bytes, body: bytes) -> CopyResponse:
        if len(body) < 1:
            raise ProtocolError("copy response too short")
        column_formats, offset = wire.read_int16_array(body, 1)
        wire.expect_end(body, offset)
        return cls(tag, body[0], column_formats)

    def encode(self) -> bytes:
        return wire.frame(
            self.tag, bytes([self.overall_format]) + wire.int16_array(self.column_formats)
        )


@dataclass(frozen=True, slots=True)
class FunctionCallResponse:
    TAG: ClassVar[bytes] = b"V"
    value: bytes | None

    @classmethod
    def decode(cls, body: bytes) -> FunctionCallResponse:
        value, offset = wire.read_nullable_bytes(body, 0)
        wire.expect_end(body, offset)
        return cls(value)

    def encode(self) -> bytes:
        return wire.frame(self.TAG, wire.nullable_bytes(self.value))


@dataclass(frozen=True, slots=True)
class NegotiateProtocolVersion:
    TAG: ClassVar[bytes] = b"v"
    newest_minor: int
    unrecognized_options: tuple[str, ...]

    @classmethod
    def decode(cls, body: bytes) -> NegotiateProtocolVersion:
        minor, offset = wire.read_int32(body, 0)
        count, offset = wire.read_int32(body, offset)
        if count < 0:
            raise ProtocolError("negative option count")
        options = []
        for _ in range(count):
            option, offset = wire.read_cstring(body, offset)
            options.append(option)
        wire.expect_end(body, offset)
        return cls(minor, tuple(options))

    def encode(self) -> bytes:
        parts = [
            wire.INT32.pack(self.newest_minor),
            wire.INT32.pack(len(self.unrecognized_options)),
        ]
        parts.extend(wire.cstring(option) for option in self.unrecognized_options)
        return wire.frame(self.TAG, b"".join(parts))


@dataclass(frozen=True, slots=True)
class EmptyQueryResponse(EmptyBody):
    TAG: ClassVar[bytes] = b"I"


@dataclass(frozen=True, slots=True)
class ParseComplete(EmptyBody):
    TAG: ClassVar[bytes] = b"1"


@dataclass(frozen=True, slots=True)
class BindComplete(EmptyBody):
    TAG: ClassVar[bytes] = b"2"


@dataclass(frozen=True, slots=True)
class CloseComplete(EmptyBody):
    TAG: ClassVar[bytes] = b"3"


@dataclass(frozen=True, slots=True)
class NoData(EmptyBody):
    TAG: ClassVar[bytes] = b"n"


@dataclass(frozen=True, slots=True)
class PortalSuspended(EmptyBody):
    TAG: ClassVar[bytes] = b"s"
