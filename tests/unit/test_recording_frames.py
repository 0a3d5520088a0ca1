"""The frame format byte by byte, and session ids."""

from __future__ import annotations

import hashlib
import re
import struct

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hoopd.recording.frames import (
    ZERO_HASH,
    FrameEncoder,
    FrameError,
    decode_payload,
)
from hoopd.recording.ids import ID_LENGTH, SessionIdGenerator

SID = "01m82nztgkdr2fdm"
BODY = {
    "sql": "SELECT $1::text, $2::bytea, $3 -- naïve ✓",
    "params": ["x'y", b"\x00\xff\x01", None],
    "classification": {"kinds": ["select"], "tables_read": [], "statement_count": 1},
}


def test_a_frame_is_length_then_record_then_sha256_of_the_record_bytes() -> None:
    prev = hashlib.sha256(b"previous").digest()
    frame, digest = FrameEncoder().encode(SID, 7, 1700000000.25, "statement", BODY, prev, ZERO_HASH)

    (length,) = struct.unpack(">I", frame[:4])
    payload = frame[4:]
    assert length == len(payload)
    # payload = msgpack [record, hash]: array header, record map, bin8 header, 32 bytes.
    assert payload[:1] == b"\x92" and payload[-34:-32] == b"\xc4\x20"
    record_bytes = payload[1:-34]
    assert digest == payload[-32:] == hashlib.sha256(record_bytes).digest()
    record = msgpack.unpackb(record_bytes)
    assert list(record) == ["s", "n", "t", "k", "b", "p", "j"]
    assert record == {
        "s": SID,
        "n": 7,
        "t": 1700000000.25,
        "k": "statement",
        "b": BODY,
        "p": prev,
        "j": ZERO_HASH,
    }


def test_decoding_gives_back_every_field_with_bytes_and_null_params_intact() -> None:
    prev, jprev = b"\x11" * 32, b"\x22" * 32
    frame, digest = FrameEncoder().encode(SID, 3, 12.5, "statement", BODY, prev, jprev)
    record = decode_payload(frame[4:], segment=2, offset=40)
    assert (record.session_id, record.seq, record.time, record.kind) == (SID, 3, 12.5, "statement")
    assert record.body == BODY
    assert record.body["params"] == ["x'y", b"\x00\xff\x01", None]
    assert (record.prev_hash, record.journal_prev, record.hash) == (prev, jprev, digest)
    assert record.hash_ok and (record.segment, record.offset) == (2, 40)


def test_changing_any_byte_of_the_record_is_caught() -> None:
    frame, _ = FrameEncoder().encode(SID, 0, 1.0, "statement", BODY, ZERO_HASH, ZERO_HASH)
    payload = frame[4:]
    for position in range(1, len(payload) - 34):
        tampered = bytearray(payload)
        tampered[position] ^= 0x01
        try:
            record = decode_payload(bytes(tampered))
        except FrameError:
            continue  # no longer a record at all: also caught
        assert not record.hash_ok, f"edit at byte {position} went unnoticed"


def test_the_hash_is_over_the_bytes_so_an_edit_with_a_fresh_hash_verifies_only_alone() -> None:
    frame, original = FrameEncoder().encode(SID, 0, 1.0, "statement", BODY, ZERO_HASH, ZERO_HASH)
    payload = bytearray(frame[4:])
    index = payload.index(b"SELECT")
    payload[index : index + 6] = b"DELETE"
    payload[-32:] = hashlib.sha256(payload[1:-34]).digest()
    record = decode_payload(bytes(payload))
    # Self-consistent, but its hash is no longer the one the next record names.
    assert record.hash_ok and record.hash != original


@pytest.mark.parametrize("body", [{"x": object()}, {"sql": "\udc80"}])
def test_a_body_msgpack_cannot_hold_is_refused(body: dict[str, object]) -> None:
    with pytest.raises(FrameError):
        FrameEncoder().encode(SID, 0, 1.0, "statement", body, ZERO_HASH, ZERO_HASH)


@pytest.mark.parametrize(
    "payload",
    [b"", b"\x92", b"garbage" * 10, msgpack.packb([{"s": SID}, ZERO_HASH])],
)
def test_payloads_that_are_not_records_are_refused(payload: bytes) -> None:
    with pytest.raises(FrameError):
        decode_payload(payload)


def test_session_ids_are_short_typeable_unique_and_sort_by_creation() -> None:
    generator = SessionIdGenerator()
    ids = [generator.new_id() for _ in range(20000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(re.fullmatch(r"[0-9a-hjkmnp-tv-z]{16}", i) for i in ids)
    assert ID_LENGTH == 16
    # Different generators (gateway restarts) do not start from the same value.
    assert SessionIdGenerator().new_id() != SessionIdGenerator().new_id()


def _whole_record_frame(body: dict[str, object], prev: bytes, jprev: bytes) -> bytes:
    """The frame as msgpack packs the whole record at once: the oracle for splicing."""
    record: bytes = msgpack.packb(
        {"s": SID, "n": 9, "t": 2.5, "k": "stdout", "b": body, "p": prev, "j": jprev},
        use_bin_type=True,
    )
    payload = b"\x92" + record + b"\xc4\x20" + hashlib.sha256(record).digest()
    return struct.pack(">I", len(payload)) + payload


@settings(max_examples=60, deadline=None)
@given(
    size=st.sampled_from([0, 1, 8191, 8192, 8193, 65535, 65536, 200_000]),
    before=st.dictionaries(st.sampled_from(["channel", "a", "z"]), st.integers(0, 1 << 40)),
    after=st.dictionaries(st.sampled_from(["tail", "q"]), st.text(max_size=20)),
)
def test_a_large_data_chunk_is_written_in_pieces_that_join_to_the_same_frame(
    size: int, before: dict[str, object], after: dict[str, object]
) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    body = {**before, "data": data, **after}
    prev, jprev = b"\x33" * 32, b"\x44" * 32
    parts, digest = FrameEncoder().encode_parts(SID, 9, 2.5, "stdout", body, prev, jprev)
    frame = b"".join(parts)
    assert frame == _whole_record_frame(body, prev, jprev)
    assert decode_payload(frame[4:]).body == body and frame.endswith(digest)
    if size >= 8192:
        # The chunk is handed on as it is, never copied into a frame of its own.
        assert any(part is data for part in parts)
