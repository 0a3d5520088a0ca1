"""The journal's frame format: encoding, decoding and the hash that chains records.

Every record is one frame (docs/recording.md has the byte-level description)::

    frame   = length payload           length: 4-byte big-endian size of payload
    payload = 0x92 record 0xc4 0x20 H  a msgpack array [record, H]
    record  = msgpack map, keys in this order:
              "s" session id (str)     "n" seq (int, 0, 1, 2, ... per session)
              "t" unix time (float64)  "k" kind (str)      "b" body (map)
              "p" hash of the session's previous record (bin 32; zeros for n=0)
              "j" hash of the previous frame in the journal (bin 32; zeros at the start)
    H       = SHA-256 of the exact bytes of ``record``

Hashing the bytes as written (rather than a re-encoding of decoded values) means a
verifier never depends on msgpack producing the same bytes twice, and any changed
byte inside ``record`` changes H.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import msgpack

HASH_SIZE: Final = 32
ZERO_HASH: Final = bytes(HASH_SIZE)
LENGTH = struct.Struct(">I")
#: The length prefix and the array header that opens every payload, packed together.
_FRAME_HEAD = struct.Struct(">IB")
#: What ends every payload before the hash: msgpack "bin 8" header for 32 bytes.
HASH_HEADER: Final = b"\xc4\x20"
TRAILER_SIZE: Final = len(HASH_HEADER) + HASH_SIZE
#: Every payload starts with these bytes: array of 2, map of 7, key "s".
PAYLOAD_MAGIC: Final = b"\x92\x87\xa1s"
#: A body's ``data`` of at least this many bytes (a chunk of a stream) is written from
#: the caller's buffer rather than copied into the frame (see :meth:`FrameEncoder.encode_parts`).
SPLICE_MIN_BYTES: Final = 8192
#: msgpack headers of "bin 16" and "bin 32" values.
_BIN16 = struct.Struct(">BH")
_BIN32 = struct.Struct(">BI")
#: Largest payload a writer produces and a reader accepts (1 GiB: PostgreSQL's own
#: limit on a query string); a bigger length prefix is corruption, not a record.
MAX_PAYLOAD: Final = 1 << 30
#: Deepest nesting of maps and lists a readable body may have. hoopd's own bodies
#: nest a few levels; rendering one (text, JSON) recurses once or twice per level,
#: so a body a few hundred levels deep would exhaust Python's recursion limit.
MAX_BODY_DEPTH: Final = 64


class FrameError(ValueError):
    """A payload that is not a well-formed record."""


@dataclass(frozen=True, slots=True)
class Record:
    """One decoded record.

    ``hash`` is the hash stored in the frame; ``hash_ok`` says whether it matches
    the record's bytes (False means the record was changed after it was written).
    ``segment`` and ``offset`` locate the frame in the journal.
    """

    session_id: str
    seq: int
    time: float
    kind: str
    body: Mapping[str, Any]
    prev_hash: bytes
    journal_prev: bytes
    hash: bytes
    hash_ok: bool = True
    segment: int = 0
    offset: int = 0


class FrameEncoder:
    """Turns records into frames. Not thread-safe (it reuses one msgpack packer)."""

    __slots__ = ("_pack",)

    def __init__(self) -> None:
        self._pack = msgpack.Packer(use_bin_type=True).pack

    def encode(
        self,
        session_id: str,
        seq: int,
        when: float,
        kind: str,
        body: Mapping[str, Any],
        prev_hash: bytes,
        journal_prev: bytes,
    ) -> tuple[bytes, bytes]:
        """Return ``(frame, hash)``.

        Raises :class:`FrameError` if the body holds something msgpack cannot
        encode (or a string that is not valid Unicode) or the record is too large.
        """
        parts, digest = self.encode_parts(
            session_id, seq, when, kind, body, prev_hash, journal_prev
        )
        return b"".join(parts), digest

    def encode_parts(
        self,
        session_id: str,
        seq: int,
        when: float,
        kind: str,
        body: Mapping[str, Any],
        prev_hash: bytes,
        journal_prev: bytes,
    ) -> tuple[list[bytes], bytes]:
        """Like :meth:`encode`, but the frame comes as consecutive pieces, to be
        written in order (``os.writev``); joined, they are exactly :meth:`encode`'s frame.

        A ``data`` value in ``body`` of :data:`SPLICE_MIN_BYTES` or more is one of
        the pieces itself, not copied: a bulk transfer records each chunk without
        two more copies of it. Raises like :meth:`encode`.
        """
        data = body.get("data")
        if type(data) is not bytes or len(data) < SPLICE_MIN_BYTES:
            data = None  # packed into the record like any other value
        try:
            if data is not None:
                prefix, suffix = self._around_data(
                    session_id, seq, when, kind, body, len(data), prev_hash, journal_prev
                )
            else:
                record = self._pack(
                    {
                        "s": session_id,
                        "n": seq,
                        "t": when,
                        "k": kind,
                        "b": body,
                        "p": prev_hash,
                        "j": journal_prev,
                    }
                )
        except (TypeError, ValueError, OverflowError) as exc:
            raise FrameError(f"record cannot be encoded: {type(exc).__name__}") from exc
        if data is not None:
            hasher = hashlib.sha256(prefix)
            hasher.update(data)
            hasher.update(suffix)
            digest = hasher.digest()
            head = _FRAME_HEAD.pack(_payload_size(len(prefix) + len(data) + len(suffix)), 0x92)
            return [head + prefix, data, b"".join((suffix, HASH_HEADER, digest))], digest
        digest = hashlib.sha256(record).digest()
        head = _FRAME_HEAD.pack(_payload_size(len(record)), 0x92)
        return [b"".join((head, record, HASH_HEADER, digest))], digest

    def _around_data(
        self,
        session_id: str,
        seq: int,
        when: float,
        kind: str,
        body: Mapping[str, Any],
        data_size: int,
        prev_hash: bytes,
        journal_prev: bytes,
    ) -> tuple[bytes, bytes]:
        """The record's bytes before and after the value of ``body["data"]``: the
        same bytes msgpack produces for the whole record (msgpack is a concatenation
        of its items)."""
        pack = self._pack
        before = [
            b"\x87",  # map of 7
            pack("s"), pack(session_id), pack("n"), pack(seq),
            pack("t"), pack(when), pack("k"), pack(kind),
            pack("b"), _map_header(len(body)),
        ]  # fmt: skip
        after: list[bytes] = []
        into = before
        for key, value in body.items():
            into.append(pack(key))
            if key == "data":
                into.append(_bin_header(data_size))
                into = after
            else:
                into.append(pack(value))
        after += [pack("p"), pack(prev_hash), pack("j"), pack(journal_prev)]
        return b"".join(before), b"".join(after)


def _payload_size(record_size: int) -> int:
    size = record_size + 1 + TRAILER_SIZE
    if size > MAX_PAYLOAD:
        raise FrameError(f"record of {size} bytes exceeds the frame limit")
    return size


def _map_header(count: int) -> bytes:
    if count < 16:
        return bytes((0x80 | count,))
    if count < 1 << 16:
        return b"\xde" + count.to_bytes(2, "big")
    return b"\xdf" + count.to_bytes(4, "big")


def _bin_header(size: int) -> bytes:
    # Only for SPLICE_MIN_BYTES and up, so never "bin 8".
    return _BIN16.pack(0xC5, size) if size < 1 << 16 else _BIN32.pack(0xC6, size)


def payload_shape_ok(payload: bytes) -> bool:
    """Cheap structural check: the payload starts and ends the way every payload does."""
    return (
        len(payload) > len(PAYLOAD_MAGIC) + TRAILER_SIZE
        and payload.startswith(PAYLOAD_MAGIC)
        and payload[-TRAILER_SIZE:-HASH_SIZE] == HASH_HEADER
    )


def payload_hash_ok(payload: bytes) -> bool:
    """Whether the hash stored in ``payload`` matches its record bytes."""
    return hashlib.sha256(payload[1:-TRAILER_SIZE]).digest() == payload[-HASH_SIZE:]


def session_prefix(session_id: str) -> bytes:
    """The bytes every payload of ``session_id`` starts with (for fast filtering)."""
    packed: bytes = msgpack.packb(session_id)
    return PAYLOAD_MAGIC + packed


def decode_payload(payload: bytes, segment: int = 0, offset: int = 0) -> Record:
    """Decode one payload (the bytes after the length prefix).

    Raises :class:`FrameError` if it is not a well-formed record (this includes a
    time that is not a finite number, a session id with unprintable characters and
    a body nested deeper than :data:`MAX_BODY_DEPTH`); a record whose contents do
    not match its hash decodes with ``hash_ok=False``.
    """
    if not payload_shape_ok(payload):
        raise FrameError("not a record frame")
    try:
        decoded = msgpack.unpackb(payload, raw=False, strict_map_key=False, use_list=True)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise FrameError(f"undecodable payload: {type(exc).__name__}") from exc
    if not (isinstance(decoded, list) and len(decoded) == 2 and isinstance(decoded[0], dict)):
        raise FrameError("payload is not [record, hash]")
    fields, stored = decoded
    try:
        session_id, seq, when, kind = fields["s"], fields["n"], fields["t"], fields["k"]
        body, prev_hash, journal_prev = fields["b"], fields["p"], fields["j"]
    except KeyError as exc:
        raise FrameError(f"record lacks field {exc.args[0]!r}") from None
    if not (
        isinstance(session_id, str)
        and isinstance(seq, int)
        and seq >= 0
        and isinstance(when, float)
        and isinstance(kind, str)
        and isinstance(body, dict)
        and _is_hash(prev_hash)
        and _is_hash(journal_prev)
        and _is_hash(stored)
    ):
        raise FrameError("record fields have the wrong types")
    if not math.isfinite(when):
        raise FrameError("record time is not a finite number")
    if not session_id.isprintable():
        # Readers print session ids as they are (verify, sessions): control
        # characters in one would reach the auditor's terminal.
        raise FrameError("session id holds unprintable characters")
    if nests_deeper(body, MAX_BODY_DEPTH):
        raise FrameError(f"body nests deeper than {MAX_BODY_DEPTH} levels")
    return Record(
        session_id=session_id,
        seq=seq,
        time=when,
        kind=kind,
        body=body,
        prev_hash=prev_hash,
        journal_prev=journal_prev,
        hash=stored,
        hash_ok=payload_hash_ok(payload),
        segment=segment,
        offset=offset,
    )


def nests_deeper(body: dict[Any, Any], limit: int) -> bool:
    """Whether maps and lists in ``body`` (itself level 1) nest deeper than ``limit``."""
    level: list[Any] = [body]
    for _ in range(limit):
        # One level at a time, without recursion (the point is to refuse deep nesting).
        level = [
            item
            for container in level
            for item in (container.values() if isinstance(container, dict) else container)
            if isinstance(item, dict | list)
        ]
        if not level:
            return False
    return True


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE
