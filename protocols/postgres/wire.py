"""Primitive readers and writers for PostgreSQL protocol message bodies.

Every reader takes a message body and an offset and returns ``(value, new_offset)``;
any shortfall or malformation raises :class:`ProtocolError`, never ``IndexError`` or
``struct.error``. Text is decoded as UTF-8 with ``surrogateescape`` so that bytes in
any client encoding survive a decode/encode round trip unchanged.
"""

from __future__ import annotations

import struct

from hoopd.codec import ProtocolError

INT16 = struct.Struct("!h")
UINT16 = struct.Struct("!H")
INT32 = struct.Struct("!i")
UINT32 = struct.Struct("!I")
HEADER = struct.Struct("!cI")


def read_int16(body: bytes, offset: int) -> tuple[int, int]:
    if offset + 2 > len(body):
        raise ProtocolError("message too short for a 16-bit integer")
    return INT16.unpack_from(body, offset)[0], offset + 2


def read_uint16(body: bytes, offset: int) -> tuple[int, int]:
    if offset + 2 > len(body):
        raise ProtocolError("message too short for a 16-bit integer")
    return UINT16.unpack_from(body, offset)[0], offset + 2


def read_int32(body: bytes, offset: int) -> tuple[int, int]:
    if offset + 4 > len(body):
        raise ProtocolError("message too short for a 32-bit integer")
    return INT32.unpack_from(body, offset)[0], offset + 4


def read_uint32(body: bytes, offset: int) -> tuple[int, int]:
    if offset + 4 > len(body):
        raise ProtocolError("message too short for a 32-bit integer")
    return UINT32.unpack_from(body, offset)[0], offset + 4


def read_cstring(body: bytes, offset: int) -> tuple[str, int]:
    end = body.find(b"\0", offset)
    if end < 0:
        raise ProtocolError("unterminated string in message")
    return body[offset:end].decode("utf-8", "surrogateescape"), end + 1


def read_bytes(body: bytes, offset: int, length: int) -> tuple[bytes, int]:
    if length < 0 or offset + length > len(body):
        raise ProtocolError("message too short for its declared field length")
    return body[offset : offset + length], offset + length


def read_nullable_bytes(body: bytes, offset: int) -> tuple[bytes | None, int]:
    """A length-prefixed value where length -1 means NULL."""
    length, offset = read_int32(body, offset)
    if length == -1:
        return None, offset
    return read_bytes(body, offset, length)


def read_int16_array(body: bytes, offset: int) -> tuple[tuple[int, ...], int]:
    count, offset = read_uint16(body, offset)  # counts are unsigned: up to 65535 elements
    if offset + 2 * count > len(body):
        raise ProtocolError("bad array length in message")
    values = struct.unpack_from(f"!{count}h", body, offset)
    return values, offset + 2 * count


def read_uint32_array(body: bytes, offset: int) -> tuple[tuple[int, ...], int]:
    count, offset = read_uint16(body, offset)
    if offset + 4 * count > len(body):
        raise ProtocolError("bad array length in message")
    values = struct.unpack_from(f"!{count}I", body, offset)
    return values, offset + 4 * count


def expect_end(body: bytes, offset: int) -> None:
    if offset != len(body):
        raise ProtocolError("unexpected trailing bytes in message")


def cstring(text: str) -> bytes:
    encoded = text.encode("utf-8", "surrogateescape")
    if b"\0" in encoded:
        raise ValueError("a protocol string cannot contain a NUL byte")
    return encoded + b"\0"


def nullable_bytes(value: bytes | None) -> bytes:
    if value is None:
        return INT32.pack(-1)
    return INT32.pack(len(value)) + value


def int16_array(values: tuple[int, ...]) -> bytes:
    return UINT16.pack(len(values)) + struct.pack(f"!{len(values)}h", *values)


def uint32_array(values: tuple[int, ...]) -> bytes:
    return UINT16.pack(len(values)) + struct.pack(f"!{len(values)}I", *values)


def frame(tag: bytes, body: bytes) -> bytes:
    """A typed message: one tag byte, a length that counts itself, the body."""
    return tag + UINT32.pack(len(body) + 4) + body


def untyped_frame(body: bytes) -> bytes:
    """A startup-phase message: a length that counts itself, the body."""
    return UINT32.pack(len(body) + 4) + body
