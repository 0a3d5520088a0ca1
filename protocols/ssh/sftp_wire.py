"""SFTP (version 3, draft-ietf-secsh-filexfer-02) packets: a sans-IO codec.

An SFTP session is a byte stream inside an SSH channel: ``uint32 length``, ``byte
type``, and for every packet but INIT and VERSION a ``uint32 request-id``, then the
fields of that type. :class:`SftpCodec` frames the stream and decodes the packets
the gateway acts on (the requests that name paths and handles, and the HANDLE and
STATUS answers that bind a handle to its path); every other packet is kept as an
:class:`Opaque` one, so it can be forwarded unchanged.

Guarantees: ``feed``/``next_packet`` never raise anything but
:class:`hoopd.codec.ProtocolError` (malformed, truncated or oversized packets);
each packet comes with its exact original bytes; :meth:`Packet.encode` of a decoded
packet gives those bytes back; how the stream is split into chunks never changes
the packets.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from hoopd.codec import NEED_DATA, NeedData, ProtocolError

MAX_PACKET: Final = 256 * 1024 + 1024
"""Largest packet accepted (OpenSSH's limit is 256 KiB of payload)."""

INIT, VERSION = 1, 2
OPEN, CLOSE, READ, WRITE, LSTAT, FSTAT, SETSTAT, FSETSTAT = 3, 4, 5, 6, 7, 8, 9, 10
OPENDIR, READDIR, REMOVE, MKDIR, RMDIR, REALPATH, STAT, RENAME = 11, 12, 13, 14, 15, 16, 17, 18
READLINK, SYMLINK = 19, 20
STATUS, HANDLE, DATA, NAME, ATTRS = 101, 102, 103, 104, 105
EXTENDED, EXTENDED_REPLY = 200, 201

FX_OK, FX_PERMISSION_DENIED, FX_FAILURE, FX_OP_UNSUPPORTED = 0, 3, 4, 8

# OPEN's pflags.
FXF_READ, FXF_WRITE, FXF_APPEND, FXF_CREAT, FXF_TRUNC, FXF_EXCL = 1, 2, 4, 8, 16, 32

_U32: Final = struct.Struct("!I")
_HEAD: Final = struct.Struct("!IB")

PATH_TYPES: Final = {LSTAT, SETSTAT, OPENDIR, REMOVE, MKDIR, RMDIR, REALPATH, STAT, READLINK}
"""Requests whose first field after the id is a path."""
HANDLE_TYPES: Final = {CLOSE, READ, WRITE, FSTAT, FSETSTAT, READDIR}
"""Requests whose first field after the id is a handle."""
EXTENSION_PATHS: Final = {
    "posix-rename@openssh.com": 2,
    "hardlink@openssh.com": 2,
    "lsetstat@openssh.com": 1,
    "statvfs@openssh.com": 1,
    "expand-path@openssh.com": 1,
}
"""EXTENDED requests whose fields after the name begin with paths: how many."""


@dataclass(frozen=True, slots=True)
class Packet:
    """One packet: its type, request id (None for INIT/VERSION) and original bytes."""

    type: int
    request_id: int | None
    raw: bytes

    def encode(self) -> bytes:
        return self.raw


@dataclass(frozen=True, slots=True)
class Opaque(Packet):
    """A packet the gateway does not look into."""


@dataclass(frozen=True, slots=True)
class OpenRequest(Packet):
    path: str
    pflags: int


@dataclass(frozen=True, slots=True)
class PathRequest(Packet):
    """LSTAT, SETSTAT, OPENDIR, REMOVE, MKDIR, RMDIR, REALPATH, STAT, READLINK."""

    path: str


@dataclass(frozen=True, slots=True)
class TwoPathRequest(Packet):
    """RENAME (old, new) and SYMLINK (link path, target path)."""

    path: str
    other: str


@dataclass(frozen=True, slots=True)
class HandleRequest(Packet):
    """CLOSE, READ, WRITE, FSTAT, FSETSTAT, READDIR."""

    handle: bytes


@dataclass(frozen=True, slots=True)
class ExtendedRequest(Packet):
    """EXTENDED: the extension's name, and its leading paths when
    :data:`EXTENSION_PATHS` knows them (empty for any other extension)."""

    name: str
    paths: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class HandleReply(Packet):
    handle: bytes


@dataclass(frozen=True, slots=True)
class StatusReply(Packet):
    code: int
    message: str


def status(request_id: int, code: int, message: str) -> bytes:
    """An SSH_FXP_STATUS packet (the gateway's answer to a refused request)."""
    text = message.encode("utf-8")
    payload = (
        bytes([STATUS]) + _U32.pack(request_id) + _U32.pack(code) + _string(text) + _string(b"en")
    )
    return _U32.pack(len(payload)) + payload


def _string(data: bytes) -> bytes:
    return _U32.pack(len(data)) + data


class SftpCodec:
    """Frames one direction of an SFTP stream; see the module docstring."""

    def __init__(self, max_packet: int = MAX_PACKET) -> None:
        self._buffer = bytearray()
        self._max = max_packet
        self._error: ProtocolError | None = None

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next_packet(self) -> Packet | NeedData:
        """The next complete packet, or NEED_DATA; raises ProtocolError."""
        buffer = self._buffer
        if len(buffer) < 4:
            return NEED_DATA
        (length,) = _U32.unpack_from(buffer, 0)
        if length < 1 or length > self._max:
            raise ProtocolError(f"SFTP packet length {length} is out of bounds")
        if len(buffer) < 4 + length:
            return NEED_DATA
        raw = bytes(buffer[: 4 + length])
        del buffer[: 4 + length]
        return decode(raw)

    def packets(self) -> list[Packet]:
        """Every complete packet buffered now. A malformed packet after good ones
        raises on the next call, so the good ones are never lost with it."""
        if self._error is not None:
            raise self._error
        found: list[Packet] = []
        try:
            while not isinstance(packet := self.next_packet(), NeedData):
                found.append(packet)
        except ProtocolError as exc:
            if not found:
                raise
            self._error = exc
        return found


def decode(raw: bytes) -> Packet:
    """One whole packet (length prefix included); raises ProtocolError."""
    reader = _Reader(raw, 4)
    kind = reader.byte()
    if kind in (INIT, VERSION):
        return Opaque(kind, None, raw)
    request_id = reader.u32()
    if kind == OPEN:
        path = reader.text()
        pflags = reader.u32()
        return OpenRequest(kind, request_id, raw, path, pflags)
    if kind in PATH_TYPES:
        return PathRequest(kind, request_id, raw, reader.text())
    if kind in (RENAME, SYMLINK):
        return TwoPathRequest(kind, request_id, raw, reader.text(), reader.text())
    if kind in HANDLE_TYPES:
        return HandleRequest(kind, request_id, raw, reader.string())
    if kind == HANDLE:
        return HandleReply(kind, request_id, raw, reader.string())
    if kind == EXTENDED:
        name = reader.text()
        paths = tuple(reader.text() for _ in range(EXTENSION_PATHS.get(name, 0)))
        return ExtendedRequest(kind, request_id, raw, name, paths)
    if kind == STATUS:
        code = reader.u32()
        message = reader.text() if reader.remaining() else ""
        return StatusReply(kind, request_id, raw, code, message)
    return Opaque(kind, request_id, raw)


class _Reader:
    __slots__ = ("_data", "_offset")

    def __init__(self, data: bytes, offset: int) -> None:
        self._data, self._offset = data, offset

    def remaining(self) -> int:
        return len(self._data) - self._offset

    def byte(self) -> int:
        if self._offset >= len(self._data):
            raise ProtocolError("SFTP packet too short for its type")
        self._offset += 1
        return self._data[self._offset - 1]

    def u32(self) -> int:
        if self._offset + 4 > len(self._data):
            raise ProtocolError("SFTP packet too short for a 32-bit field")
        (value,) = _U32.unpack_from(self._data, self._offset)
        self._offset += 4
        return int(value)

    def string(self) -> bytes:
        length = self.u32()
        if self._offset + length > len(self._data):
            raise ProtocolError("SFTP string longer than its packet")
        self._offset += length
        return self._data[self._offset - length : self._offset]

    def text(self) -> str:
        # Paths are bytes on the wire; surrogateescape keeps any byte round-trippable.
        return self.string().decode("utf-8", "surrogateescape")
